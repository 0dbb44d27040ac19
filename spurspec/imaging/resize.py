"""Resize decoded images and masks to the square training size every stage works at.
Images: anti-aliased (area) resampling to uint8. Masks: area fraction >= 0.5, but a non-empty
mask never vanishes (tiny lesions keep their strongest cell)."""

from __future__ import annotations

import numpy as np
from PIL import Image


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


def resize_mask(mask: np.ndarray, size: int) -> np.ndarray:
    """(H, W) bool/0-1 -> (size, size) uint8 in {0, 1}."""
    mask = np.asarray(mask) > 0
    if mask.shape == (size, size):
        return mask.astype(np.uint8)
    img = Image.fromarray(mask.astype(np.float32))
    frac = np.asarray(img.resize((size, size), Image.Resampling.BOX), dtype=np.float32)
    out = (frac >= 0.5).astype(np.uint8)
    if mask.any() and not out.any():
        out[np.unravel_index(int(np.argmax(frac)), frac.shape)] = 1
    return out
