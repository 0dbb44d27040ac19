"""Where a model's evidence lies: per image, the share of an evidence map's mass inside the
abnormality, inside the spurious region (where it is known) and elsewhere, the share of the
image each region covers (what a map spread evenly would put there), and the pointing game
(does the map's top pixel fall in the region). Maps are non-negative (scoring.py). An image
whose map holds no mass at all has no shares (NaN), never a made-up even split.
Pure numpy; reads and writes nothing."""

from __future__ import annotations

import numpy as np

# Per-image measures, in the order the table lists them.
MEASURES = ("mass_abnormality", "mass_spurious", "mass_elsewhere", "area_abnormality", "area_spurious",
            "pointing_abnormality", "pointing_spurious")


def per_image(maps: np.ndarray, abnormality: np.ndarray, spurious: np.ndarray | None) -> dict[str, np.ndarray]:
    """Each measure per image (n,) of maps (n, S, S) >= 0 and region masks (n, S, S); the
    spurious measures are absent when `spurious` is None (its region unknown)."""
    maps = np.clip(np.nan_to_num(np.asarray(maps, dtype=np.float64)), 0, None)
    n = len(maps)
    flat = maps.reshape(n, -1)
    total = flat.sum(axis=1)
    top = flat.argmax(axis=1)
    regions = {"abnormality": np.asarray(abnormality, dtype=bool).reshape(n, -1)}
    if spurious is not None:
        regions["spurious"] = np.asarray(spurious, dtype=bool).reshape(n, -1)
    out: dict[str, np.ndarray] = {}
    anywhere = np.zeros_like(regions["abnormality"])
    with np.errstate(invalid="ignore", divide="ignore"):
        for name, region in regions.items():
            out[f"mass_{name}"] = np.where(total > 0, (flat * region).sum(axis=1) / total, np.nan)
            out[f"area_{name}"] = region.mean(axis=1)
            out[f"pointing_{name}"] = np.where(total > 0, region[np.arange(n), top].astype(np.float64), np.nan)
            anywhere |= region
        out["mass_elsewhere"] = np.where(total > 0, (flat * ~anywhere).sum(axis=1) / total, np.nan)
    return {m: out[m] for m in MEASURES if m in out}
