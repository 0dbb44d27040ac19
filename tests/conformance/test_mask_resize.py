"""Row "mask resize": the study took chest-film masks from 1024 to 512 px by max-pooling, a pixel
positive if any of its four source pixels is (fact sheet, "Mask resizing 1024 -> 512").

A generated SIIM-format folder (1024 px JPEG DICOMs, label CSV) holds fixed masks with
features a resize can lose: single specks, one-pixel lines, a diagonal, a blob whose edges fall
inside 2 x 2 blocks. It is ingested as pipelines/siim-study.toml declares its dataset (only the
paths and worker count replaced), and masks.npy must be the study's max-pool, transcribed here
from the fact sheet. spurspec's default for other data, the area rule, is the documented
difference: it keeps a cell only when half of it is covered, so it drops what max-pooling keeps."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from siim_builder import write_folder

from spurspec.artefacts.dataset import Dataset
from spurspec.config import build
from spurspec.datasets import siim
from spurspec.pipeline import spec as specs

PIPELINE = Path(__file__).resolve().parents[2] / "pipelines" / "siim-study.toml"
FULL = 1024


def study_max_pool(mask: np.ndarray) -> np.ndarray:
    """The study's resize: each 512 px pixel is positive if any of its four 1024 px pixels is."""
    m = mask.astype(bool)
    return (m[0::2, 0::2] | m[0::2, 1::2] | m[1::2, 0::2] | m[1::2, 1::2]).astype(np.uint8)


def fixed_masks() -> list[np.ndarray]:
    """Three 1024 px masks whose resize differs by rule: specks at odd and even pixels, one-pixel
    lines along odd rows and columns, a diagonal, a blob with edges inside 2 x 2 blocks."""
    a = np.zeros((FULL, FULL), bool)
    a[101, 203] = a[600, 600] = a[999, 1] = True  # specks (a quarter of a 2 x 2 block)
    a[301, 100:401] = True  # a one-pixel line on an odd row: half of each block
    a[500:701, 801] = True  # and on an odd column
    b = np.zeros((FULL, FULL), bool)
    idx = np.arange(200, 600)
    b[idx, idx + 1] = True  # a diagonal off the block grid: one pixel in each block it crosses
    b[701:858, 301:460] = True  # a blob, every edge inside a block
    c = b.T.copy()  # the same shapes transposed (SIIM's RLE runs down columns)
    return [a, b, c]


def siim_rle(mask: np.ndarray) -> str:
    """SIIM's relative RLE (fact sheet, "The data, as it ships"): column-major, gap/run pairs."""
    flat = np.concatenate([[0], mask.T.ravel().astype(np.int8), [0]])
    edges = np.flatnonzero(np.diff(flat))
    starts, ends = edges[0::2], edges[1::2]
    gaps = starts - np.concatenate([[0], ends[:-1]])
    return " ".join(f"{g} {r}" for g, r in zip(gaps.tolist(), (ends - starts).tolist(), strict=True))


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> tuple[Path, dict[str, np.ndarray]]:
    root = tmp_path_factory.mktemp("siim-resize")
    masks = {f"1.2.826.0.24.{k}": m for k, m in enumerate(fixed_masks())}
    negatives = [(f"1.2.826.0.24.{k}", "-1") for k in range(3, 9)]
    write_folder(root, [(i, siim_rle(m)) for i, m in masks.items()] + negatives, "stage2", FULL)
    return root, masks


def ingest(root: Path, out: Path, **dataset: object) -> Dataset:
    cfg = build(siim.Config, {**dataset, "root": root, "out": out, "workers": 1})
    siim.ingest(cfg)
    return Dataset.open(out)


def study_dataset() -> dict[str, object]:
    """pipelines/siim-study.toml's [datasets.siim] settings, without its data paths."""
    declared = specs.load(PIPELINE).datasets["siim"]
    assert declared.source == "siim"
    return {k: v for k, v in declared.options.items() if k not in ("root", "tube_labels")}


def stored(ds: Dataset) -> dict[str, np.ndarray]:
    ids = ds.manifest.column("image_id").to_pylist()
    return dict(zip(ids, np.asarray(ds.masks()), strict=True))


def test_the_study_pipeline_stores_the_studys_max_pool(folder, tmp_path):
    root, masks = folder
    settings = study_dataset()
    assert settings["size"] == FULL // 2 and settings["mask_resize"] == "max"
    ds = ingest(root, tmp_path / "study", **settings)
    got = stored(ds)
    for image_id, mask in masks.items():
        assert np.array_equal(got[image_id], study_max_pool(mask)), image_id
    assert not any(got[i].any() for i in got if i not in masks)  # negatives stay empty
    assert ds.info["mask_resize"] == "max"
    recorded = json.loads((tmp_path / "study" / "provenance" / "ingest.json").read_text())["settings"]
    assert recorded["mask_resize"] == "max"


def test_the_default_is_the_documented_area_rule(folder, tmp_path):
    """Without the option: a cell is kept when half its pixels are (lines on the block grid's
    odd rows survive, specks and the off-grid diagonal do not), a subset of the study's cells,
    and the dataset records `area`."""
    root, masks = folder
    ds = ingest(root, tmp_path / "default", size=FULL // 2)
    got = stored(ds)
    for image_id, mask in masks.items():
        study = study_max_pool(mask)
        blocks = mask.reshape(FULL // 2, 2, FULL // 2, 2).sum(axis=(1, 3))
        assert np.array_equal(got[image_id], (blocks >= 2).astype(np.uint8)), image_id  # half of 4 pixels
        assert (got[image_id] <= study).all() and got[image_id].sum() < study.sum(), image_id
    assert ds.info["mask_resize"] == "area"
