"""`erm` (`--method erm`, the default): empirical risk minimisation on the granularity's targets,
the study's baseline. Every hook of base.Method is already ERM's (loop.loss_per_image, nothing
around the step, no state), so the class adds nothing; it exists so that `erm` is a method like
any other. Its card is in methods/__init__.py. Reads batches; writes nothing."""

from __future__ import annotations

from spurspec.training.methods.base import Method


class ERM(Method):
    """The per-image ERM loss: cross-entropy (+ Dice) per pixel, or BCE of the image logit."""
