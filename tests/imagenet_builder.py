"""Test helper: ImageNet weights files as torch's cache holds them, filled with random numbers, so
`--pretrained imagenet` runs without network: torchvision's ResNet names (with the 1000-class `fc`)
and Cadene's SE-ResNeXt-50 names (with `last_linear`, squeeze-excitation as 1x1 convolutions), the
names written out here independently of the loader's mapping."""

from __future__ import annotations

import re
from pathlib import Path

import torch


def random_like(state: dict) -> dict:
    return {k: torch.randn(v.shape) if v.is_floating_point() else v.clone() for k, v in state.items()}


def cadene_names(key: str, value: torch.Tensor) -> tuple[str, torch.Tensor]:
    """MONAI's SENet names -> the names in Cadene's se_resnext50_32x4d-a260b3a4.pth."""
    key = re.sub(r"\.conv(\d)\.conv\.", r".conv\1.", key)
    key = re.sub(r"\.conv(\d)\.adn\.N\.", r".bn\1.", key)
    key = key.replace(".project.conv.", ".downsample.0.").replace(".project.adn.N.", ".downsample.1.")
    if ".se_layer.fc." in key:
        key = key.replace(".se_layer.fc.0.", ".se_module.fc1.").replace(".se_layer.fc.2.", ".se_module.fc2.")
        value = value[..., None, None] if value.ndim == 2 else value  # 1x1 convolutions in the file
    return key, value


def _encoder_state(net: torch.nn.Module) -> dict:
    """Random tensors shaped like the encoder's, without BatchNorm's batch counters (the published
    files have none)."""
    return {k: v for k, v in random_like(net.state_dict()).items() if not k.endswith("num_batches_tracked")}


def write_study_weights(folder: Path) -> list[Path]:
    """The files `--model study --pretrained imagenet` reads (ResNet-50 for image labels,
    SE-ResNeXt-50 for pixel targets), under their real names in `folder` ($TORCH_HOME/hub/checkpoints)."""
    from spurspec.training import models
    from spurspec.training.models import pretrained

    folder.mkdir(parents=True, exist_ok=True)
    resnet = _encoder_state(models.build("study", 1, pixel=False).encoder.net)
    resnet |= {"fc.weight": torch.randn(1000, 2048), "fc.bias": torch.randn(1000)}
    senet = dict(cadene_names(k, v) for k, v in _encoder_state(models.build("study", 1, pixel=True).encoder.net).items())
    senet |= {"last_linear.weight": torch.randn(1000, 2048), "last_linear.bias": torch.randn(1000)}
    paths = []
    for name, state in (("resnet50", resnet), ("se_resnext50_32x4d", senet)):
        paths.append(folder / pretrained.SOURCES[name].file_name)
        torch.save(state, paths[-1])
    return paths
