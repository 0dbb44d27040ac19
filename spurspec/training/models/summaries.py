"""Summarising functions: how a pixel model's positive-class probability map (B, H, W) becomes one
score per image. `mean` is the study's; `max` its variant; `topk:P` the mean of the top P% of
pixels (Hooper et al. 2023). Looked up by name in SUMMARIES; `topk:P` is parsed."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING

from spurspec.errors import ConfigError
from spurspec.registry import Registry

if TYPE_CHECKING:
    import torch

Summary = Callable[["torch.Tensor"], "torch.Tensor"]

SUMMARIES: Registry[Summary] = Registry("summarising function")
# The study's summarising function, the default wherever a pixel model's image score is chosen.
DEFAULT = "mean"
# The `summary` value of an image-level score: a binary model's output, or outside predictions
# given without a summary column. It names no function: there is no map to summarise.
IMAGE_SCORE = "image"
# The summaries predict_split writes for every pixel model, so reports can compare them.
PREDICT_SUMMARIES = ("mean", "max", "topk:1", "topk:5", "topk:10")


@SUMMARIES.register("mean")
def mean(prob: torch.Tensor) -> torch.Tensor:
    return prob.flatten(1).mean(dim=1)


@SUMMARIES.register("max")
def maximum(prob: torch.Tensor) -> torch.Tensor:
    return prob.flatten(1).amax(dim=1)


def topk(percent: float) -> Summary:
    """Mean of the top `percent`% pixels (at least one pixel)."""

    def summarise(prob: torch.Tensor) -> torch.Tensor:
        flat = prob.flatten(1)
        k = max(1, math.ceil(flat.shape[1] * percent / 100.0))
        return flat.topk(k, dim=1).values.mean(dim=1)

    return summarise


SUMMARIES.add("topk", topk, param="P")


def _percent(name: str, arg: str) -> float:
    """The P of `topk:P`, in (0, 100]."""
    try:
        percent = float(arg)
    except ValueError:
        raise ConfigError(f"summary {name!r}: expected topk:P with P a percentage, e.g. topk:5") from None
    if not 0 < percent <= 100:
        raise ConfigError(f"summary {name!r}: P must be in (0, 100]")
    return percent


def get(name: str) -> Summary:
    base, arg = SUMMARIES.split(name)
    if arg is not None:
        return SUMMARIES.get(base)(_percent(name, arg))
    return SUMMARIES.get(base)


def names() -> list[str]:
    """The choices as the CLI lists them."""
    return SUMMARIES.choices()
