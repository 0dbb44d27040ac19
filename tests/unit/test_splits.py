"""Patient splits: no patient spans two splits, val/test hold exactly the tube-labelled patients'
images in the configured shares, seeds reproduce; --limit's stratified subset keeps every
label x chest_tube cell (on the real SIIM labels)."""

from __future__ import annotations

from collections import Counter, defaultdict

import numpy as np
import pytest
from siim_builder import real_rows, real_tubes

from spurspec.datasets.siim import assign_splits
from spurspec.datasets.splits import split_groups, stratified_subset

UNTUBED = {"train": 0.7, "val": 0.1, "test": 0.2}


@pytest.fixture
def siim_like(real_data):
    """The real labels and tube labels, with patients holding 1-3 images each (seeded)."""
    rows, tubes = real_rows(real_data), real_tubes(real_data)
    ids = sorted(rows)
    rng = np.random.default_rng(0)
    patients, k = [], 0
    while len(patients) < len(ids):
        patients += [f"P{k}"] * int(rng.integers(1, 4))
        k += 1
    patients = patients[: len(ids)]
    labels = [int(rows[i] != ["-1"]) for i in ids]
    return ids, patients, labels, [tubes.get(i) for i in ids]


def _patient_splits(patients, splits):
    seen = defaultdict(set)
    for p, s in zip(patients, splits, strict=True):
        seen[p].add(s)
    return seen


def test_assign_splits_is_leak_free_and_follows_the_study(siim_like):
    _, patients, labels, tubes = siim_like
    splits = assign_splits(patients, labels, tubes, 1000 / 1951, seed=3, untubed=UNTUBED)
    assert all(len(s) == 1 for s in _patient_splits(patients, splits).values())
    assert all(s in ("val", "test") for s, t in zip(splits, tubes, strict=True) if t is not None)
    pool = {p for p, t in zip(patients, tubes, strict=True) if t is not None}
    assert all((s == "train") == (p not in pool) for p, s in zip(patients, splits, strict=True))
    tubed = Counter(s for s, t in zip(splits, tubes, strict=True) if t is not None)
    assert abs(tubed["test"] / sum(tubed.values()) - 1000 / 1951) < 0.03
    # Every robust cell (label x tube) appears in both evaluation splits.
    cells = Counter((s, y, t) for s, y, t in zip(splits, labels, tubes, strict=True) if t is not None)
    assert all(cells[(s, y, t)] > 20 for s in ("val", "test") for y in (0, 1) for t in (0, 1))
    assert splits == assign_splits(patients, labels, tubes, 1000 / 1951, seed=3, untubed=UNTUBED)
    assert splits != assign_splits(patients, labels, tubes, 1000 / 1951, seed=4, untubed=UNTUBED)


def test_assign_splits_without_tube_labels_uses_all_patients():
    patients = [f"P{i // 2}" for i in range(400)]
    labels = [i % 3 == 0 for i in range(400)]
    splits = assign_splits(patients, [int(x) for x in labels], [None] * 400, 0.5, seed=0, untubed=UNTUBED)
    assert all(len(s) == 1 for s in _patient_splits(patients, splits).values())
    counts = Counter(splits)
    assert abs(counts["train"] / 400 - 0.7) < 0.03 and abs(counts["test"] / 400 - 0.2) < 0.03


def test_split_groups_keeps_groups_whole_and_fractions():
    groups = [f"g{i % 97}" for i in range(1000)]
    strata = [i % 97 % 2 for i in range(1000)]
    out = split_groups(groups, {"a": 0.5, "b": 0.3, "c": 0.2}, seed=1, strata=strata)
    assert all(len(s) == 1 for s in _patient_splits(groups, out).values())
    counts = Counter(out)
    assert abs(counts["a"] / 1000 - 0.5) < 0.05 and abs(counts["c"] / 1000 - 0.2) < 0.05


def test_stratified_subset_keeps_all_four_robust_cells(siim_like):
    _, _, labels, tubes = siim_like
    strata = list(zip(labels, tubes, strict=True))
    for limit, seed in [(12, 0), (40, 1), (200, 2)]:
        picked = stratified_subset(strata, limit, seed)
        assert len(picked) <= max(limit, 6) and len(set(picked)) == len(picked)
        cells = Counter(strata[i] for i in picked)
        assert all(cells[(y, t)] >= 1 for y in (0, 1) for t in (0, 1, None)), cells
        assert picked == stratified_subset(strata, limit, seed)
    assert stratified_subset(strata, len(strata) + 5, 0) == list(range(len(strata)))
