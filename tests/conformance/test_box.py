"""Row "box": the study's box is one box spanning every positive pixel of the image's mask,
filled into a box-shaped mask and trained like a mask. A dataset whose positives hold two
separate regions is boxed by derive-boxes with the preset's `box_mode`, and the training targets
a `bbox` run reads are compared with that box computed from the masks."""

from __future__ import annotations

import numpy as np

from conformance import data
from spurspec.artefacts.dataset import Dataset
from spurspec.config import build
from spurspec.datasets.boxes import DeriveBoxesConfig, derive_boxes
from spurspec.training.config import TrainConfig
from spurspec.training.data import granularity

S = 16


def study_box(mask: np.ndarray) -> np.ndarray:
    """The study's filled box over every positive pixel (empty for an empty mask)."""
    out = np.zeros_like(mask, dtype=np.uint8)
    ys, xs = np.nonzero(mask)
    if ys.size:
        out[ys.min():ys.max() + 1, xs.min():xs.max() + 1] = 1
    return out


def masks() -> np.ndarray:
    m = np.zeros((4, S, S), np.uint8)
    m[0, 2:4, 1:3] = 1  # two regions far apart: one box must span both
    m[0, 11:14, 9:15] = 1
    m[1, 5:9, 5:7] = 1
    m[1, 7, 10] = 1  # a single stray pixel widens the box
    return m  # rows 2 and 3: negatives, empty


def test_bbox_targets_are_the_studys_union_box(tmp_path):
    m, labels = masks(), [1, 1, 0, 0]
    root = data.write(tmp_path / "ds", m, labels)
    cfg = build(TrainConfig, {"preset": "study", "granularity": "bbox"})
    derive_boxes(DeriveBoxesConfig(dataset=root, mode=cfg.box_mode, grids=()))
    targets = granularity.prepare(Dataset.open(root), granularity.parse("bbox"), cfg.box_mode, lambda s: None, cfg.head)
    for i in range(4):
        np.testing.assert_array_equal(targets(i), study_box(m[i]), err_msg=f"row {i}")
    assert targets(0).sum() == 12 * 14  # rows 2..13, columns 1..14
