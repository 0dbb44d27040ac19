"""Rows "Dice" and "selection": the validation Dice that selects a mask model's checkpoint, and
which metric selects which granularity's.

The study's Dice (fact sheet, `src/utils.py`): per image, on the argmax prediction,
2·|pred ∧ target| / (|pred| + |target|); an image with nothing predicted and an empty target is
0/0 = NaN and dropped by `np.nanmean`; a false positive on a negative scores 0. Its ISIC sums run
over class values (0/1/2), a quirk spurspec names and does not copy: there its Dice is of the
positive class (region of a positive image), so a perfect malignant map scores 1. Compared here
with spurspec's validation Dice under `--preset study`, on fixed logits."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from conformance.data import Fixed
from spurspec.config import build
from spurspec.training import loop, trainer
from spurspec.training.config import TrainConfig
from spurspec.training.distributed import Dist
from spurspec.training.models import summaries
from spurspec.training.models.heads import PixelHead

S = 4  # 4 x 4 images


def study_dice(pred_map: np.ndarray, target_map: np.ndarray, positive: int) -> float:
    """The study's per-image Dice on class maps (transcribed from the fact sheet), of the class
    a positive image's region has; NaN for 0/0."""
    pred, target = pred_map == positive, target_map == positive
    denom = int(pred.sum() + target.sum())
    return float("nan") if denom == 0 else 2.0 * int((pred & target).sum()) / denom


def validate(logits: torch.Tensor, target: np.ndarray, labels: list[int], classes: int, dice_mode: str) -> float:
    """spurspec's val_dice of a run's validation pass over one batch with these logits."""
    n = len(labels)
    batch = {"image": torch.zeros(n, 1, S, S), "label": torch.tensor(labels, dtype=torch.float32),
             "row": torch.arange(n), "target": torch.from_numpy(target)}
    step = loop.Step(Fixed(logits), None, None, torch.device("cpu"), None, True, "ce", 1.0, False,
                     head=PixelHead(classes))
    return trainer._validate(step, [batch], summaries.mean, Dist(), dice_mode)["val_dice"]


def preset_dice_mode() -> str:
    return build(TrainConfig, {"preset": "study"}).dice


def chest_film_case() -> tuple[torch.Tensor, np.ndarray, list[int]]:
    """Two classes, one sigmoid logit per pixel: a negative with nothing predicted (0/0), a
    negative with a false positive, a positive with half its region found, a positive missed."""
    target = np.zeros((4, S, S), np.uint8)
    target[2, 0, :] = 1  # 4 pixels
    target[3, 3, :2] = 1  # 2 pixels
    pred = np.zeros((4, S, S), bool)
    pred[1, 1, 1:3] = True  # false positive on a negative
    pred[2, 0, :2] = True  # 2 of the 4 ...
    pred[2, 1, :2] = True  # ... and 2 outside
    logits = torch.from_numpy(np.where(pred, 3.0, -3.0).astype(np.float32))
    return logits, target, [0, 0, 1, 1]


def test_the_preset_selects_on_the_studys_dice_for_two_classes():
    logits, target, labels = chest_film_case()
    pred_map = (logits.numpy() > 0).astype(np.uint8)  # the argmax of (0, z)
    per_image = [study_dice(pred_map[i], target[i], 1) for i in range(4)]
    assert math.isnan(per_image[0]) and per_image[1] == 0.0 and per_image[2] == 0.5 and per_image[3] == 0.0
    expected = float(np.nanmean(per_image))  # 0.5 / 3: the empty-empty image is left out
    assert validate(logits, target, labels, 2, preset_dice_mode()) == pytest.approx(expected, abs=1e-9)
    # Not the definition `study` had before issue 24 (0/0 scored 1): (1 + 0 + 0.5 + 0) / 4.
    assert expected != pytest.approx(0.375)


def test_the_default_keeps_its_dice_over_images_with_a_region():
    logits, target, labels = chest_film_case()
    assert TrainConfig().dice == "positives"
    assert validate(logits, target, labels, 2, TrainConfig().dice) == pytest.approx((0.5 + 0.0) / 2)


def test_nothing_predicted_on_empty_targets_only_is_undefined_not_perfect():
    target = np.zeros((2, S, S), np.uint8)
    assert math.isnan(validate(torch.full((2, S, S), -3.0), target, [0, 0], 2, preset_dice_mode()))


def three_class_case() -> tuple[torch.Tensor, np.ndarray, list[int]]:
    """ISIC's head: a benign lesion predicted benign (0/0 on the malignant class), a benign lesion
    partly predicted malignant (a false positive), a malignant lesion found exactly, and a
    malignant lesion half found, where the malignant class wins the argmax with P < 0.5."""
    target = np.zeros((4, S, S), np.uint8)
    target[0, 1:3, 1:3] = 1
    target[1, 1:3, 1:3] = 1
    target[2, 1:3, 1:3] = 2
    target[3, 1:3, 1:3] = 2
    classes = np.zeros((4, S, S), np.int64)
    classes[0, 1:3, 1:3] = 1
    classes[1, 1:3, 1:3] = 1
    classes[1, 1, 1:3] = 2
    classes[2, 1:3, 1:3] = 2
    classes[3, 1, 1:3] = 2
    classes[3, 2, 1:3] = 1
    logits = torch.from_numpy(np.eye(3, dtype=np.float32)[classes]).permute(0, 3, 1, 2) * 4.0
    logits[3, :, 1, 1:3] = torch.tensor([1.0, 0.9, 1.1])[:, None]  # argmax 2 with P(2) ~ 0.37
    return logits.contiguous(), target, [0, 0, 1, 1]


def test_the_preset_selects_on_the_studys_dice_for_three_classes():
    logits, target, labels = three_class_case()
    pred_map = logits.argmax(1).numpy()
    per_image = [study_dice(pred_map[i], target[i], 2) for i in range(4)]
    assert math.isnan(per_image[0]) and per_image[1] == 0.0 and per_image[2] == 1.0
    assert per_image[3] == pytest.approx(2 * 2 / (2 + 4))
    got = validate(logits, target, labels, 3, preset_dice_mode())
    assert got == pytest.approx(float(np.nanmean(per_image)), abs=1e-6)


def test_on_isic_a_perfect_malignant_map_scores_one_not_the_class_value_quirk():
    logits, target, labels = three_class_case()
    assert validate(logits[2:3], target[2:3], labels[2:3], 3, preset_dice_mode()) == 1.0


@pytest.mark.parametrize(("granularity", "metric"), [("binary", "auroc"), ("bbox", "auroc"), ("seg", "dice"),
                                                     ("grid:8", "dice")])
def test_selection_follows_the_study_per_granularity(granularity, metric):
    cfg = build(TrainConfig, {"preset": "study", "granularity": granularity})
    assert cfg.select_metric is None
    assert trainer.check(cfg)[1] == metric
