"""Rows "optimiser", "schedule", "batch", "epochs" and "stopping": the study's code trained with
Adam at lr 5e-4, no weight decay, a constant rate, batches of 16 with the last partial batch
dropped, for 100 epochs with no early stopping. A run under `--preset study` (on the small model,
two epochs of its 100 on tiny data) is checked in what it saved: the optimiser's class and
settings, the rate after each epoch, and the steps it took (batches of 16; the last partial batch
kept, the documented difference)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from e2e.tiny_dataset import make

from spurspec.artefacts.dataset import Dataset
from spurspec.artefacts.layout import RunLayout
from spurspec.config import build
from spurspec.training import train
from spurspec.training.checkpoint import load
from spurspec.training.config import KEEP_NEGATIVES, TrainConfig
from spurspec.training.data.rows import keep_negatives_once

pytestmark = pytest.mark.slow  # one tiny run of two epochs (~15 s on 2 cores)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("optimiser")
    data = make(root / "data", n=60, size=16)
    cfg = build(TrainConfig, {"preset": "study", "dataset": data, "out": root / "run", "granularity": "binary",
                              "model": "small", "pretrained": "none", "epochs_this_run": 2, "threads": 1})
    train(cfg, progress=False)
    return cfg, data, load(RunLayout(cfg.out).checkpoint("last"))


def test_the_preset_has_the_studys_settings(run):
    cfg, _, _ = run
    assert (cfg.lr, cfg.weight_decay, cfg.schedule, cfg.batch_size, cfg.epochs, cfg.patience) == (
        5e-4, 0.0, "constant", 16, 100, 0)


def test_the_run_used_adam_at_a_constant_rate_without_weight_decay(run):
    _, _, state = run
    group = state["optimizer"]["param_groups"][0]
    # Adam's settings (AdamW would have decoupled_weight_decay true; SGD has no betas).
    assert (group["amsgrad"], group.get("decoupled_weight_decay", False), group["eps"]) == (False, False, 1e-8)
    assert (group["lr"], group["weight_decay"], group["betas"]) == (5e-4, 0.0, (0.9, 0.999))
    assert state["scheduler"]["base_lrs"] == [5e-4] and state["scheduler"]["_last_lr"] == [5e-4]
    assert [row["lr"] for row in state["log"]] == [5e-4, 5e-4]


def test_batches_of_16_with_the_last_partial_one_kept(run):
    cfg, data, state = run
    ds = Dataset.open(data)
    labels = np.asarray(ds.manifest.column("label").to_numpy(zero_copy_only=False))
    split = np.asarray(ds.manifest.column("split").to_numpy(zero_copy_only=False))
    kept = keep_negatives_once(np.flatnonzero(split == "train"), labels, KEEP_NEGATIVES, cfg.seed)
    steps = {int(s["step"]) for s in state["optimizer"]["state"].values()}
    assert len(kept) % 16  # a partial last batch exists: the study's drop_last would skip it
    assert steps == {2 * math.ceil(len(kept) / 16)}


def test_a_fresh_run_would_train_all_100_epochs(run):
    cfg, _, state = run
    assert state["epoch"] == 1 and cfg.epochs - 1 - state["epoch"] == 98  # 98 epochs still to go
    assert cfg.patience == 0  # the trainer stops early only when patience is set (0 = never)
