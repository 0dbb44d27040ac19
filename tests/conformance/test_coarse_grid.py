"""Row "mask coarsening": the study made masks coarser by max-pooling to a k x k grid (a cell is
abnormal if any of its pixels is). The `grid:K` training targets derive-boxes and the trainer
make are compared with max-pooled masks, brought back to the training size by repeating each cell."""

from __future__ import annotations

import numpy as np
import pytest

from conformance import data
from spurspec.artefacts.dataset import Dataset
from spurspec.config import build
from spurspec.datasets.boxes import DeriveBoxesConfig, derive_boxes
from spurspec.training.config import TrainConfig
from spurspec.training.data import granularity

S = 16


def study_grid(mask: np.ndarray, k: int) -> np.ndarray:
    """Max-pool an S x S mask to k x k cells, then repeat each cell over its S/k x S/k pixels."""
    cell = S // k
    pooled = mask.reshape(k, cell, k, cell).max(axis=(1, 3))
    return np.kron(pooled, np.ones((cell, cell), np.uint8))


@pytest.mark.parametrize("k", [1, 2, 4, 8])
def test_grid_targets_are_max_pooled_masks(tmp_path, k):
    m = np.zeros((3, S, S), np.uint8)
    m[0, 3, 3] = 1  # one pixel marks its whole cell
    m[0, 9:11, 12:16] = 1
    m[1, 7:9, 7:9] = 1  # straddles the centre: four cells at k = 2
    root = data.write(tmp_path / "ds", m, [1, 1, 0])
    cfg = build(TrainConfig, {"preset": "study", "granularity": f"grid:{k}"})
    derive_boxes(DeriveBoxesConfig(dataset=root, mode=cfg.box_mode, grids=(k,)))
    targets = granularity.prepare(Dataset.open(root), granularity.parse(cfg.granularity), cfg.box_mode,
                                  lambda s: None, cfg.head)
    for i in range(3):
        np.testing.assert_array_equal(targets(i), study_grid(m[i], k), err_msg=f"row {i}, k {k}")
