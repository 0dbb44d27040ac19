"""Named model settings (MODELS), listed by `spurspec train --help` and the README's models table.
By default every granularity shares one encoder (binary: pooled linear head; pixel granularities:
a U-Net decoder), so supervision is the only difference; `study` is the study's own pairing.
Only names and recipes live here; the torch modules are in networks.py (imported on build)."""

from __future__ import annotations

from dataclasses import dataclass

from spurspec.registry import Registry


@dataclass(frozen=True)
class ModelSpec:
    summary: str  # one line for the models table
    encoder: tuple  # ("resnet", block, layers, widths) | ("seresnext50",)
    decoder_channels: tuple[int, ...]  # five U-Net decoder stages, coarse to fine
    pixel_encoder: tuple | None = None  # a different encoder for pixel models (the study's pairing)


_RESNET50 = ("resnet", "bottleneck", (3, 4, 6, 3), (64, 128, 256, 512))
MODELS: Registry[ModelSpec] = Registry("model")
MODELS.add("small", ModelSpec(
    "ResNet-10-style encoder, widths 16-128 (0.3M params binary, 0.5M with decoder); the CPU demo",
    ("resnet", "basic", (1, 1, 1, 1), (16, 32, 64, 128)), (64, 32, 24, 16, 8),
))
MODELS.add("resnet18", ModelSpec(
    "ResNet-18 encoder (11M params, 14M with decoder); mid-size, for real studies on one GPU",
    ("resnet", "basic", (2, 2, 2, 2), (64, 128, 256, 512)), (256, 128, 64, 32, 16),
))
MODELS.add("resnet50", ModelSpec(
    "ResNet-50 encoder shared by every granularity: the study's scale, controlled comparison",
    _RESNET50, (256, 128, 64, 32, 16),
))
MODELS.add("study", ModelSpec(
    "the study's pairing: ResNet-50 for binary, U-Net on SE-ResNeXt-50 for pixel granularities",
    _RESNET50, (256, 128, 64, 32, 16), pixel_encoder=("seresnext50",),
))


def build(name: str, in_channels: int, pixel: bool):
    """The Net of a named setting for `in_channels` inputs (binary or pixel head)."""
    from spurspec.training import networks

    spec = MODELS.get(name)
    recipe = spec.pixel_encoder if (pixel and spec.pixel_encoder) else spec.encoder
    if recipe[0] == "seresnext50":
        encoder = networks.seresnext50_encoder(in_channels)
    else:
        encoder = networks.resnet_encoder(recipe[1], list(recipe[2]), list(recipe[3]))(in_channels)
    return networks.Net(encoder, pixel, spec.decoder_channels)
