"""The networks behind the named model settings, on MONAI: an Encoder exposing a MONAI backbone's
five feature maps, and Net = encoder + pooled linear head (binary) or MONAI's U-Net decoder
(pixel granularities). `load_pretrained` reads a local state dict with weights_only=True."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from spurspec.errors import ArtefactError, InputError


class Encoder(nn.Module):
    """A MONAI classification backbone returning the five feature maps at strides 2..32 that a
    U-Net decoder needs; the backbone's own module names are kept so its state dicts load."""

    def __init__(self, net: nn.Module, stem: list[str], pool: str, stages: list[str], channels: list[int]) -> None:
        super().__init__()
        self.net = net
        self.stem, self.pool, self.stages = stem, pool, stages
        self.channels = channels
        for unused in ("fc", "last_linear", "avgpool", "adaptive_avg_pool"):
            if hasattr(net, unused):
                setattr(net, unused, nn.Identity())

    def _module(self, path: str) -> nn.Module:
        return self.net.get_submodule(path)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        for name in self.stem:
            x = self._module(name)(x)
        features = [x]
        x = self._module(self.pool)(x)
        for name in self.stages:
            x = self._module(name)(x)
            features.append(x)
        return features

    @property
    def last_block(self) -> str:  # the Grad-CAM layer, relative to the model
        return f"encoder.net.{self.stages[-1]}"


def resnet_encoder(block: str, layers: list[int], widths: list[int]) -> Callable[[int], Encoder]:
    from monai.networks.nets import ResNet

    expansion = 4 if block == "bottleneck" else 1

    def build(in_channels: int) -> Encoder:
        net = ResNet(
            block=block, layers=layers, block_inplanes=widths, spatial_dims=2, n_input_channels=in_channels,
            conv1_t_size=7, conv1_t_stride=2, feed_forward=False,
        )
        channels = [widths[0]] + [w * expansion for w in widths]
        return Encoder(net, ["conv1", "bn1", "act"], "maxpool", ["layer1", "layer2", "layer3", "layer4"], channels)

    return build


def seresnext50_encoder(in_channels: int) -> Encoder:
    from monai.networks.nets import SEResNext50

    net = SEResNext50(spatial_dims=2, in_channels=in_channels, num_classes=1)
    return Encoder(
        net, ["layer0.conv1", "layer0.bn1", "layer0.relu1"], "layer0.pool",
        ["layer1", "layer2", "layer3", "layer4"], [64, 256, 512, 1024, 2048],
    )


class Net(nn.Module):
    """Encoder + head. Binary: logits (B,). Pixel: logits (B, H, W) at the input size."""

    def __init__(self, encoder: Encoder, pixel: bool, decoder_channels: tuple[int, ...]) -> None:
        super().__init__()
        self.encoder, self.pixel = encoder, pixel
        if pixel:
            from monai.networks.nets.flexible_unet import SegmentationHead, UNetDecoder

            self.decoder = UNetDecoder(
                spatial_dims=2, encoder_channels=[0, *encoder.channels], decoder_channels=decoder_channels,
                act=("relu", {"inplace": True}), norm=("batch", {"eps": 1e-3, "momentum": 0.1}), dropout=0.0,
                bias=False, upsample="nontrainable", pre_conv="default", interp_mode="nearest",
                align_corners=None, is_pad=True,
            )
            self.head = SegmentationHead(spatial_dims=2, in_channels=decoder_channels[-1], out_channels=1)
        else:
            self.head = nn.Linear(encoder.channels[-1], 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = self.encoder(x)
        if self.pixel:
            return self.head(self.decoder(features, len(features) - 1))[:, 0]
        return self.head(features[-1].mean(dim=(2, 3)))[:, 0]



def load_pretrained(model: Net, path: Path) -> int:
    """Load encoder weights from a local state dict (weights_only: never runs code). Keys may be
    the backbone's own (e.g. a MONAI ResNet state dict) or prefixed `encoder.net.`; a 3-channel
    first convolution is summed to fit 1-channel input. Returns the number of tensors loaded."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise InputError(f"{path}: pretrained weights file not found") from None
    except Exception as exc:  # torch raises several types for a bad or unsafe file
        raise InputError(f"{path}: not a loadable state dict ({type(exc).__name__}: {exc})") from None
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise InputError(f"{path}: expected a state dict (name -> tensor), got {type(state).__name__}")
    target = model.encoder.net.state_dict()
    matched = {}
    for key, value in state.items():
        name = key.removeprefix("encoder.net.").removeprefix("module.")
        if name not in target or not isinstance(value, torch.Tensor):
            continue
        want = target[name]
        if value.ndim == 4 and want.ndim == 4 and value.shape[1] != want.shape[1] and want.shape[1] == 1:
            value = value.sum(dim=1, keepdim=True)
        if value.shape == want.shape:
            matched[name] = value
    if not matched:
        raise ArtefactError(f"{path}: no tensor matches the encoder of this model; is it the right architecture?")
    model.encoder.net.load_state_dict(matched, strict=False)
    return len(matched)
