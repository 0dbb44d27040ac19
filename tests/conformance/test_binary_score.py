"""Row "binary score": the image-label network's head, its loss and the score its evaluation ranks by.

The study (fact sheet): the binary ResNet-50 outputs two logits trained with softmax
cross-entropy, -log softmax(z)[y]; its evaluation notebook ranks images by the raw class-1 logit
z1, not a probability (softmax P(1) = sigmoid(z1 - z0) ranks by the difference, which is not the
same order). Compared here with spurspec under `--preset study` on fixed logits: the head it
builds, the loss a training step takes, the score validation and `evaluate` rank by. spurspec's
default (one logit, BCE, P(label 1)) is the documented difference."""

from __future__ import annotations

import numpy as np
import torch

from conformance.data import Fixed
from spurspec.config import build
from spurspec.metrics.auroc import auroc
from spurspec.training import loop, models
from spurspec.training.config import TrainConfig
from spurspec.training.models.heads import BinaryHead

# Fixed logits (z0, z1) and labels, chosen so that ranking by z1 and by z1 - z0 disagree.
Z = np.array([[2.0, 1.5], [-1.0, 0.5], [0.0, 1.0], [3.0, 2.5], [-2.0, -1.0], [1.0, 0.0]])
Y = np.array([1, 0, 1, 0, 0, 1])


def study_loss(z: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Softmax cross-entropy per image, -log(exp(z_y) / sum_k exp(z_k))."""
    return np.log(np.exp(z).sum(1)) - z[np.arange(len(y)), y]


def study_score(z: np.ndarray) -> np.ndarray:
    """The study's evaluation: the raw class-1 logit."""
    return z[:, 1]


def preset_head() -> BinaryHead:
    cfg = build(TrainConfig, {"preset": "study"})
    return BinaryHead(cfg.binary_head, cfg.binary_score)


def predicted(head: BinaryHead, logits: np.ndarray) -> dict[str, np.ndarray]:
    """spurspec's validation pass (loop.predict, which evaluate's scores equal) over one batch."""
    n = len(logits)
    step = loop.Step(Fixed(torch.tensor(logits, dtype=torch.float32)), None, None, torch.device("cpu"), None,
                     False, "ce", 1.0, False, binary=head)
    batch = {"image": torch.zeros(n, 1, 4, 4), "label": torch.tensor(Y, dtype=torch.float32), "row": torch.arange(n)}
    return loop.predict(step, [batch], None)


def test_the_preset_trains_two_logits_with_softmax_cross_entropy():
    head = preset_head()
    assert head.out_features == 2
    loss = head.loss(torch.tensor(Z, dtype=torch.float32), torch.tensor(Y, dtype=torch.float32))
    np.testing.assert_allclose(loss.numpy(), study_loss(Z, Y), rtol=1e-6)
    out = predicted(head, Z)
    np.testing.assert_allclose(out["loss"], study_loss(Z, Y), rtol=1e-6)  # the ERM step's loss_per_image
    net = models.build("study", 1, pixel=False, out_channels=head.out_features)
    assert net.head.out_features == 2 and net(torch.zeros(2, 1, 32, 32)).shape == (2, 2)


def test_the_preset_ranks_by_the_raw_class_one_logit():
    out = predicted(preset_head(), Z)
    np.testing.assert_array_equal(out["score"], study_score(Z).astype(np.float32))
    assert auroc(out["score"], Y) == auroc(study_score(Z), Y)
    # Not the softmax: on these logits it ranks otherwise, so a drift to it fails here.
    softmax = torch.softmax(torch.tensor(Z), 1)[:, 1].numpy()
    assert auroc(softmax, Y) != auroc(study_score(Z), Y)
    np.testing.assert_allclose(out["prob"], softmax, rtol=1e-6)  # what a 0.5 cut reads


def test_the_default_differs_as_documented():
    """spurspec's default: one logit, binary cross-entropy, scored by P(label 1)."""
    cfg = TrainConfig()
    head = BinaryHead(cfg.binary_head, cfg.binary_score)
    z = Z[:, 1] - Z[:, 0]
    out = predicted(head, z)
    np.testing.assert_allclose(out["score"], 1 / (1 + np.exp(-z)), rtol=1e-6)
    bce = np.log1p(np.exp(-z)) * Y + np.log1p(np.exp(z)) * (1 - Y)
    np.testing.assert_allclose(out["loss"], bce, rtol=1e-5)
