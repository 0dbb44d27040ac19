"""Row "summarising function": the study's image score of a pixel model is the pixel mean of the
softmax probability of the positive class (on ISIC: the malignant lesion). spurspec's validation
score under `--preset study` is compared with that, on fixed logits of both heads."""

from __future__ import annotations

import numpy as np
import torch

from spurspec.config import build
from spurspec.training.config import TrainConfig
from spurspec.training.models import summaries
from spurspec.training.models.heads import PixelHead


def study_score(logits: np.ndarray) -> np.ndarray:
    """(B,) mean over pixels of softmax(logits)[last class]; logits (B, C, H, W)."""
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    p = e / e.sum(axis=1, keepdims=True)
    return p[:, -1].reshape(len(logits), -1).mean(axis=1)


def preset_score(logits: torch.Tensor, classes: int) -> np.ndarray:
    summary = summaries.get(build(TrainConfig, {"preset": "study"}).summary)
    return summary(PixelHead(classes).prob(logits)).numpy()


def test_three_classes_score_the_mean_malignant_probability():
    logits = np.random.default_rng(0).normal(0, 3, (4, 3, 6, 6)).astype(np.float32)
    np.testing.assert_allclose(preset_score(torch.from_numpy(logits), 3), study_score(logits), rtol=1e-5)


def test_two_classes_score_the_mean_positive_probability():
    z = np.random.default_rng(1).normal(0, 3, (4, 6, 6)).astype(np.float32)
    pair = np.stack([np.zeros_like(z), z], axis=1)  # spurspec's one logit z is the study's (0, z)
    np.testing.assert_allclose(preset_score(torch.from_numpy(z), 2), study_score(pair), rtol=1e-5)


def test_not_the_max():
    z = np.full((1, 6, 6), -4.0, np.float32)
    z[0, 0, 0] = 4.0
    assert preset_score(torch.from_numpy(z), 2)[0] < 0.1  # one confident pixel does not make the score
