"""Row "negative subsampling": the study's code kept each chest-film negative once, with
probability 0.33, and every positive; on ISIC it kept every image. Under `--preset study` the
training rows of a chest-film dataset (SIIM, or any source but ISIC) and of ISIC are compared
with that rule: on 30,000 rows the kept share of negatives is 0.33 within five standard errors,
the draw is made once (every epoch trains the same rows), and ISIC keeps all."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from spurspec.config import build
from spurspec.training.config import KEEP_NEGATIVES, TrainConfig
from spurspec.training.data.rows import epoch_rows, keep_negatives_once
from spurspec.training.trainer import effective_balance

N = 30_000
STUDY_KEEP = 0.33  # the study's probability of keeping a chest-film negative


def preset_rows(dataset_name: str, seed: int, epoch: int) -> tuple[np.ndarray, np.ndarray]:
    """(labels, the rows one epoch trains) under the preset, as the trainer derives them."""
    cfg = build(TrainConfig, {"preset": "study", "seed": seed})
    labels = (np.random.default_rng(5).random(N) < 0.25).astype(np.int8)
    rows = np.arange(N)
    balance = effective_balance(cfg.balance, SimpleNamespace(info={"name": dataset_name}))
    if balance == "subsample-once":  # the trainer's own step (trainer._train_rows)
        rows = keep_negatives_once(rows, labels, KEEP_NEGATIVES, cfg.seed)
    return labels, epoch_rows(rows, labels, balance, cfg.seed, epoch)


@pytest.mark.parametrize("name", ["siim", "synthetic", "folder"])
def test_chest_films_keep_each_negative_once_with_p_033(name):
    labels, rows = preset_rows(name, seed=0, epoch=0)
    negatives = int((labels == 0).sum())
    kept = int((labels[rows] == 0).sum())
    se = np.sqrt(STUDY_KEEP * (1 - STUDY_KEEP) / negatives)
    assert abs(kept / negatives - STUDY_KEEP) < 5 * se
    assert np.array_equal(np.flatnonzero(labels == 1), rows[labels[rows] == 1])  # every positive
    assert np.array_equal(rows, preset_rows(name, seed=0, epoch=7)[1])  # drawn once, not per epoch
    assert not np.array_equal(rows, preset_rows(name, seed=1, epoch=0)[1])  # seeded


def test_isic_keeps_every_image():
    labels, rows = preset_rows("isic", seed=0, epoch=3)
    assert np.array_equal(rows, np.arange(N))


def test_the_default_differs_as_documented():
    """spurspec's default draws a fresh 1:1 sample of negatives every epoch."""
    labels = (np.random.default_rng(5).random(N) < 0.25).astype(np.int8)
    balance = TrainConfig().balance
    first, second = (epoch_rows(np.arange(N), labels, balance, 0, e) for e in (0, 1))
    assert (labels[first] == 0).sum() == (labels[first] == 1).sum() == (labels == 1).sum()
    assert not np.array_equal(first, second)
