"""The two measures estimated by Monte Carlo: images sampled from spurspec.datamodel's sampler
(the same `place` that `ingest synthetic` uses), pixels X = mu_y Y + mu_s S + sigma eps, and
error bars from a Poisson bootstrap over images. Reads and writes nothing."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from spurspec.datamodel import JointLabels, block_labels, paste, place
from spurspec.theory.exact import PixelModel, mutual_information

_CHUNK = 2000  # images per batch of array work, to keep memory at tens of MB


@dataclass(frozen=True)
class Estimate:
    value: float
    se: float  # bootstrap standard error


def sample_masks(rng: np.random.Generator, model: PixelModel, joint: JointLabels, n: int, overlap: bool) -> tuple[np.ndarray, np.ndarray]:
    """n images' abnormal and spurious masks, (n, m, m) bool each, iid from the model."""
    y, s = joint.labels(rng, n, exact=False)
    ym = np.zeros((n, model.side, model.side), dtype=bool)
    sm = np.zeros_like(ym)
    for i in range(n):
        scene = place(rng, model.side, int(y[i]), int(s[i]), model.y_footprint, model.s_footprint, overlap)
        ym[i] = paste(model.side, model.y_footprint, scene.y_pos)
        sm[i] = paste(model.side, model.s_footprint, scene.s_pos)
    return ym, sm


def _per_image_stats(model: PixelModel, ym: np.ndarray, sm: np.ndarray, noise: np.ndarray, r: int) -> np.ndarray:
    """(n, 6): counts of (Y,S) = 00, 01, 10, 11 among Ỹ = 1 pixels, then sum X and sum X^2 there."""
    lab = block_labels(ym, r)
    x = model.mu_y * ym + model.mu_s * sm + model.sigma * noise
    cols = [(lab & (ym == a) & (sm == b)).sum(axis=(1, 2)) for a in (0, 1) for b in (0, 1)]
    cols += [(x * lab).sum(axis=(1, 2)), (x * x * lab).sum(axis=(1, 2))]
    return np.stack(cols, axis=1).astype(np.float64)


def _measures(totals: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows of totals -> (variance, MI in bits) per row."""
    w = totals[:, :4].sum(1)
    var = totals[:, 5] / w - (totals[:, 4] / w) ** 2
    mi = np.array([mutual_information(t[:4].reshape(2, 2)) for t in totals])
    return var, mi


def simulate(
    model: PixelModel,
    joint: JointLabels,
    overlap: bool,
    rs: list[int],
    samples: int,
    seed: int,
    bootstrap: int = 200,
) -> dict[int, tuple[Estimate, Estimate]]:
    """r -> (variance estimate, MI estimate) from `samples` images drawn with `seed`."""
    rng = np.random.default_rng(seed)
    stats = {r: [] for r in rs}
    for start in range(0, samples, _CHUNK):
        n = min(_CHUNK, samples - start)
        ym, sm = sample_masks(rng, model, joint, n, overlap)
        noise = rng.standard_normal(ym.shape)
        for r in rs:
            stats[r].append(_per_image_stats(model, ym, sm, noise, r))
    # One set of bootstrap weights for every r, so the error bars of one curve are coherent.
    weights = rng.poisson(1.0, size=(bootstrap, samples)).astype(np.float64)
    out = {}
    for r in rs:
        per_image = np.concatenate(stats[r])
        full_var, full_mi = _measures(per_image.sum(0, keepdims=True))
        boot_var, boot_mi = _measures(weights @ per_image)
        out[r] = (Estimate(float(full_var[0]), float(boot_var.std(ddof=1))), Estimate(float(full_mi[0]), float(boot_mi.std(ddof=1))))
    return out
