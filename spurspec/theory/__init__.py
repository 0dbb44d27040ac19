"""`spurspec theory`: the study's two measures, Var(X_ij | Ỹ_ij = 1) and I(S_ij; Y_ij | Ỹ_ij = 1),
for a list of spatial specificities r, computed exactly (theory.exact, derivation there) and by
Monte Carlo from spurspec.datamodel's sampler (theory.simulate). Writes TheoryLayout's table
(THEORY schema), plot and provenance."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from spurspec import config as configlib
from spurspec.artefacts import freshness, io, locks, provenance, schemas
from spurspec.artefacts.layout import TheoryLayout
from spurspec.datamodel import JointLabels, region_side
from spurspec.errors import ConfigError
from spurspec.theory.exact import PixelModel, exact_measures
from spurspec.theory.plot import plot
from spurspec.theory.simulate import simulate

MEASURES = ("var_x", "mi_sy_bits")
WHAT = "a theory table and plot"  # what the stage's messages call its outputs


@dataclass(frozen=True)
class TheoryConfig:
    out: Path = Path("theory")
    n: int = 1024  # pixels; must be a square (an m x m grid), 32 x 32 by default
    r: tuple[int, ...] = ()  # numbers of regions; empty = every r = g^2 with g dividing m
    # P(y,s) cells p00,p01,p10,p11; the default is `ingest synthetic`'s train joint (P(s=y)=0.9).
    p_ys: tuple[str, ...] = ("0.45,0.05,0.05,0.45",)
    overlap: bool = False  # also compute the model with S placed regardless of Y
    # The abnormality fills 56% of a positive image, the regime where both measures fall from
    # r = 1 on (docs/theory.md: with small abnormalities they first rise, then fall).
    y_shape: tuple[int, ...] = (24, 24)
    s_shape: tuple[int, ...] = (4, 8)
    mu_y: float = 1.0  # mean shift of abnormal pixels
    mu_s: float = 3.0  # the spurious feature is the brighter, easier one
    sigma: float = 0.5  # pixel noise
    samples: int = 8000  # Monte Carlo images: error bars under 1% of Var, ~4 s with --overlap
    bootstrap: int = 200  # bootstrap resamples for the standard errors
    seed: int = 0


@dataclass
class TheoryResult:
    out: Path
    table: pa.Table
    up_to_date: bool


def _footprint(shape: tuple[int, ...], what: str) -> np.ndarray:
    if len(shape) != 2 or min(shape) < 1:
        raise ConfigError(f"{what}={list(shape)}: expected [height, width] of at least 1 pixel")
    return np.ones(tuple(shape), dtype=bool)


def model_of(cfg: TheoryConfig) -> PixelModel:
    side = int(round(cfg.n**0.5))
    if side * side != cfg.n or side < 2:
        raise ConfigError(f"n={cfg.n}: must be the number of pixels of a square grid (e.g. 1024 = 32x32)")
    if cfg.sigma < 0:
        raise ConfigError(f"sigma={cfg.sigma}: must be non-negative")
    return PixelModel(side, _footprint(cfg.y_shape, "y_shape"), _footprint(cfg.s_shape, "s_shape"), cfg.mu_y, cfg.mu_s, cfg.sigma)


def r_values(cfg: TheoryConfig, side: int) -> list[int]:
    rs = list(cfg.r) or [g * g for g in range(1, side + 1) if side % g == 0]
    for r in rs:
        region_side(r, side)
    return sorted(set(rs))


def compute(cfg: TheoryConfig) -> pa.Table:
    """The THEORY table for `cfg` (no files)."""
    model = model_of(cfg)
    rs = r_values(cfg, model.side)
    if cfg.samples < 10 or cfg.bootstrap < 10:
        raise ConfigError(f"samples={cfg.samples}, bootstrap={cfg.bootstrap}: need at least 10 of each")
    rows: list[dict[str, Any]] = []
    for k, text in enumerate(cfg.p_ys):
        joint = JointLabels.parse(text)
        if joint.p_y == 0:
            raise ConfigError(f"P(y,s) {text!r}: P(y=1) = 0 leaves no positively labelled pixel")
        for overlap in (False, True) if cfg.overlap else (False,):
            exact = exact_measures(model, overlap, rs, joint.p_s_given_y1)
            sim = simulate(model, joint, overlap, rs, cfg.samples, seed=cfg.seed + 1000 * k + int(overlap), bootstrap=cfg.bootstrap)
            for r in rs:
                for m, name in enumerate(MEASURES):
                    est = sim[r][m]
                    rows.append(
                        {
                            "p_ys": joint.text,
                            "p_s_given_y1": joint.p_s_given_y1,
                            "overlap": overlap,
                            "r": r,
                            "region_side": model.side // region_side(r, model.side),
                            "measure": name,
                            "exact": exact[r][m],
                            "simulated": est.value,
                            "se": est.se,
                            "ci_low": est.value - 1.96 * est.se,
                            "ci_high": est.value + 1.96 * est.se,
                            "z": (est.value - exact[r][m]) / est.se if est.se > 0 else None,
                            "samples": cfg.samples,
                        }
                    )
    return pa.Table.from_pylist(rows, schema=schemas.THEORY)


def run_theory(cfg: TheoryConfig, force: bool = False) -> TheoryResult:
    """Compute the table, write it and the plot under `cfg.out` (nothing to do if up to date)."""
    configlib.check_seed(cfg.seed)
    with locks.hold(Path(cfg.out), "theory"):  # one writer per output directory (exit 4 otherwise)
        return _run_locked(cfg, force)


def _run_locked(cfg: TheoryConfig, force: bool) -> TheoryResult:
    layout = TheoryLayout(Path(cfg.out))
    settings = {k: v for k, v in configlib.to_dict(cfg).items() if k != "out"}
    recorded = layout.provenance("theory")
    if not force and layout.table.exists():
        state = freshness.check(recorded, settings, {}, where=layout.root, what=WHAT)
        if not state.fresh:
            raise state.error()
        if layout.figure.exists():  # else the same settings' plot is simply drawn again
            table = schemas.check(io.read_table(layout.table, "theory table"), schemas.THEORY, layout.table)
            return TheoryResult(layout.root, table, True)
    table = compute(cfg)
    io.write_table(layout.table, table, schemas.THEORY)
    plot(table, layout.figure)
    provenance.write(recorded, "theory", settings, {})
    return TheoryResult(layout.root, table, False)


def wide_rows(table: pa.Table) -> list[dict[str, Any]]:
    """One row per (P(y,s), overlap, r) with both measures side by side, for printing."""
    by_key: dict[tuple, dict[str, Any]] = {}
    for row in table.to_pylist():
        key = (row["p_ys"], row["overlap"], row["r"])
        entry = by_key.setdefault(key, {"P(y,s)": row["p_ys"], "overlap": "yes" if row["overlap"] else "no", "r": row["r"]})
        tag = "Var" if row["measure"] == "var_x" else "MI bits"
        entry[tag] = f"{row['exact']:.5f}"
        entry[f"{tag} sim"] = f"{row['simulated']:.5f}"
        entry["±" if tag == "Var" else "± "] = f"{1.96 * row['se']:.5f}"
    return list(by_key.values())
