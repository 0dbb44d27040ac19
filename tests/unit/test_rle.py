"""SIIM RLE codec: exact round trip on real competition strings, unions of multi-row images,
and malformed strings (odd token counts, runs past the image, junk) rejected clearly."""

from __future__ import annotations

import numpy as np
import pytest
from siim_builder import real_rows

from spurspec.errors import InputError
from spurspec.imaging import rle

_cache: dict = {}


@pytest.fixture
def real(real_data):
    if "rows" not in _cache:  # parse the 12,954-row file once for the module
        _cache["rows"] = real_rows(real_data)
    return _cache["rows"]


def test_real_strings_round_trip(real):
    texts = sorted(t for rows in real.values() for t in rows if t != rle.EMPTY)
    assert len(texts) > 3000  # the real file holds 3,576 mask rows
    rng = np.random.default_rng(0)
    for i in rng.choice(len(texts), size=300, replace=False):
        mask = rle.decode(texts[i], 1024, 1024)
        assert mask.any()
        assert rle.encode(mask) == texts[i]


def test_real_negatives_are_empty(real):
    negatives = [i for i, rows in real.items() if rows == [rle.EMPTY]]
    assert len(negatives) > 9000
    assert not rle.decode(real[negatives[0]][0], 1024, 1024).any()


def test_real_multi_row_images_union(real):
    multi = sorted(i for i, rows in real.items() if len(rows) > 1 and rle.EMPTY not in rows)[:20]
    assert multi
    for image_id in multi:
        parts = [rle.decode(t, 1024, 1024) for t in real[image_id]]
        union = rle.union(real[image_id], 1024, 1024)
        assert np.array_equal(union, np.logical_or.reduce(parts))
        assert union.sum() >= max(p.sum() for p in parts)
        assert np.array_equal(rle.decode(rle.encode(union), 1024, 1024), union)


def test_column_major_relative_positions():
    mask = np.zeros((3, 4), dtype=bool)
    mask[0, 1] = True  # column-major index 1 * 3 + 0 = 3
    mask[2, 1] = mask[0, 2] = True  # indices 5 and 6: one run of 2 after a gap of 1
    assert rle.encode(mask) == "3 1 1 2"
    assert np.array_equal(rle.decode("3 1 1 2", 3, 4), mask)


def test_edges_and_random_round_trip():
    rng = np.random.default_rng(1)
    for shape in [(5, 7), (16, 16), (1, 9)]:
        for _ in range(20):
            mask = rng.random(shape) < 0.4
            mask[0, 0] = rng.random() < 0.5
            mask[-1, -1] = True
            assert np.array_equal(rle.decode(rle.encode(mask), *shape), mask)
    full = np.ones((4, 4), dtype=bool)
    assert rle.encode(full) == "0 16"


@pytest.mark.parametrize("text", ["-1", "", "  -1  "])
def test_empty_forms(text):
    assert not rle.decode(text, 8, 8).any()
    assert rle.encode(np.zeros((8, 8))) == rle.EMPTY


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("5 2 7", "odd number of tokens"),
        ("60 10", "runs past the image"),
        ("0 65", "runs past the image"),
        ("3 x", "not an integer"),
        ("3 -2", "negative"),
        ("3 99999999999999999999", "too large"),
    ],
)
def test_malformed_strings_rejected(text, why):
    with pytest.raises(InputError, match=why):
        rle.decode(text, 8, 8)


def test_union_rejects_any_bad_row():
    with pytest.raises(InputError, match="odd"):
        rle.union(["0 4", "1 2 3"], 8, 8)


def test_ingest_union_matches_codec_on_real_rows(real):
    """`ingest siim` paints runs itself (60x faster than a full-image cumsum); it must agree
    with the codec on real single- and multi-row images."""
    from spurspec.datasets.siim import parse_rows, union_transposed

    ids = sorted(i for i, rows in real.items() if rle.EMPTY not in rows)
    picked = [i for i in ids if len(real[i]) > 1][:15] + ids[:15]
    for image_id in picked:
        rows = [(f"row{k}", t) for k, t in enumerate(real[image_id])]
        band, top = union_transposed(parse_rows(rows, 1024, 1024), 1024, 1024, 4)
        full_t = np.zeros((1024, 1024), dtype=bool)
        full_t[top : top + len(band)] = band
        assert np.array_equal(full_t.T, rle.union(real[image_id], 1024, 1024))
    assert union_transposed(parse_rows([("r", rle.EMPTY)], 1024, 1024), 1024, 1024) is None


@pytest.mark.parametrize(("text", "why"), [("5 2 7", "odd number"), ("60 10", "runs past the image"), ("3 x", "not an integer"), ("3 -2", "negative")])
def test_ingest_union_rejects_malformed_rows_naming_them(text, why):
    from spurspec.datasets.siim import parse_rows

    with pytest.raises(InputError, match=rf"^labels\.csv:7: .*{why}"):
        parse_rows([("labels.csv:7", text)], 8, 8)
