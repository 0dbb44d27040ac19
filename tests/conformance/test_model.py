"""Rows "model" and "weights": the study's networks are ResNet-50 (image labels, two logits) and
smp's `Unet("se_resnext50_32x4d")` (pixel targets; two logits on chest films, three on ISIC),
both from ImageNet weights. Under `--preset study` the networks are built (no weights needed) and
their parameter counts compared with the counts the protocol table and docs/training.md state:
the one-logit head's 34,523,969 is smp's `Unet(classes=1)`; the study's heads differ by the 1x1
head's width: its 3x3 convolution has 16 x 3 x 3 weights and a bias per logit."""

from __future__ import annotations

from pathlib import Path

import pytest

from spurspec import presets
from spurspec.config import build
from spurspec.presets import protocol
from spurspec.training import models
from spurspec.training.config import TrainConfig

pytestmark = pytest.mark.slow  # builds five ResNet-50-sized networks (~10 s)

PAGE = Path(__file__).resolve().parents[2] / "docs" / "training.md"
# (pixel, logits) -> parameters
COUNTS = {(True, 1): 34_523_969, (True, 2): 34_524_114, (True, 3): 34_524_259, (False, 1): 23_510_081,
          (False, 2): 23_512_130}


def count(pixel: bool, logits: int) -> int:
    cfg = build(TrainConfig, {"preset": "study"})
    net = models.build(cfg.model, 3, pixel, out_channels=logits)
    return sum(p.numel() for p in net.parameters())


@pytest.mark.parametrize(("pixel", "logits"), list(COUNTS))
def test_the_parameter_counts_the_table_states(pixel, logits):
    assert count(pixel, logits) == COUNTS[(pixel, logits)]


def test_each_logit_costs_one_head_channel():
    assert COUNTS[(True, 2)] - COUNTS[(True, 1)] == COUNTS[(True, 3)] - COUNTS[(True, 2)] == 16 * 3 * 3 + 1
    assert COUNTS[(False, 2)] - COUNTS[(False, 1)] == 2048 + 1  # the linear layer on ResNet-50's 2,048 features


def test_the_table_and_the_page_state_them():
    row = next(r for r in protocol.rows() if r.setting == "model")
    page = PAGE.read_text(encoding="utf-8")
    for n in COUNTS.values():
        assert f"{n:,}" in row.preset, f"the model row does not state {n:,}"
    for n in (COUNTS[(True, 1)], COUNTS[(True, 2)], COUNTS[(True, 3)]):
        assert f"{n:,}" in page


def test_imagenet_weights_for_both_encoders():
    preset = presets.load("study")
    assert (preset["model"], preset["pretrained"]) == ("study", "imagenet")
    assert models.has_imagenet("study")
    names = {pixel: models.build("study", 3, pixel).encoder.imagenet for pixel in (False, True)}
    assert names == {False: "resnet50", True: "se_resnext50_32x4d"}
