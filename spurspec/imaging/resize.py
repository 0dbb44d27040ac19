"""Resize decoded images and masks to the square training size every stage works at.
Images: anti-aliased (area) resampling to uint8. Masks, by ingest's `mask_resize`: `area`, a
cell's area fraction >= 0.5, but a non-empty mask never vanishes (tiny lesions keep their
strongest cell); `max`, max-pooling, a cell is positive if any of its source pixels is (the
study's 1024 -> 512 resize of chest-film masks). Reads and writes nothing."""

from __future__ import annotations

import numpy as np
from PIL import Image

# How a mask goes to the training size (ingest's --mask-resize). AREA is spurspec's default: the
# mask keeps its area and outline at any size. MAX is the study's: no positive pixel is lost, at
# the price of growing a mask by up to one cell a side.
AREA, MAX = "area", "max"
MASK_RESIZES = (AREA, MAX)


def to_uint8(arr: np.ndarray) -> np.ndarray:
    """Scale any numeric image to uint8 over its own min..max (already-uint8 input is kept)."""
    if arr.dtype == np.uint8:
        return arr
    arr = arr.astype(np.float32)
    lo, hi = float(arr.min()), float(arr.max())
    if hi <= lo:
        return np.zeros(arr.shape, np.uint8)
    return np.clip((arr - lo) * (255.0 / (hi - lo)) + 0.5, 0, 255).astype(np.uint8)


def resize_image(arr: np.ndarray, size: int) -> np.ndarray:
    """(H, W) or (H, W, C) uint8 -> (C, size, size) uint8."""
    arr = to_uint8(arr)
    if arr.ndim == 2:
        arr = arr[:, :, None]
    channels = []
    for c in range(arr.shape[2]):
        img = Image.fromarray(np.ascontiguousarray(arr[:, :, c]))
        if img.size != (size, size):
            img = img.resize((size, size), Image.Resampling.BOX if img.width >= size else Image.Resampling.BILINEAR)
        channels.append(np.asarray(img, dtype=np.uint8))
    return np.stack(channels, axis=0)


def resize_mask(mask: np.ndarray, size: int, mode: str = AREA) -> np.ndarray:
    """(H, W) bool/0-1 -> (size, size) uint8 in {0, 1}, by `mode` (AREA or MAX)."""
    mask = np.asarray(mask)
    mask = mask if mask.dtype == np.bool_ else mask > 0
    if mask.shape == (size, size):
        return mask.astype(np.uint8)
    if mode == MAX and band_step(mask.shape, size) is None:
        # Off the block-sum path Pillow's box filter does not put each pixel in max_pool's
        # (grid_mask's) cell, so its fractions cannot say "any pixel of the cell".
        return max_pool(mask, size)
    covered, full = _area(mask, size)
    return _threshold(covered, full, mask.any(), mode)


def max_pool(mask: np.ndarray, size: int) -> np.ndarray:
    """(H, W) -> (size, size) uint8: a cell is 1 if ANY of its source pixels is. Source row r
    lies in cell row floor(r * size / H) (likewise columns), so the cells partition the image
    (1024 -> 512: 2 x 2 blocks; the cells of grid_mask); a side shorter than `size` is repeated,
    each cell reading the one pixel it lies in."""
    out = (np.asarray(mask) > 0).view(np.uint8)
    for axis in (1, 0):  # columns first: the rows' pass then runs on `size` columns
        n = out.shape[axis]
        if n >= size:
            out = np.maximum.reduceat(out, -(-np.arange(size) * n // size), axis=axis)
        else:
            out = np.take(out, np.arange(size) * n // size, axis=axis)
    return np.ascontiguousarray(out)


def resize_mask_band(band: np.ndarray, top: int, shape: tuple[int, int], size: int,
                     transpose: bool = False, mode: str = AREA) -> np.ndarray:
    """resize_mask of a mask of `shape` that is zero outside rows [top, top + len(band)), from the
    band alone (`transpose`: the result's transpose, C-ordered). Where block sums apply
    (`band_step`), `top` and the band's height must be multiples of band_step(shape, size) and
    only the band's cells are summed and transposed; otherwise the full mask is rebuilt. The same
    result as resize_mask, at a lesion's cost rather than the image's."""
    step = band_step(shape, size)
    band = band if band.dtype == np.bool_ else band > 0
    if step is None or shape == (size, size):
        mask = np.zeros(shape, dtype=bool)
        mask[top : top + len(band)] = band
        out = resize_mask(mask, size, mode)
        return np.ascontiguousarray(out.T) if transpose else out
    if top % step or len(band) % step:
        raise ValueError(f"band rows [{top}, {top + len(band)}) are not aligned to {step}")
    fx = shape[1] // size
    counts = _block_sums(band, step, fx, np.min_scalar_type(step * fx))
    cells = _threshold(counts, step * fx, band.any(), mode)  # zero outside the band, so the same cells
    out = np.zeros((size, size), dtype=np.uint8)
    rows = slice(top // step, (top + len(band)) // step)
    if transpose:
        out[:, rows] = cells.T
    else:
        out[rows] = cells
    return out


def band_step(shape: tuple[int, int], size: int) -> int | None:
    """The row factor of the block-sum path (each side a power-of-two multiple of `size`), or
    None where Pillow's filter is used."""
    factors = [side // size for side in shape]
    fits = all(side == f * size and f >= 1 and f & (f - 1) == 0 for side, f in zip(shape, factors, strict=True))
    return factors[0] if fits else None


def _threshold(covered: np.ndarray, full: int | float, any_set: bool, mode: str = AREA) -> np.ndarray:
    """AREA: area fraction >= 0.5, a non-empty mask keeping at least its strongest cell; MAX:
    any covered pixel (given block counts, whose cells are max_pool's)."""
    if mode == MAX:
        return (covered > 0).astype(np.uint8)
    out = (covered >= full / 2).astype(np.uint8)
    if any_set and not out.any():
        out[np.unravel_index(int(np.argmax(covered)), covered.shape)] = 1
    return out


def _block_sums(mask: np.ndarray, fy: int, fx: int, dtype: np.dtype) -> np.ndarray:
    """Sums of (fy, fx) blocks of a bool mask whose sides are multiples of them (powers of two),
    by halving: exact integer counts."""
    counts = mask.view(np.uint8).astype(dtype, copy=False)
    while fx > 1:
        counts, fx = counts[:, 0::2] + counts[:, 1::2], fx // 2
    while fy > 1:
        counts, fy = counts[0::2] + counts[1::2], fy // 2
    return counts


def _area(mask: np.ndarray, size: int) -> tuple[np.ndarray, int | float]:
    """(covered, full): each target cell's covered area and the area of a whole cell. Where each
    source side is a power-of-two multiple of `size` (SIIM's 1024 to 512/256/128), blocks are
    summed by halving, over the rows the mask touches: ~0.2-0.5 ms for a SIIM lesion where
    Pillow's float box filter takes ~6 ms. There the box weights are powers of two, so Pillow's
    fractions are these counts divided exactly: both give the same mask. Other shapes use Pillow."""
    fy = band_step(mask.shape, size)
    if fy is not None:
        fx = mask.shape[1] // size
        dtype = np.min_scalar_type(fy * fx)
        covered = np.zeros((size, size), dtype=dtype)
        rows = np.flatnonzero(mask.any(axis=1))  # a lesion spans a few rows: sum only their blocks
        if len(rows):
            top, bottom = rows[0] // fy, rows[-1] // fy + 1
            covered[top:bottom] = _block_sums(mask[top * fy : bottom * fy], fy, fx, dtype)
        return covered, fy * fx
    img = Image.fromarray(mask.astype(np.float32))
    return np.asarray(img.resize((size, size), Image.Resampling.BOX), dtype=np.float32), 1.0
