"""Row "splits": the study drew 1,000 test images from its 1,951 tube-labelled chest films and
validated on the rest (its split files were not published, so spurspec's test set is its own
seeded draw); on ISIC it used the trap sets, whose val images are also inside its training set
(a leak spurspec does not copy). Checked on a SIIM-shaped pool and on the real trap-set files."""

from __future__ import annotations

import numpy as np
import pytest

from spurspec.datasets import isic
from spurspec.datasets.common import Rejects
from spurspec.datasets.siim import Config, assign_splits

TUBED, OTHERS = 1951, 10_096  # the study's tube-labelled images; the rest of SIIM's 12,047


def siim_pool() -> tuple[list[str], list[int], list[int | None]]:
    """One image per patient, as most of SIIM; the tube-labelled images carry the study's
    counts (333 of 453 positives and 192 of 1,498 negatives with a tube)."""
    labels = [1] * 453 + [0] * 1498 + [int(i % 5 == 0) for i in range(OTHERS)]
    tubes: list[int | None] = [1] * 333 + [0] * 120 + [1] * 192 + [0] * 1306 + [None] * OTHERS
    return [f"p{i}" for i in range(TUBED + OTHERS)], labels, tubes


def split(seed: int) -> np.ndarray:
    patients, labels, tubes = siim_pool()
    untubed = {"train": 0.7, "val": 0.1, "test": 0.2}
    return np.array(assign_splits(patients, labels, tubes, Config(root=".", out=".").test_fraction, seed, untubed))


def test_chest_films_draw_1000_test_images_of_the_tube_labelled_1951():
    out = split(0)
    assert abs(int((out[:TUBED] == "test").sum()) - 1000) <= 2  # whole groups dealt per stratum
    assert set(out[:TUBED]) == {"val", "test"} and set(out[TUBED:]) == {"train"}


def test_the_test_set_is_spurspecs_own_seeded_draw():
    """Not the study's (unpublished) files: another seed draws another test set."""
    assert not np.array_equal(split(0) == "test", split(1) == "test")
    assert np.array_equal(split(0), split(0))


def test_a_patient_with_a_tube_labelled_image_is_never_trained_on():
    patients = ["a", "a", "b", "c"]
    out = assign_splits(patients, [1, 0, 0, 1], [1, None, 0, None], 0.5, 0, {"train": 0.8, "val": 0.1, "test": 0.1})
    assert out[0] == out[1] != "train" and out[3] == "train"


@pytest.mark.realdata
def test_isic_leaves_the_trap_val_images_out_of_training(real_data):
    folder = real_data / "isic" / "trap-sets"
    published = isic._trap_sets(folder, 1)
    val = {i for i, _ in published["val"]}
    assert val <= {i for i, _ in published["train"]}  # the study's leak: val inside train
    everyone = {i for rows in published.values() for i, _ in rows}
    cfg = isic.Config(trap_sets=folder, trap_seed=1)
    split_of = isic._trap_splits(cfg, dict.fromkeys(everyone), Rejects(skip_bad=True), [])
    assert {i for i, s in split_of.items() if s == "val"} == val
    assert not val & {i for i, s in split_of.items() if s == "train"}
