"""The ingest speed-ups of issue 17 (item 4) keep ingest's output byte-identical: the mask resize
by block sums equals Pillow's float box filter (the path it replaced, rebuilt here as the oracle)
for power-of-two factors, and the canonical RLE worked out from runs equals re-encoding the
painted union, on random, overlapping, touching and zero-length runs and on the real SIIM rows."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from siim_builder import real_rows

from spurspec.imaging import rle
from spurspec.imaging.resize import resize_mask


def pillow_resize_mask(mask: np.ndarray, size: int) -> np.ndarray:
    """resize_mask as it was before the block-sum path: Pillow's BOX filter on float32."""
    mask = np.asarray(mask) > 0
    frac = np.asarray(Image.fromarray(mask.astype(np.float32)).resize((size, size), Image.Resampling.BOX))
    out = (frac >= 0.5).astype(np.uint8)
    if mask.any() and not out.any():
        out[np.unravel_index(int(np.argmax(frac)), frac.shape)] = 1
    return out


@pytest.mark.parametrize(("shape", "size"), [((1024, 1024), 256), ((1024, 1024), 512), ((1024, 1024), 64),
                                             ((512, 1024), 256), ((256, 256), 16), ((96, 96), 32), ((100, 80), 40)])
def test_mask_resize_matches_pillow(shape, size):
    rng = np.random.default_rng(sum(shape) + size)
    for density in (0.0005, 0.02, 0.3, 0.5, 0.9):
        mask = rng.random(shape) < density
        assert np.array_equal(resize_mask(mask, size), pillow_resize_mask(mask, size)), density
    blob = np.zeros(shape, dtype=bool)
    blob[shape[0] // 3 : shape[0] // 3 + 7, 5:30] = True  # edges off the block grid: half-covered cells
    assert np.array_equal(resize_mask(blob, size), pillow_resize_mask(blob, size))
    speck = np.zeros(shape, dtype=np.uint8)
    speck[-1, -1] = 1  # a lesion smaller than a cell keeps its strongest cell
    assert resize_mask(speck, size).sum() == 1
    assert np.array_equal(resize_mask(speck, size), pillow_resize_mask(speck, size))


def test_mask_resize_of_a_transposed_view_matches():
    mask = np.random.default_rng(1).random((1024, 1024)) < 0.4
    assert np.array_equal(resize_mask(mask.T, 256), pillow_resize_mask(mask.T, 256))


def random_rle(rng: np.random.Generator, n: int) -> str:
    tokens, pos = [], 0
    while True:
        gap, run = int(rng.integers(0, 40)), int(rng.integers(0, 25))  # 0: touching runs, empty runs
        if pos + gap + run > n:
            break
        tokens += [gap, run]
        pos += gap + run
    return " ".join(map(str, tokens)) if tokens else rle.EMPTY


def test_canonical_equals_encoding_the_painted_union():
    rng = np.random.default_rng(0)
    n = 64 * 48
    for _ in range(300):
        texts = [random_rle(rng, n) for _ in range(int(rng.integers(1, 4)))]
        assert rle.canonical(texts, n) == rle.encode(rle.union(texts, 48, 64)), texts
    assert rle.canonical([rle.EMPTY, ""], n) == rle.EMPTY
    assert rle.canonical(["3 0 5 0"], n) == rle.EMPTY  # only zero-length runs: an empty mask
    assert rle.canonical(["0 4", "5 4"], n) == "0 4 1 4"
    assert rle.canonical(["0 4", "0 8"], n) == "0 8"
    assert rle.canonical(["0 4", "4 1"], n) == "0 5"  # a run starting where another ends merges


def test_canonical_matches_on_real_siim_rows(real_data):
    rows = real_rows(real_data)
    multi = [texts for texts in rows.values() if texts != [rle.EMPTY]]
    assert len(multi) > 2000
    for texts in multi:
        assert rle.canonical(texts, 1024 * 1024) == rle.encode(rle.union(texts, 1024, 1024))
