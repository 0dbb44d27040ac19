"""Training augmentation: image and pixel target move together, each (seed, epoch, image) gets
its own draw, and the same key gives the same result in any process (workers, resumed runs)."""

from __future__ import annotations

import copy

import numpy as np
import pyarrow as pa
import pytest
import torch

from spurspec.artefacts.dataset import Dataset, DatasetWriter
from spurspec.training import granularity
from spurspec.training.data import RowsDataset

S = 32


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    out = tmp_path_factory.mktemp("aug") / "ds"
    n = 4
    with DatasetWriter(out, n=n, size=S, channels=1) as w:
        for i in range(n):
            mask = np.zeros((S, S), np.uint8)
            mask[4 + i : 14 + i, 6:20] = 1  # an off-centre rectangle, so flips and rotations show
            w.put(i, (20 + 200 * mask)[None].astype(np.uint8), mask)
        manifest = pa.table({
            "image_id": [f"i{i}" for i in range(n)], "patient_id": [f"p{i}" for i in range(n)],
            "split": ["train"] * n, "label": pa.array([1] * n, pa.int8()), "has_mask": [True] * n,
            "source": ["t"] * n, "orig_height": pa.array([S] * n, pa.int32()), "orig_width": pa.array([S] * n, pa.int32()),
        })
        w.finish(manifest, spurious=[], info={"name": "aug"}, settings={}, inputs={})
    return Dataset.open(out)


def _rows(dataset: Dataset, seed: int = 0) -> RowsDataset:
    targets = granularity.Targets(dataset, granularity.parse("seg"))
    return RowsDataset(dataset.root, np.ones(4), targets, "standard", seed)


def test_image_and_target_move_together(dataset):
    rows = _rows(dataset)
    changed = 0
    for epoch in range(6):
        for row in range(4):
            item = rows[(row, epoch)]
            bright = item["image"][0] > 0.0  # the rectangle was 220/255 on a 20/255 background
            target = item["target"] > 0.5
            inter, union = (bright & target).sum().item(), (bright | target).sum().item()
            assert union > 0 and inter / union > 0.7, (row, epoch, inter, union)
            changed += not torch.equal(target, torch.from_numpy(dataset.masks()[row].astype(bool)))
    assert changed >= 12  # most draws flip or warp the pair


def test_same_key_same_draw_in_any_process_and_new_epoch_new_draw(dataset):
    a, b = _rows(dataset), copy.deepcopy(_rows(dataset))  # state as a spawned loader worker gets it (__getstate__)
    for row in range(4):
        assert torch.equal(a[(row, 3)]["image"], b[(row, 3)]["image"])
        assert torch.equal(a[(row, 3)]["target"], b[(row, 3)]["target"])
    assert any(not torch.equal(a[(r, 1)]["image"], a[(r, 2)]["image"]) for r in range(4))
    other_seed = _rows(dataset, seed=1)
    assert any(not torch.equal(a[(r, 1)]["image"], other_seed[(r, 1)]["image"]) for r in range(4))


def test_evaluation_items_are_not_augmented(dataset):
    rows = _rows(dataset)
    item = rows[(2, -1)]
    expected = (torch.from_numpy(dataset.images()[2].astype(np.float32)) / 255.0 - 0.5) / 0.5
    assert torch.equal(item["image"], expected)
