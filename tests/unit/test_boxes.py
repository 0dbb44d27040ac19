"""Box and grid geometry: union and component boxes, margins, training-size mapping that keeps
covering the region, filled boxes, and exact any-pixel grid cells."""

from __future__ import annotations

import numpy as np
import pytest

from spurspec.imaging import boxes as bx


def _mask(h, w, *rects):
    m = np.zeros((h, w), np.uint8)
    for x0, y0, x1, y1 in rects:
        m[y0:y1, x0:x1] = 1
    return m


def test_union_box_is_half_open_and_spans_all_pixels():
    m = _mask(20, 30, (2, 3, 5, 6), (20, 10, 25, 12))
    assert bx.union_box(m) == (2, 3, 25, 12)
    assert bx.union_box(np.zeros((4, 4))) is None


def test_component_boxes_one_per_region_with_diagonal_contact_joined():
    m = _mask(20, 30, (2, 3, 5, 6), (20, 10, 25, 12))
    m[6, 5] = 1  # touches (5,4)->(4,5) diagonally: same region under 8-connectivity
    assert bx.component_boxes(m) == [(2, 3, 6, 7), (20, 10, 25, 12)]
    assert bx.component_boxes(np.zeros((3, 3))) == []


def test_margin_clips_to_image():
    assert bx.with_margin((1, 2, 8, 9), 3, height=10, width=9) == (0, 0, 9, 10)
    assert bx.with_margin((4, 4, 5, 5), 1, height=10, width=10) == (3, 3, 6, 6)


@pytest.mark.parametrize("h,w,s", [(1024, 1024, 256), (767, 1022, 256), (12, 16, 7), (5, 3, 64)])
def test_training_box_covers_the_region_it_came_from(h, w, s):
    rng = np.random.default_rng(h * w + s)
    for _ in range(50):
        x0, x1 = sorted(rng.choice(w + 1, 2, replace=False))
        y0, y1 = sorted(rng.choice(h + 1, 2, replace=False))
        tx0, ty0, tx1, ty1 = bx.to_training((x0, y0, x1, y1), h, w, s)
        # every original pixel's extent [x, x+1) * s/w must lie inside [tx0, tx1)
        assert tx0 <= x0 * s / w and tx1 >= x1 * s / w
        assert ty0 <= y0 * s / h and ty1 >= y1 * s / h
        assert 0 <= tx0 < tx1 <= s and 0 <= ty0 < ty1 <= s
        # and it is the tightest such integer box
        assert tx0 > x0 * s / w - 1 and tx1 < x1 * s / w + 1


def test_training_box_identity_at_same_size():
    assert bx.to_training((3, 4, 9, 10), 16, 16, 16) == (3, 4, 9, 10)
    assert bx.from_training((3, 4, 9, 10), 16, 16, 16) == (3, 4, 9, 10)


def test_fill_boxes_and_area():
    f = bx.fill_boxes([(1, 1, 3, 4), (2, 2, 5, 3)], 6)
    assert f.dtype == np.uint8 and f.sum() == 6 + 3 - 1
    assert bx.box_area((1, 1, 3, 4)) == 6


def test_grid_cell_positive_if_any_pixel_and_exact_for_single_pixels():
    m = np.zeros((10, 10), np.uint8)
    m[9, 0] = 1  # one pixel in the bottom-left corner
    g = bx.grid_mask(m, 3)
    assert g.tolist() == [[0, 0, 0], [0, 0, 0], [1, 0, 0]]
    # a grid as fine as the image is the mask itself; k=1 is the image label
    rng = np.random.default_rng(0)
    r = (rng.random((12, 12)) > 0.9).astype(np.uint8)
    assert np.array_equal(bx.grid_mask(r, 12), r)
    assert bx.grid_mask(r, 1).tolist() == [[1]]
    assert bx.grid_mask(np.zeros((12, 12)), 4).sum() == 0


def test_grid_matches_brute_force_on_non_divisible_sizes():
    rng = np.random.default_rng(1)
    h, w, k = 23, 17, 5
    m = (rng.random((h, w)) > 0.97).astype(np.uint8)
    g = bx.grid_mask(m, k)
    brute = np.zeros((k, k), np.uint8)
    for i in range(k):
        for j in range(k):
            rows = [r for r in range(h) if (r * k) // h == i]
            cols = [c for c in range(w) if (c * k) // w == j]
            brute[i, j] = m[np.ix_(rows, cols)].any()
    assert np.array_equal(g, brute)
