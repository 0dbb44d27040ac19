"""`rrr` (`--method rrr`): "right for the right reasons" (Ross, Hughes & Doshi-Velez, "Right for
the Right Reasons: Training Differentiable Models by Constraining their Explanations", IJCAI
2017, eq. 1): beside the cross-entropy, lambda_1 * sum_pixels (A * d/dx sum_k log p_k)^2, where A
is 1 on irrelevant pixels (outside the annotated region, regions.py) and the sum over k runs
over both classes of the binary model (heads.BinaryHead.log_probs: one logit or two). The input gradient is taken with create_graph, so the
penalty is trained through (double backward). Its card is in methods/__init__.py. Reads
batches; writes nothing."""

from __future__ import annotations

import torch

from spurspec.training.loop import Step, loss_per_image
from spurspec.training.methods.base import RunContext
from spurspec.training.methods.regions import RegionTerm, regions


def rrr_penalty(grads: torch.Tensor, region: torch.Tensor) -> torch.Tensor:
    """(B,) Ross et al.'s penalty: the sum over channels and pixels outside `region` (B, H, W) of
    the squared input gradients `grads` (B, C, H, W). Exactly 0 when the gradient lies inside."""
    outside = (1.0 - region)[:, None]
    return ((outside * grads.float()) ** 2).flatten(1).sum(1)


class RRR(RegionTerm):
    column = "rrr_penalty"

    def __init__(self, ctx: RunContext) -> None:
        super().__init__(ctx)
        self.weight = ctx.cfg.rrr_weight
        self._x: torch.Tensor | None = None

    def prepare(self, step: Step, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        # The input is a leaf that records its gradient, so the loss can differentiate through it.
        self._x = batch["image"].to(step.device).detach().requires_grad_(True)
        return {**batch, "image": self._x}

    def __call__(self, step: Step, logits: torch.Tensor, batch: dict[str, torch.Tensor], weighted: bool) -> torch.Tensor:
        loss = loss_per_image(step, logits, batch, weighted)
        x, self._x = self._x, None
        region, penalised = regions(batch, step.device)
        log_probs = step.binary.log_probs(logits).sum(1)  # log p(0) + log p(1), Ross et al.'s sum over classes
        grads = torch.autograd.grad(log_probs.sum(), x, create_graph=True)[0]
        penalty = rrr_penalty(grads, region) * penalised
        self._add(penalty, penalised)
        return loss + self.weight * penalty
