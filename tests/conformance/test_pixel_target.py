"""Rows "pixel target" and "loss": the study's pixel targets had two classes on chest films
(negatives' masks are empty) and three on ISIC (background, lesion of a benign image, lesion of
a malignant image), trained with unweighted per-pixel softmax cross-entropy. Under `--preset
study` a chest-film and an ISIC-like dataset get those class maps, and spurspec's loss equals the
study's on fixed logits: with three classes the same softmax; with two, spurspec's one logit z is
the two logits (0, z), whose softmax cross-entropy is the sigmoid's binary cross-entropy."""

from __future__ import annotations

import numpy as np
import torch

from conformance import data
from spurspec.artefacts.dataset import Dataset
from spurspec.config import build
from spurspec.training import loop
from spurspec.training.config import TrainConfig
from spurspec.training.data import granularity
from spurspec.training.models.heads import PixelHead

S = 8


def study_ce(logits: np.ndarray, target: np.ndarray) -> np.ndarray:
    """(B,) the mean over pixels of -log softmax(logits)[target]; logits (B, C, H, W)."""
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_p = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    picked = np.take_along_axis(log_p, target[:, None].astype(np.int64), axis=1)[:, 0]
    return -picked.reshape(len(logits), -1).mean(axis=1)


def lesions() -> np.ndarray:
    m = np.zeros((4, S, S), np.uint8)
    m[0, 1:4, 1:4] = 1
    m[1, 4:7, 2:6] = 1
    m[2, 2:6, 2:6] = 1  # on ISIC, benign lesions have masks too
    return m


def preset_targets(tmp_path, masks: np.ndarray, labels: list[int], name: str) -> granularity.Targets:
    cfg = build(TrainConfig, {"preset": "study", "granularity": "seg"})
    root = data.write(tmp_path / name, masks, labels, name=name)
    return granularity.prepare(Dataset.open(root), granularity.parse("seg"), cfg.box_mode, lambda s: None, cfg.head)


def test_chest_films_have_two_classes(tmp_path):
    m = lesions()
    m[2:] = 0  # chest-film negatives: empty masks
    targets = preset_targets(tmp_path, m, [1, 1, 0, 0], "siim")
    assert targets.classes == 2
    for i in range(4):
        np.testing.assert_array_equal(targets(i), m[i], err_msg=f"row {i}")


def test_isic_has_three_classes(tmp_path):
    m, labels = lesions(), [1, 1, 0, 0]
    targets = preset_targets(tmp_path, m, labels, "isic")
    assert targets.classes == 3 and PixelHead(3).out_channels == 3
    for i in range(4):
        study = m[i] * (2 if labels[i] == 1 else 1)  # background 0, benign lesion 1, malignant lesion 2
        np.testing.assert_array_equal(targets(i), study, err_msg=f"row {i}")


def loss_step(classes: int) -> loop.Step:
    cfg = build(TrainConfig, {"preset": "study"})
    return loop.Step(None, None, None, torch.device("cpu"), None, True, cfg.loss, 1.0, False, head=PixelHead(classes))


def test_the_loss_is_the_studys_cross_entropy_with_three_classes():
    rng = np.random.default_rng(0)
    logits = rng.normal(0, 2, (3, 3, S, S)).astype(np.float32)
    target = rng.integers(0, 3, (3, S, S))
    got = loop.pixel_loss(loss_step(3), torch.from_numpy(logits), torch.from_numpy(target))
    np.testing.assert_allclose(got.numpy(), study_ce(logits, target), rtol=1e-5)


def test_the_loss_is_the_studys_cross_entropy_with_two_classes():
    rng = np.random.default_rng(1)
    z = rng.normal(0, 2, (3, S, S)).astype(np.float32)
    target = rng.integers(0, 2, (3, S, S))
    got = loop.pixel_loss(loss_step(2), torch.from_numpy(z), torch.from_numpy(target).float())
    two_logits = np.stack([np.zeros_like(z), z], axis=1)  # one logit z is the pair (0, z)
    np.testing.assert_allclose(got.numpy(), study_ce(two_logits, target), rtol=1e-5)
    assert PixelHead(2).out_channels == 1  # the documented difference: one logit, not two
