"""Granularity parsing, grid upsampling, the mask budget and per-epoch sampling."""

from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from spurspec.errors import ConfigError, InputError
from spurspec.training.data import budget, granularity
from spurspec.training.data import rows as data


def test_parse_names():
    assert granularity.parse("binary").pixel is False
    seg = granularity.parse("seg")
    assert seg.pixel and seg.source == "masks" and seg.default_select == "dice"
    assert granularity.parse("bbox").default_select == "auroc"
    g = granularity.parse("grid:8")
    assert g.grid == 8 and g.source == "grid" and g.name == "grid:8"
    assert set(granularity.names()) == {"binary", "bbox", "seg", "grid:K"}


@pytest.mark.parametrize("bad", ["grid", "grid:0", "grid:x", "seg:2", "boxes"])
def test_parse_rejects(bad):
    with pytest.raises(ConfigError):
        granularity.parse(bad)


def test_grid_targets_upsample_nearest(tmp_path: Path):
    (tmp_path / "grids").mkdir()
    grid = np.zeros((1, 4, 4), np.uint8)
    grid[0, 1, 2] = 1
    np.save(tmp_path / "grids" / "grid4.npy", grid)
    t = granularity.Targets.__new__(granularity.Targets)
    t.root, t.gran, t.size, t._array = tmp_path, granularity.parse("grid:4"), 10, None
    t.labels, t.classes = np.array([1]), 2
    t._cells = (np.arange(10) * 4) // 10
    up = t(0)
    assert up.shape == (10, 10)
    rows, cols = np.nonzero(up)
    # cell (1, 2) of a 4x4 grid covers rows 3..4 and columns 5..7 of a 10x10 image
    assert sorted(set(rows.tolist())) == [3, 4] and sorted(set(cols.tolist())) == [5, 6, 7]


def _manifest(labels, has_mask):
    n = len(labels)
    return pa.table({"image_id": [f"i{i}" for i in range(n)], "label": pa.array(labels, pa.int8()),
                     "has_mask": has_mask})


def test_budget_counts_fractions_and_errors():
    assert budget.resolve_count(None, 7) == 7
    assert budget.resolve_count(3, 7) == 3
    assert budget.resolve_count(0.5, 10) == 5
    with pytest.raises(InputError, match="larger than the 7"):
        budget.resolve_count(8, 7)
    with pytest.raises(ConfigError):
        budget.resolve_count(1.5, 7)


def test_budget_keeps_negatives_and_drops_unkept_positives():
    labels = [1, 1, 1, 1, 0, 0, 1, 0]
    has_mask = [True, True, True, True, False, False, False, False]
    m = _manifest(labels, has_mask)
    train = np.arange(8)
    rows, table = budget.choose(m, train, 2, seed=3)
    assert set([4, 5, 7]) <= set(rows.tolist())  # negatives always
    assert 6 not in rows  # a positive without a mask leaves pixel training
    assert sum(table.column("kept").to_pylist()) == 2 and table.num_rows == 4
    rows2, _ = budget.choose(m, train, 2, seed=3)
    assert rows.tolist() == rows2.tolist()  # seeded


def test_epoch_rows_subsample_balances_and_is_seeded():
    labels = np.array([1] * 5 + [0] * 20)
    rows = np.arange(25)
    e0 = data.epoch_rows(rows, labels, "subsample", seed=1, epoch=0)
    assert (labels[e0] == 1).sum() == 5 and (labels[e0] == 0).sum() == 5
    assert e0.tolist() == data.epoch_rows(rows, labels, "subsample", seed=1, epoch=0).tolist()
    assert e0.tolist() != data.epoch_rows(rows, labels, "subsample", seed=1, epoch=1).tolist()
    assert data.epoch_rows(rows, labels, "none", 1, 0).tolist() == rows.tolist()


def test_epoch_sampler_shards_cover_every_row():
    rows = np.arange(11) * 3
    shards = [list(data.EpochSampler(rows, epoch=2, seed=0, rank=r, world=2)) for r in range(2)]
    assert len(shards[0]) == len(shards[1]) == 6
    seen = {row for shard in shards for row, epoch in shard}
    assert seen == set(rows.tolist()) and all(e == 2 for s in shards for _, e in s)
    one = [row for row, _ in data.EpochSampler(rows, epoch=2, seed=0)]
    assert sorted(one) == sorted(rows.tolist())


def test_selection_ties_on_dice_are_broken_by_val_auroc():
    from spurspec.training.trainer import _improves

    nan = float("nan")
    assert _improves(0.0, 0.6, None, None)
    assert _improves(0.0, 0.8, 0.0, 0.6)  # Dice still 0, AUROC rose: progress
    assert not _improves(0.0, 0.5, 0.0, 0.6)
    assert _improves(0.1, 0.1, 0.0, 0.9)  # the selection metric decides first
    assert not _improves(nan, 0.9, 0.0, 0.5)


def test_a_three_class_budget_counts_the_negatives_masks():
    """Under a three-class head (ISIC: benign lesions are a class) a negative's mask is a target,
    so a budget of N keeps N masks in all, benign and malignant alike; a benign image whose mask
    is not kept leaves pixel training (an all-background target would call its lesion
    background), and one without a mask still trains with an empty target."""
    labels = [1, 0, 1, 0, 0, 1, 0, 0]
    has_mask = [True, True, True, True, True, True, True, False]
    m = _manifest(labels, has_mask)
    train = np.arange(8)
    rows, table = budget.choose(m, train, 3, seed=0, negatives_masked=True)
    assert table.column("row").to_pylist() == [0, 1, 2, 3, 4, 5, 6]  # every mask the model sees
    kept = [r for r, k in zip(table.column("row").to_pylist(), table.column("kept").to_pylist(), strict=True) if k]
    assert len(kept) == 3 and rows.tolist() == sorted([*kept, 7])
    every, _ = budget.choose(m, train, None, seed=0, negatives_masked=True)
    assert every.tolist() == train.tolist()
    # two classes: negatives' masks are background, so the budget counts the positives' only (as before)
    rows2, table2 = budget.choose(m, train, 2, seed=0)
    assert table2.column("row").to_pylist() == [0, 2, 5] and {1, 3, 4, 6, 7} <= set(rows2.tolist())


def test_train_fraction_keeps_images_with_their_masks_and_is_seeded():
    n = 4000
    labels = np.tile([1, 0], n // 2)
    m = _manifest(labels.tolist(), (labels == 1).tolist())
    train = np.arange(n)
    rows, table = budget.sample(m, train, 0.25, seed=5)
    assert rows.tolist() == budget.sample(m, train, 0.25, seed=5)[0].tolist()
    assert rows.tolist() != budget.sample(m, train, 0.25, seed=6)[0].tolist()
    for label in (0, 1):  # each class kept at the rate: the balance is unchanged
        assert abs((labels[rows] == label).sum() / (n // 2) - 0.25) < 0.04
    # the table: every masked image (the positives), kept exactly where its image is
    assert table.column("row").to_pylist() == train[labels == 1].tolist()
    assert set(np.asarray(table.column("row"))[np.asarray(table.column("kept"))].tolist()) == set(rows[labels[rows] == 1].tolist())
    with pytest.raises(ConfigError, match="train fraction 0"):
        budget.sample(m, train, 0.0, seed=0)
