"""The two measures of the data model (spurspec.datamodel) computed exactly, by enumerating
every placement of the abnormal region Y and averaging analytically over the spurious region S.
Reads and writes nothing.

Derivation. Let J be a pixel drawn uniformly from the n pixels, independently of the image;
"given Ỹ_J = 1" pools every positively labelled pixel of every image. Ỹ_J = 1 needs y = 1, so
only positive images count, and from P(y, s) only pi = P(s=1 | y=1) survives the conditioning.
Given y = 1 and Y's position p (uniform over the P_Y positions that fit), Y_J and Ỹ_J are fixed
numbers and S_J is Bernoulli(pi * c_p(J)), where c_p(J) is the fraction of S's admissible
positions (those not touching Y(p); all positions with overlap allowed) that cover J:

    c_p = (V_p * F_S) / |V_p|,   V_p = {q : (Y(p) ⋆ F_S)(q) = 0}  (* convolution, ⋆ correlation)

The joint law of (Y_J, S_J) among positively labelled pixels is then, for a, b in {0, 1},

    q_ab = Σ_p Σ_J Ỹ_J(p) [Y_J(p) = a] P(S_J = b | p)  /  Σ_p Σ_J Ỹ_J(p)

with P(S_J = 1 | p) = pi c_p(J). With X_J = mu_y Y_J + mu_s S_J + sigma eps_J:

    Var(X_J | Ỹ_J = 1) = sigma^2 + Σ_ab q_ab (a mu_y + b mu_s)^2 - (Σ_ab q_ab (a mu_y + b mu_s))^2
    I(S_J; Y_J | Ỹ_J = 1) = Σ_ab q_ab log2(q_ab / (q_a. q_.b))   (bits)

Closed forms. r = n: Ỹ_J = Y_J, so Y_J = 1 on every counted pixel: I = 0, and without overlap
S_J = 0 there too, so Var = sigma^2. r = 1: Ỹ_J = y, and since the footprints have fixed areas
A_Y, A_S, without overlap q10 = a_y = A_Y/n, q01 = pi a_s = pi A_S/n, q11 = 0 and
q00 = 1 - a_y - pi a_s (`closed_form_r1`). Independent P(y, s) only sets pi = P(s=1): I stays
positive at r = 1 because non-overlap alone makes S_J = 1 exclude Y_J = 1.

When they fall. The grids are nested, so the labelled pixels shrink toward Y as r grows and
p_r = P(Y_J = 1 | Ỹ_J = 1) rises to 1. Were S_J independent of Ỹ_J given Y_J (the study's
second assumption), I would be the information of a fixed channel P(S | Y) at input p_r:
concave in p_r and zero at p_r = 1, so it falls with r once p_r is past the channel's
capacity-achieving input; the Bernoulli part of the variance likewise falls once p_r >= 1/2.
So both fall from r = 1 on when the abnormality fills about half of a positive image or more
(the defaults); a small abnormality makes both first rise, then fall. Non-overlap makes S rarer
in blocks next to Y, so here that assumption holds only approximately.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import signal

from spurspec.datamodel import block_labels
from spurspec.errors import ConfigError


@dataclass(frozen=True)
class PixelModel:
    """X_J = mu_y Y_J + mu_s S_J + sigma eps_J on an m x m grid with fixed footprints."""

    side: int
    y_footprint: np.ndarray
    s_footprint: np.ndarray
    mu_y: float
    mu_s: float
    sigma: float


def y_positions(side: int, footprint: np.ndarray) -> list[tuple[int, int]]:
    h, w = footprint.shape
    return [(i, j) for i in range(side - h + 1) for j in range(side - w + 1)]


def placements(model: PixelModel, overlap: bool) -> tuple[np.ndarray, np.ndarray]:
    """Every position of Y: its masks (P, m, m) bool and S's coverage c_p (P, m, m)."""
    m, fy, fs = model.side, model.y_footprint, model.s_footprint
    positions = y_positions(m, fy)
    if not positions or fs.shape[0] > m or fs.shape[1] > m:
        raise ConfigError(f"regions {fy.shape} and {fs.shape} do not fit a {m}x{m} grid")
    masks = np.zeros((len(positions), m, m), dtype=bool)
    cover = np.zeros((len(positions), m, m), dtype=np.float64)
    fs_f = fs.astype(np.float64)
    n_s = (m - fs.shape[0] + 1, m - fs.shape[1] + 1)
    free = signal.convolve2d(np.ones(n_s), fs_f, mode="full") / (n_s[0] * n_s[1])
    for k, (i, j) in enumerate(positions):
        masks[k, i : i + fy.shape[0], j : j + fy.shape[1]] = fy
        if overlap:
            cover[k] = free
            continue
        hits = signal.correlate2d(masks[k].astype(np.float64), fs_f, mode="valid")
        valid = hits < 0.5
        if not valid.any():
            raise ConfigError(f"a {fs.shape} spurious region cannot avoid a {fy.shape} abnormal one on a {m}x{m} grid")
        cover[k] = signal.convolve2d(valid.astype(np.float64), fs_f, mode="full") / valid.sum()
    return masks, cover


def cell_probs(masks: np.ndarray, cover: np.ndarray, r: int, pi: float) -> np.ndarray:
    """q (2, 2): q[a, b] = P(Y_J = a, S_J = b | Ỹ_J = 1)."""
    labelled = block_labels(masks, r)
    weight = labelled.sum()
    q = np.zeros((2, 2))
    for a in (0, 1):
        sel = labelled & (masks == bool(a))
        q[a, 1] = pi * cover[sel].sum() / weight
        q[a, 0] = sel.sum() / weight - q[a, 1]
    return q


def variance(q: np.ndarray, model: PixelModel) -> float:
    value = np.array([[0.0, model.mu_s], [model.mu_y, model.mu_y + model.mu_s]])
    mean = float((q * value).sum())
    return model.sigma**2 + float((q * value**2).sum()) - mean**2


def mutual_information(q: np.ndarray) -> float:
    """I(S; Y) in bits from the 2x2 joint q (plug-in; 0 log 0 = 0)."""
    q = q / q.sum()
    qa, qb = q.sum(1, keepdims=True), q.sum(0, keepdims=True)
    nz = q > 0
    return max(0.0, float((q[nz] * np.log2(q[nz] / (qa @ qb)[nz])).sum()))


def closed_form_r1(model: PixelModel, pi: float) -> np.ndarray:
    """q at r = 1 without overlap, from the footprint areas alone (see the module docstring)."""
    n = model.side**2
    a_y, a_s = model.y_footprint.sum() / n, model.s_footprint.sum() / n
    return np.array([[1 - a_y - pi * a_s, pi * a_s], [a_y, 0.0]])


def exact_measures(model: PixelModel, overlap: bool, rs: list[int], pi: float) -> dict[int, tuple[float, float]]:
    """r -> (Var(X_J | Ỹ_J = 1), I(S_J; Y_J | Ỹ_J = 1) in bits)."""
    masks, cover = placements(model, overlap)
    out = {}
    for r in rs:
        q = cell_probs(masks, cover, r, pi)
        out[r] = (variance(q, model), mutual_information(q))
    return out
