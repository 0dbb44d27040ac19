"""Row "SIIM RLE rows": the study's loader decoded only the first RLE row of an image; spurspec
ORs all of them (a mask, and its box, must cover every region). The documented difference is
checked on an image with two rows, against the SIIM RLE decoding transcribed from the fact
sheet: pairs (gap, run) from a running position, column-major, then transposed."""

from __future__ import annotations

import numpy as np

from spurspec.datasets.siim import union_mask

H = W = 16


def study_decode(text: str) -> np.ndarray:
    """One SIIM RLE row -> (H, W) mask: p += gap; flat[p:p + run] = 1; p += run; reshape, transpose."""
    flat = np.zeros(H * W, np.uint8)
    numbers = [int(v) for v in text.split()]
    p = 0
    for gap, run in zip(numbers[::2], numbers[1::2], strict=True):
        p += gap
        flat[p:p + run] = 1
        p += run
    return flat.reshape(H, W).T


ROWS = [("train-rle.csv line 2", "35 3 13 3"), ("train-rle.csv line 3", "200 2 14 2")]


def test_spurspec_ors_every_row_where_the_study_read_the_first():
    mask, _ = union_mask(ROWS, H, W, H)
    first, second = (study_decode(text) for _, text in ROWS)
    assert first.any() and second.any() and not (first & second).any()
    np.testing.assert_array_equal(mask, first | second)
    assert not np.array_equal(mask, first)  # the study's mask: the first row only
