"""The networks behind the named model settings, on MONAI: an Encoder exposing a backbone's five
feature maps, an optional fixed input stem (ImageNet-shaped encoders), and Net = stem + encoder +
pooled linear head (binary) or a U-Net decoder (pixel granularities). The `smp` decoder is
segmentation-models-pytorch's `Unet` decoder rebuilt from MONAI parts: the same layers and
initialisation, only the order of concatenated channels differs (tests/unit/test_models.py pins
it). Pretrained weights are loaded into an encoder by `weights.load_pretrained`."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from spurspec.errors import ConfigError
from spurspec.training.models import pretrained
from spurspec.training.models.choices import IMAGENET


class ImageNetInput(nn.Module):
    """Fixed input stem of the ImageNet-shaped models. spurspec's images arrive in [-1, 1]; the
    weights expect (image01 - mean) / std on 3 channels, so a grey image is replicated. The mean
    and std are pretrained.input_stats' for the run's `normalisation` setting and dataset source. Always on
    for these models (not only with --pretrained imagenet), so a checkpoint, predict and Grad-CAM
    never need to know how the encoder was initialised; it has no state, so state dicts are unchanged."""

    def __init__(self, in_channels: int, normalisation: str = IMAGENET, source: str | None = None) -> None:
        super().__init__()
        if in_channels not in (1, 3):
            raise ConfigError(f"{in_channels}-channel images: ImageNet-shaped models take 1 (grey) or 3 (RGB) channels")
        self.replicate = in_channels == 1
        stats = pretrained.input_stats(normalisation, source, in_channels)
        mean, std = (torch.tensor(v, dtype=torch.float32).view(1, 3, 1, 1) for v in stats)
        # ((x + 1) / 2 - mean) / std as one multiply-add.
        self.register_buffer("scale", 0.5 / std, persistent=False)
        self.register_buffer("shift", (0.5 - mean) / std, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.replicate:
            x = x.expand(-1, 3, -1, -1)
        return x * self.scale + self.shift


class Encoder(nn.Module):
    """A MONAI classification backbone returning the five feature maps at strides 2..32 that a
    U-Net decoder needs; the backbone's own module names are kept so its state dicts load.
    `imagenet` names its entry in pretrained.SOURCES (None: no standard ImageNet weights)."""

    def __init__(self, net: nn.Module, stem: list[str], pool: str, stages: list[str], channels: list[int],
                 imagenet: str | None = None) -> None:
        super().__init__()
        self.net = net
        self.stem, self.pool, self.stages = stem, pool, stages
        self.channels = channels
        self.imagenet = imagenet
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


def resnet_encoder(block: str, layers: list[int], widths: list[int], imagenet: str | None) -> Callable[[int], Encoder]:
    """torchvision's ResNet layout on MONAI's ResNet (no bias before a downsampling BatchNorm):
    the same module names and numbers, so torchvision's weights load unchanged."""
    from monai.networks.nets import ResNet

    expansion = 4 if block == "bottleneck" else 1

    def build(in_channels: int) -> Encoder:
        net = ResNet(
            block=block, layers=layers, block_inplanes=widths, spatial_dims=2, n_input_channels=in_channels,
            conv1_t_size=7, conv1_t_stride=2, feed_forward=False, bias_downsample=False,
        )
        channels = [widths[0]] + [w * expansion for w in widths]
        return Encoder(net, ["conv1", "bn1", "act"], "maxpool", ["layer1", "layer2", "layer3", "layer4"],
                       channels, imagenet)

    return build


def seresnext50_encoder(in_channels: int) -> Encoder:
    """SE-ResNeXt-50 (32x4d): MONAI's port of the network smp's `se_resnext50_32x4d` encoder is."""
    from monai.networks.nets import SEResNext50

    net = SEResNext50(spatial_dims=2, in_channels=in_channels, num_classes=1)
    return Encoder(
        net, ["layer0.conv1", "layer0.bn1", "layer0.relu1"], "layer0.pool",
        ["layer1", "layer2", "layer3", "layer4"], [64, 256, 512, 1024, 2048], "se_resnext50_32x4d",
    )


def unet_decoder(encoder_channels: list[int], decoder_channels: tuple[int, ...], style: str,
                 out_channels: int) -> tuple[nn.Module, nn.Module]:
    """(decoder, head with `out_channels` logits) of a U-Net on `encoder_channels`. "monai": MONAI FlexibleUNet's decoder (a 1x1
    convolution halves the channels before each upsampling). "smp": segmentation-models-pytorch's
    Unet decoder: nearest upsampling of every channel, concatenation with the skip, two 3x3
    conv-BN-ReLU; BatchNorm eps 1e-5; smp's initialisation. MONAI concatenates the skip first
    where smp puts it second: a fixed permutation of the first convolution's input channels."""
    from monai.networks.nets.flexible_unet import SegmentationHead, UNetDecoder

    smp = style == "smp"
    decoder = UNetDecoder(
        spatial_dims=2, encoder_channels=[0, *encoder_channels], decoder_channels=decoder_channels,
        act=("relu", {"inplace": True}), norm=("batch", {"eps": 1e-5 if smp else 1e-3, "momentum": 0.1}),
        dropout=0.0, bias=False, upsample="nontrainable", pre_conv=None if smp else "default",
        interp_mode="nearest", align_corners=None, is_pad=True,
    )
    head = SegmentationHead(spatial_dims=2, in_channels=decoder_channels[-1], out_channels=out_channels)
    if smp:  # smp.base.initialization: initialize_decoder and initialize_head
        for m in decoder.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_uniform_(m.weight, mode="fan_in", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        for m in head.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)
    return decoder, head


class Net(nn.Module):
    """Stem + encoder + head. Binary: logits (B,), or (B, 2) with two logits. Pixel: logits (B, H, W)
    at the input size, or (B, out_channels, H, W) for a head with several logits per pixel
    (spurspec.training.models.heads)."""

    def __init__(self, encoder: Encoder, pixel: bool, decoder_channels: tuple[int, ...],
                 stem: nn.Module | None = None, decoder_style: str = "monai", out_channels: int = 1) -> None:
        super().__init__()
        self.stem = stem if stem is not None else nn.Identity()
        self.encoder, self.pixel = encoder, pixel
        self.out_channels = out_channels
        if pixel:
            self.decoder, self.head = unet_decoder(encoder.channels, decoder_channels, decoder_style, out_channels)
            self.embedding_channels = decoder_channels[-1]  # of the pixel embeddings `on_embeddings` hands over
        else:  # one logit (sigmoid) or two (softmax, the study's): heads.BinaryHead
            self.head = nn.Linear(encoder.channels[-1], out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = self.encoder(self.stem(x))
        if self.pixel:
            logits = self.head(self.decoder(features, len(features) - 1))
            return logits[:, 0] if self.out_channels == 1 else logits
        logits = self.head(self.pool(features[-1]))
        return logits[:, 0] if self.out_channels == 1 else logits

    @staticmethod
    def pool(features: torch.Tensor) -> torch.Tensor:
        """The binary head's input: the last stage's features averaged over space, (B, C); DFR
        refits the head on these."""
        return features.mean(dim=(2, 3))

    def pooled(self, x: torch.Tensor) -> torch.Tensor:
        """Binary models: the penultimate features (the head's input) of a batch."""
        return self.pool(self.encoder(self.stem(x))[-1])

    def on_features(self, fn: Callable[[torch.Tensor], None]) -> torch.utils.hooks.RemovableHandle:
        """Binary models: call fn with the last encoder stage's features, (B, C, h, w), on every
        forward (cam-loss builds its class activation map from them and the head's weights)."""
        if self.pixel:
            raise ConfigError("class activation maps are read from binary models only")
        return self.encoder.register_forward_hook(lambda module, args, output: fn(output[-1]))

    def on_embeddings(self, fn: Callable[[torch.Tensor], None]) -> torch.utils.hooks.RemovableHandle:
        """Pixel models: call fn with the decoder's pixel embeddings, (B, embedding_channels, H, W),
        the segmentation head's input, on every forward (Seg-SPL's contrastive loss reads them).
        Outputs and state dict are unchanged; remove the returned handle to stop."""
        if not self.pixel:
            raise ConfigError("pixel embeddings exist for pixel models only (bbox, seg, grid:K)")
        return self.head.register_forward_pre_hook(lambda module, args: fn(args[0]))
