"""Boxes and coarse grids from binary masks (pure functions, no I/O): the study's union box,
per-connected-component boxes, margins, mapping to training-size pixels, filled box masks, and
k x k grid masks. Boxes are half-open (x0, y0, x1, y1): columns x0..x1-1, rows y0..y1-1."""

from __future__ import annotations

import numpy as np

Box = tuple[int, int, int, int]

# 8-connectivity: pixels touching at a corner belong to one region, as a lesion drawn with a
# thin diagonal stroke would; 4-connectivity would split it into many tiny boxes.
_EIGHT = np.ones((3, 3), dtype=bool)


def union_box(mask: np.ndarray) -> Box | None:
    """The one box spanning every positive pixel (the study's box), or None for an empty mask."""
    mask = np.asarray(mask) > 0
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(mask.any(axis=0))
    return int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1


def component_boxes(mask: np.ndarray) -> list[Box]:
    """One box per 8-connected component, in raster order of each component's first pixel."""
    from scipy import ndimage  # here, not at the top: the CLI imports this module for --help

    labels, n = ndimage.label(np.asarray(mask) > 0, structure=_EIGHT)
    if n == 0:
        return []
    boxes = []
    for sl in ndimage.find_objects(labels):
        ys, xs = sl
        boxes.append((int(xs.start), int(ys.start), int(xs.stop), int(ys.stop)))
    return boxes


def with_margin(box: Box, margin: int, height: int, width: int) -> Box:
    """Grow a box by `margin` pixels on every side, clipped to the image."""
    x0, y0, x1, y1 = box
    return max(0, x0 - margin), max(0, y0 - margin), min(width, x1 + margin), min(height, y1 + margin)


def to_training(box: Box, height: int, width: int, size: int) -> Box:
    """Map a box in (height, width) pixels to the (size, size) training grid, scaling x by
    size/width and y by size/height; floor the start and ceil the end so the box still covers
    every pixel the original box covered (exact integer arithmetic, no float rounding)."""
    x0, y0, x1, y1 = box
    tx0 = (x0 * size) // width
    ty0 = (y0 * size) // height
    tx1 = -((-x1 * size) // width)
    ty1 = -((-y1 * size) // height)
    return max(0, tx0), max(0, ty0), min(size, tx1), min(size, ty1)


def from_training(box: Box, height: int, width: int, size: int) -> Box:
    """The inverse mapping (training pixels -> original pixels), also covering (floor/ceil)."""
    x0, y0, x1, y1 = box
    ox0 = (x0 * width) // size
    oy0 = (y0 * height) // size
    ox1 = -((-x1 * width) // size)
    oy1 = -((-y1 * height) // size)
    return max(0, ox0), max(0, oy0), min(width, ox1), min(height, oy1)


def box_area(box: Box) -> int:
    x0, y0, x1, y1 = box
    return max(0, x1 - x0) * max(0, y1 - y0)


def fill_boxes(boxes: list[Box], size: int) -> np.ndarray:
    """(size, size) uint8 mask with every box filled with 1 (overlaps simply stay 1)."""
    out = np.zeros((size, size), dtype=np.uint8)
    for x0, y0, x1, y1 in boxes:
        out[y0:y1, x0:x1] = 1
    return out


def grid_mask(mask: np.ndarray, k: int) -> np.ndarray:
    """(k, k) uint8: a cell is 1 if ANY positive pixel of `mask` falls in it. Pixel row r lies
    in cell row floor(r * k / H) (likewise columns), so the cells partition the image exactly
    and no pixel is lost to resampling."""
    mask = np.asarray(mask) > 0
    height, width = mask.shape
    if k < 1:
        raise ValueError(f"grid size must be at least 1, got {k}")
    out = np.zeros((k, k), dtype=np.uint8)
    ys, xs = np.nonzero(mask)
    if ys.size:
        out[(ys * k) // height, (xs * k) // width] = 1
    return out
