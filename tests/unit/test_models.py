"""Named model settings build for 1- and 3-channel input with the documented sizes, give the
right output shapes, and load local pretrained encoder weights (weights_only) or refuse clearly."""

from __future__ import annotations

import pytest
import torch

from spurspec.errors import ArtefactError, InputError
from spurspec.training import models, networks

torch.set_num_threads(1)


def _params(model: torch.nn.Module) -> float:
    return sum(p.numel() for p in model.parameters()) / 1e6


@pytest.mark.parametrize(
    ("name", "binary_m", "pixel_m"),
    [("small", 0.3, 0.5), pytest.param("resnet18", 11.2, 14.3, marks=pytest.mark.slow)],
)
def test_sizes_match_the_models_table(name, binary_m, pixel_m):
    binary, pixel = models.build(name, 1, pixel=False), models.build(name, 1, pixel=True)
    assert _params(binary) == pytest.approx(binary_m, rel=0.15)
    assert _params(pixel) == pytest.approx(pixel_m, rel=0.15)


@pytest.mark.parametrize("channels", [1, 3])
def test_output_shapes(channels):
    x = torch.zeros(2, channels, 32, 32)
    assert models.build("small", channels, pixel=False)(x).shape == (2,)
    assert models.build("small", channels, pixel=True)(x).shape == (2, 32, 32)


@pytest.mark.slow
def test_study_pairing_uses_two_architectures():
    binary, pixel = models.build("study", 1, pixel=False), models.build("study", 1, pixel=True)
    assert type(binary.encoder.net) is not type(pixel.encoder.net)
    assert pixel(torch.zeros(1, 1, 64, 64)).shape == (1, 64, 64)


def test_pretrained_round_trip_and_rgb_first_conv_summed(tmp_path):
    rgb = models.build("small", 3, pixel=False)
    path = tmp_path / "encoder.pt"
    torch.save(rgb.encoder.net.state_dict(), path)
    grey = models.build("small", 1, pixel=True)
    loaded = networks.load_pretrained(grey, path)
    assert loaded == len(grey.encoder.net.state_dict())
    first = next(k for k, v in rgb.encoder.net.state_dict().items() if v.ndim == 4)
    summed = rgb.encoder.net.state_dict()[first].sum(dim=1, keepdim=True)
    assert torch.equal(grey.encoder.net.state_dict()[first], summed)


def test_pretrained_refuses_code_and_foreign_weights(tmp_path):
    evil = tmp_path / "evil.pt"
    torch.save({"x": torch.nn.Linear(2, 2)}, evil)  # a pickled module, not plain tensors
    with pytest.raises(InputError, match="not a loadable state dict"):
        networks.load_pretrained(models.build("small", 1, pixel=False), evil)
    foreign = tmp_path / "foreign.pt"
    torch.save({"something.else": torch.zeros(3)}, foreign)
    with pytest.raises(ArtefactError, match="no tensor matches"):
        networks.load_pretrained(models.build("small", 1, pixel=False), foreign)
