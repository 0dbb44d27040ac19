"""Removal for `spurspec probe --remove`: fill a known spurious region from the background around
it. The fill is harmonic (the solution of Laplace's equation inside the region with the image
outside it as the boundary: every filled pixel is the mean of its four neighbours), solved
exactly as one sparse linear system per image, then given the fine grain the ring of pixels
around the region has, so the fill does not stand out as unnaturally smooth. No OpenCV needed.
Pure numpy/scipy; reads and writes nothing."""

from __future__ import annotations

import numpy as np
from scipy import ndimage, sparse
from scipy.sparse import linalg

# Width in pixels of the ring around the region whose fine-scale variation the fill's grain matches.
GRAIN_RING = 3


def harmonic_fill(image: np.ndarray, region: np.ndarray) -> np.ndarray:
    """`image` float (C, H, W) with the pixels of `region` (bool (H, W)) replaced by the harmonic
    interpolation of the pixels around them; the image's border is a free (Neumann) edge. The
    region may not be the whole image (nothing would be left to fill it from)."""
    region = np.asarray(region, dtype=bool)
    out = np.array(image, dtype=np.float64, copy=True)
    if not region.any():
        return out
    if region.all():
        raise ValueError("the region covers the whole image; nothing to fill it from")
    h, w = region.shape
    index = np.full(region.shape, -1, dtype=np.int64)
    rr, cc = np.nonzero(region)
    index[rr, cc] = np.arange(len(rr))
    rows, cols, vals = [], [], []
    degree = np.zeros(len(rr))
    known = np.zeros((out.shape[0], len(rr)))
    for dr, dc in ((-1, 0), (1, 0), (0, -1), (0, 1)):
        r2, c2 = rr + dr, cc + dc
        ok = (r2 >= 0) & (r2 < h) & (c2 >= 0) & (c2 < w)
        degree += ok
        k, r2, c2 = np.flatnonzero(ok), r2[ok], c2[ok]
        inner = region[r2, c2]
        rows.append(k[inner])
        cols.append(index[r2[inner], c2[inner]])
        vals.append(-np.ones(int(inner.sum())))
        np.add.at(known, (slice(None), k[~inner]), out[:, r2[~inner], c2[~inner]])
    rows.append(np.arange(len(rr)))
    cols.append(np.arange(len(rr)))
    vals.append(degree)
    system = sparse.csc_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
                               shape=(len(rr), len(rr)))
    solve = linalg.factorized(system)
    for c in range(out.shape[0]):
        out[c, rr, cc] = solve(known[c])
    return out


def add_grain(filled: np.ndarray, original: np.ndarray, region: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Gaussian grain inside `region`, per channel with the standard deviation of the original's
    fine-scale variation (minus a 1-pixel blur of it) in a ring of GRAIN_RING pixels around it."""
    region = np.asarray(region, dtype=bool)
    ring = ndimage.binary_dilation(region, iterations=GRAIN_RING) & ~region
    out = np.array(filled, dtype=np.float64, copy=True)
    if not region.any() or not ring.any():
        return out
    for c in range(out.shape[0]):
        fine = original[c] - ndimage.gaussian_filter(np.asarray(original[c], dtype=np.float64), 1.0)
        out[c][region] += rng.normal(0.0, float(fine[ring].std()), size=int(region.sum()))
    return out


def remove(image: np.ndarray, mask: np.ndarray, rng: np.random.Generator, margin: int) -> tuple[np.ndarray, np.ndarray]:
    """`image` (C, H, W) uint8 with the spurious region `mask` (grown by `margin` pixels, which
    takes in the soft edge a renderer leaves around it) filled from its surroundings; and the
    region filled."""
    region = np.asarray(mask, dtype=bool)
    if margin:
        region = ndimage.binary_dilation(region, iterations=margin)
    original = np.asarray(image, dtype=np.float64)
    filled = add_grain(harmonic_fill(original, region), original, region, rng)
    return np.clip(np.round(filled), 0, 255).astype(np.uint8), region
