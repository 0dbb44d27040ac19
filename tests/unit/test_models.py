"""Named model settings build for 1- and 3-channel input with the documented sizes, give the
right output shapes and a Grad-CAM layer, feed ImageNet-shaped encoders through the fixed
normalising stem, pin the study's pixel network to smp's Unet("se_resnext50_32x4d"), and load
local pretrained encoder weights (weights_only) or refuse clearly. ImageNet weights: test_pretrained.py."""

from __future__ import annotations

import pytest
import torch

from spurspec.errors import ArtefactError, ConfigError, InputError
from spurspec.training import models
from spurspec.training.models import weights

torch.set_num_threads(1)


def _params(model: torch.nn.Module) -> float:
    return sum(p.numel() for p in model.parameters()) / 1e6


@pytest.mark.parametrize(
    ("name", "binary_m", "pixel_m"),
    [("small", 0.3, 0.5), ("resnet18", 11.2, 13.7), ("resnet50", 23.5, 32.1), ("study", 23.5, 34.5)],
)
def test_sizes_match_the_models_table(name, binary_m, pixel_m):
    binary, pixel = models.build(name, 1, pixel=False), models.build(name, 1, pixel=True)
    assert _params(binary) == pytest.approx(binary_m, rel=0.15)
    assert _params(pixel) == pytest.approx(pixel_m, rel=0.15)


@pytest.mark.parametrize("name", models.MODELS.names())
@pytest.mark.parametrize("channels", [1, 3])
def test_every_model_maps_images_to_logits_with_a_grad_cam_layer(name, channels):
    x = torch.rand(2, channels, 64, 64) * 2 - 1
    for pixel, shape in ((False, (2,)), (True, (2, 64, 64))):
        model = models.build(name, channels, pixel=pixel).eval()
        with torch.no_grad():
            out = model(x)
        assert out.shape == shape and torch.isfinite(out).all()
        assert isinstance(model.get_submodule(model.encoder.last_block), torch.nn.Module)
    three = models.build(name, channels, pixel=True, out_channels=3).eval()
    with torch.no_grad():
        assert three(x).shape == (2, 3, 64, 64)  # the three-class head's logits


def test_imagenet_shaped_models_replicate_grey_and_normalise_as_the_weights_expect():
    grey = models.build("resnet18", 1, pixel=False).stem
    x = torch.tensor([-1.0, 0.0, 1.0]).view(1, 1, 1, 3)  # spurspec's [-1, 1] scale: 0, 0.5, 1 on [0, 1]
    expected = (torch.tensor([0.0, 0.5, 1.0]) - 0.485) / 0.229  # the study's grey normalisation
    assert torch.allclose(grey(x), expected.expand(1, 3, 1, 3), atol=1e-6)
    rgb = models.build("resnet18", 3, pixel=False).stem
    mean, std = torch.tensor([0.485, 0.456, 0.406]), torch.tensor([0.229, 0.224, 0.225])
    assert torch.allclose(rgb(torch.zeros(1, 3, 1, 1)).flatten(), (0.5 - mean) / std, atol=1e-6)
    assert isinstance(models.build("small", 1, pixel=False).stem, torch.nn.Identity)  # no ImageNet weights
    assert not list(grey.state_dict())  # checkpoints do not depend on it
    with pytest.raises(ConfigError, match="1 .grey. or 3"):
        models.build("resnet18", 2, pixel=False)


def test_grad_cam_runs_through_the_stem():
    from spurspec.training.predict import grad_cam

    model = models.build("study", 1, pixel=False).eval()
    images = {r: {"image": torch.rand(1, 64, 64) * 2 - 1} for r in (3, 5)}
    maps = grad_cam(model, images, [3, 5], torch.device("cpu"))
    assert sorted(maps) == [3, 5] and maps[3].shape == (64, 64)


def test_study_pixel_network_is_smps_unet_on_se_resnext50():
    """smp 0.6.0's Unet("se_resnext50_32x4d", classes=1) has 34,523,969 parameters; its decoder
    block k convolves (upsampled + skip) channels to decoder_channels[k] with no 1x1 convolution
    before upsampling, and BatchNorm eps 1e-5. (Mapping its weights into this network gives the
    same outputs to 1e-6; that check needs smp, which this CPU build cannot import.)"""
    binary, pixel = models.build("study", 1, pixel=False), models.build("study", 1, pixel=True)
    assert type(binary.encoder.net) is not type(pixel.encoder.net)
    assert sum(p.numel() for p in pixel.parameters()) == 34_523_969
    first = [block.convs.conv_0.conv for block in pixel.decoder.blocks]
    assert [(c.in_channels, c.out_channels) for c in first] == [
        (2048 + 1024, 256), (256 + 512, 128), (128 + 256, 64), (64 + 64, 32), (32, 16)]
    assert not any(type(m).__name__ == "UpSample" and len(list(m.parameters())) for m in pixel.decoder.modules())
    assert {m.eps for m in pixel.decoder.modules() if isinstance(m, torch.nn.BatchNorm2d)} == {1e-5}
    assert models.build("resnet50", 1, pixel=True).decoder.blocks[0].convs.conv_0.conv.in_channels != 2048 + 1024


def test_resnet_encoders_use_torchvisions_layout():
    """Names and shapes of torchvision's ResNet state dict, so its ImageNet weights load unchanged."""
    state = models.build("resnet50", 1, pixel=False).encoder.net.state_dict()
    assert state["conv1.weight"].shape == (64, 3, 7, 7)
    assert state["layer2.0.downsample.0.weight"].shape == (512, 256, 1, 1)
    assert "layer2.0.downsample.0.bias" not in state  # torchvision has no bias before the BatchNorm
    assert state["layer4.2.conv3.weight"].shape == (2048, 512, 1, 1)


def test_pretrained_round_trip_and_rgb_first_conv_summed(tmp_path):
    rgb = models.build("small", 3, pixel=False)
    path = tmp_path / "encoder.pt"
    torch.save(rgb.encoder.net.state_dict(), path)
    grey = models.build("small", 1, pixel=True)
    loaded = weights.load_pretrained(grey, path)
    assert loaded == len(grey.encoder.net.state_dict())
    first = next(k for k, v in rgb.encoder.net.state_dict().items() if v.ndim == 4)
    summed = rgb.encoder.net.state_dict()[first].sum(dim=1, keepdim=True)
    assert torch.equal(grey.encoder.net.state_dict()[first], summed)


def test_pretrained_refuses_code_and_foreign_weights(tmp_path):
    evil = tmp_path / "evil.pt"
    torch.save({"x": torch.nn.Linear(2, 2)}, evil)  # a pickled module, not plain tensors
    with pytest.raises(InputError, match="refused: the pretrained weights file holds objects other than tensors") as caught:
        weights.load_pretrained(models.build("small", 1, pixel=False), evil)
    assert "weights_only" not in str(caught.value)  # torch's advice to turn the guard off is dropped
    foreign = tmp_path / "foreign.pt"
    torch.save({"something.else": torch.zeros(3)}, foreign)
    with pytest.raises(ArtefactError, match="no tensor matches"):
        weights.load_pretrained(models.build("small", 1, pixel=False), foreign)
