"""Row "fewer training data": the study's only low-data mechanism is `sample_ratio`: after the
negative subsampling, each training image, positive or negative, is kept with that probability,
and every kept image keeps its mask. spurspec's study mode is `--train-fraction`; here it runs
under `--preset study` through the trainer's own row step (trainer._train_rows) on 30,000 fixed
chest-film rows (a quarter positive, every one masked) and on ISIC-named rows, against that rule
transcribed: drawn from the subsampled rows (a negative the subsampling dropped never returns),
each class kept at p within five standard errors (so the balance is the subsampled one), one
independent draw per image (the kept count varies across seeds as a binomial's does), and the
kept images are exactly the ones trained with their masks. The default (`--mask-budget`) differs
as documented: every image stays and only some positives keep a mask."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pyarrow as pa
import pytest

from spurspec.config import build
from spurspec.training.config import KEEP_NEGATIVES, TrainConfig
from spurspec.training.data import granularity
from spurspec.training.data.rows import keep_negatives_once
from spurspec.training.trainer import _train_rows, effective_balance

N = 30_000
P = 0.2  # the sample_ratio under test
STUDY_KEEP = 0.33  # the study's negative subsampling on chest films, which comes first


def _labels() -> np.ndarray:
    return (np.random.default_rng(5).random(N) < 0.25).astype(np.int8)


def _dataset(name: str, labels: np.ndarray) -> SimpleNamespace:
    manifest = pa.table({"image_id": [f"i{i}" for i in range(len(labels))], "label": pa.array(labels, pa.int8()),
                         "has_mask": pa.array(labels == 1)})
    return SimpleNamespace(manifest=manifest, info={"name": name})


def spurspec_rows(name: str, labels: np.ndarray, seed: int, fraction: float = P, gran: str = "seg"):
    """(training rows, mask table) of `--preset study --train-fraction` on dataset `name`."""
    cfg = build(TrainConfig, {"preset": "study", "seed": seed, "train_fraction": fraction, "granularity": gran})
    ds = _dataset(name, labels)
    balance = effective_balance(cfg.balance, ds)
    return _train_rows(cfg, granularity.parse(gran), ds, labels, np.arange(len(labels)),
                       SimpleNamespace(classes=2), balance)[:2]


def study_sample_ratio(rows: np.ndarray, p: float, rng: np.random.Generator) -> np.ndarray:
    """The study's rule, transcribed from the fact sheet: one draw per image, kept when below p."""
    return rows[rng.random(len(rows)) < p]


def _within(kept: int, total: int, p: float) -> bool:
    return abs(kept / total - p) < 5 * np.sqrt(p * (1 - p) / total)


@pytest.mark.parametrize("seed", [0, 3])
def test_chest_films_sample_after_the_negative_subsampling_keeping_the_balance(seed):
    labels = _labels()
    rows, table = spurspec_rows("siim", labels, seed)
    subsampled = keep_negatives_once(np.arange(N), labels, KEEP_NEGATIVES, seed)
    assert KEEP_NEGATIVES == STUDY_KEEP
    assert np.isin(rows, subsampled).all()  # nothing the subsampling dropped comes back
    study = study_sample_ratio(subsampled, P, np.random.default_rng(seed))
    for label in (0, 1):  # each class at p of the subsampled rows, as the transcription keeps it
        before = int((labels[subsampled] == label).sum())
        assert _within(int((labels[rows] == label).sum()), before, P)
        assert _within(int((labels[study] == label).sum()), before, P)
    # masks kept: the table lists the subsampled masked images, kept exactly where the image is
    listed = np.asarray(table.column("row"))
    assert np.array_equal(listed, subsampled[labels[subsampled] == 1])
    assert set(listed[np.asarray(table.column("kept"))].tolist()) == set(rows[labels[rows] == 1].tolist())


def test_one_independent_draw_per_image():
    """A fixed count would not vary; the study's per-image draw gives a binomial count."""
    labels = _labels()[:400]
    counts = [len(spurspec_rows("isic", labels, seed)[0]) for seed in range(200)]
    assert abs(np.var(counts) / (400 * P * (1 - P)) - 1) < 0.35
    assert abs(np.mean(counts) / (400 * P) - 1) < 0.05


def test_isic_samples_every_image():
    """No negative subsampling on ISIC, so the fraction is drawn from every training image."""
    labels = _labels()
    rows, _ = spurspec_rows("isic", labels, seed=1)
    for label in (0, 1):
        assert _within(int((labels[rows] == label).sum()), int((labels == label).sum()), P)
    binary, table = spurspec_rows("isic", labels, seed=1, gran="binary")
    assert np.array_equal(rows, binary) and table is None  # image-label models get the same images


def test_the_default_differs_as_documented():
    """`--mask-budget` (spurspec's own, the default way to fewer masks) keeps every image: the
    negatives all stay and only the budget's positives keep a mask."""
    labels = _labels()
    cfg = build(TrainConfig, {"mask_budget": 0.2, "granularity": "seg", "balance": "none"})
    assert TrainConfig().train_fraction is None
    rows, table, _ = _train_rows(cfg, granularity.parse("seg"), _dataset("siim", labels), labels, np.arange(N),
                                 SimpleNamespace(classes=2), "none")
    assert np.array_equal(rows[labels[rows] == 0], np.flatnonzero(labels == 0))
    positives = int((labels == 1).sum())
    assert int((labels[rows] == 1).sum()) == sum(table.column("kept").to_pylist()) == int(np.floor(0.2 * positives + 0.5))
