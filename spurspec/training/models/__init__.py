"""Named model settings (MODELS), listed by `spurspec train --help` and the models table of docs/training.md.
By default every granularity shares one encoder (binary: pooled linear head; pixel granularities:
a U-Net decoder), so supervision is the only difference; `study` is the study's own pairing, with
segmentation-models-pytorch's Unet decoder for its pixel models. ImageNet-shaped encoders (those
with standard ImageNet weights) always take their input through networks.ImageNetInput.
Only names and recipes live here; the torch modules are in networks.py (imported on build)."""

from __future__ import annotations

from dataclasses import dataclass

from spurspec.errors import ConfigError, InputError
from spurspec.registry import Registry


@dataclass(frozen=True)
class ModelSpec:
    description: str  # one line for the models table
    # ("resnet", block, layers, widths, weights) | ("seresnext50",); weights: the entry of
    # spurspec.training.models.pretrained.SOURCES with its ImageNet weights, or None (it has none).
    encoder: tuple
    decoder_channels: tuple[int, ...]  # five U-Net decoder stages, coarse to fine
    pixel_encoder: tuple | None = None  # a different encoder for pixel models (the study's pairing)
    decoder: str = "monai"  # U-Net decoder of pixel models: "monai" (FlexibleUNet's) | "smp" (smp's Unet)


_RESNET50 = ("resnet", "bottleneck", (3, 4, 6, 3), (64, 128, 256, 512), "resnet50")
MODELS: Registry[ModelSpec] = Registry("model")
MODELS.add("small", ModelSpec(
    "ResNet-10-style encoder, widths 16-128 (0.3M params binary, 0.5M with decoder); the CPU demo",
    ("resnet", "basic", (1, 1, 1, 1), (16, 32, 64, 128), None), (64, 32, 24, 16, 8),
))
MODELS.add("resnet18", ModelSpec(
    "ResNet-18 encoder (11M params, 14M with decoder); mid-size, for real studies on one GPU",
    ("resnet", "basic", (2, 2, 2, 2), (64, 128, 256, 512), "resnet18"), (256, 128, 64, 32, 16),
))
MODELS.add("resnet50", ModelSpec(
    "ResNet-50 encoder shared by every granularity (24M params, 32M with decoder): the study's scale, controlled comparison",
    _RESNET50, (256, 128, 64, 32, 16),
))
MODELS.add("study", ModelSpec(
    "the study's networks: ResNet-50 for binary (24M params), smp's Unet on SE-ResNeXt-50 for pixel granularities (34.5M)",
    _RESNET50, (256, 128, 64, 32, 16), pixel_encoder=("seresnext50",), decoder="smp",
))


def _recipe(spec: ModelSpec, pixel: bool) -> tuple:
    return spec.pixel_encoder if (pixel and spec.pixel_encoder) else spec.encoder


def _imagenet(recipe: tuple) -> bool:
    return recipe[0] == "seresnext50" or recipe[4] is not None


def has_imagenet(name: str) -> bool:
    """Whether `--pretrained imagenet` applies: every encoder of the setting has ImageNet weights."""
    spec = MODELS.get(name)
    return all(_imagenet(_recipe(spec, pixel)) for pixel in (False, True))


# Every encoder halves the image five times, and the U-Net decoder joins each upsampled map with
# the encoder's map of that level: a side that is not a multiple of 2**5 leaves the two of
# different sizes (torch stops with a RuntimeError mid-step), so pixel models need it.
PIXEL_SIZE_MULTIPLE = 32


def check_pixel_size(size: int, where: object) -> None:
    """Refuse images a pixel model's U-Net cannot take, naming the sizes that work."""
    step = PIXEL_SIZE_MULTIPLE
    if size % step:
        below, above = max(step, size // step * step), (size // step + 1) * step
        raise InputError(f"{where}: images of {size} px cannot train a pixel model: its U-Net halves the image "
                         f"5 times, so the size must be a multiple of {step} (e.g. {below} or {above}); "
                         f"re-ingest with --size {above}")


def check(name: str, pretrained: object) -> None:
    """Refuse an unknown model and `--pretrained imagenet` for a model without ImageNet weights,
    before anything is written."""
    from spurspec.training.models.choices import IMAGENET

    MODELS.get(name)
    if str(pretrained) == IMAGENET and not has_imagenet(name):
        with_weights = [n for n in MODELS.names() if has_imagenet(n)]
        raise ConfigError(f"--pretrained imagenet: model {name!r} has no standard ImageNet weights; "
                          f"models with them: {', '.join(with_weights)}")


def input_normalisation(name: str, pixel: bool, normalisation: str, source: str | None,
                        channels: int) -> dict[str, list[float]] | None:
    """The mean and std a run's network normalises its input with, for its provenance; None for a
    model without an ImageNet-shaped encoder (its input is the image in [-1, 1] as it is)."""
    from spurspec.training.models.pretrained import input_stats

    if not _imagenet(_recipe(MODELS.get(name), pixel)):
        return None
    mean, std = input_stats(normalisation, source, channels)
    return {"mean": list(mean), "std": list(std)}


def build(name: str, in_channels: int, pixel: bool, out_channels: int = 1, normalisation: str = "imagenet",
          source: str | None = None):
    """The Net of a named setting for `in_channels` inputs: binary with `out_channels` logits
    (heads.BinaryHead.out_features: 1 or 2), or pixel with `out_channels` logits per pixel
    (heads.PixelHead.out_channels). An ImageNet-shaped encoder's input stem normalises as
    `normalisation` says for a dataset of ingest source `source` (pretrained.input_stats)."""
    if out_channels not in (1, 2) and not pixel:
        raise ConfigError(f"out_channels {out_channels}: a binary model has one logit or two")
    from spurspec.training.models import networks

    spec = MODELS.get(name)
    recipe = _recipe(spec, pixel)
    stem = networks.ImageNetInput(in_channels, normalisation, source) if _imagenet(recipe) else None
    encoder_channels = 3 if stem is not None else in_channels
    if recipe[0] == "seresnext50":
        encoder = networks.seresnext50_encoder(encoder_channels)
    else:
        encoder = networks.resnet_encoder(recipe[1], list(recipe[2]), list(recipe[3]), recipe[4])(encoder_channels)
    return networks.Net(encoder, pixel, spec.decoder_channels, stem, spec.decoder, out_channels)
