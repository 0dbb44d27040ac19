"""Training methods by name (METHODS): how a training batch becomes a per-image loss. ERM on the
granularity's targets is the study's baseline and the only method so far; semi-supervised and
contrastive methods (Seg-SSL, Seg-SPL) register here with their own objectives."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from spurspec.registry import Registry


@dataclass(frozen=True)
class Method:
    description: str
    # Returns the training objective (step, logits, batch, weighted) -> (B,) fp32 losses. A factory,
    # so listing the names (CLI choices) imports no torch. Validation always uses the ERM loss.
    objective: Callable[[], Callable]


def _erm() -> Callable:
    from spurspec.training.loop import loss_per_image

    return loss_per_image


METHODS: Registry[Method] = Registry("method")
METHODS.add("erm", Method("empirical risk minimisation on the granularity's targets (the study's baseline)", _erm))
