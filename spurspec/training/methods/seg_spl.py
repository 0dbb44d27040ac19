"""Seg-SPL (`--method seg-spl`): a supervised pixel-level contrastive loss on the decoder's pixel
embeddings, added to the segmentation loss, so that abnormal pixels are pulled together and
pushed away from the rest, across the images of a batch. Its card is in methods/__init__.py.
Reads batches; writes nothing.

The recipe is the pixel-to-pixel contrastive loss of Wang et al., "Exploring Cross-Image Pixel
Contrast for Semantic Segmentation" (ICCV 2021, eq. 2), itself the supervised contrastive loss
of Khosla et al. (NeurIPS 2020) at the pixel level. Per training step:

1. The decoder's pixel embeddings (networks.Net.on_embeddings: the segmentation head's input)
   of the batch's images with a target are sampled: up to `spl_pixels` pixels of each class of
   the target class map (abnormal = region of a positive image; normal = background, and with
   three classes the region of a negative image), uniformly, keyed by (seed, epoch, rows).
2. A projection head (Linear-ReLU-Linear to PROJECTION_DIM, then L2 normalisation, as SupCon's)
   maps them to z. For an anchor i with positives P(i) (the other samples of its class) and
   negatives N(i) (the samples of other classes), with s = z_i . z / spl_temperature:
       L_i = 1/|P(i)| sum_{p in P(i)} -log( e^{s_p} / (e^{s_p} + sum_{n in N(i)} e^{s_n}) )
   and the loss is the mean of L_i over anchors with a positive. When every sampled pixel shares
   one class there is nothing to contrast: every term is exactly 0, with zero gradient.
3. Each image's loss is its ERM loss plus spl_weight times the batch's contrastive loss.

No memory bank (Wang et al. also keep one across batches): pixels are contrasted within a batch
and a rank. The projection head is trained with the model (its own Adam state) and kept in the
checkpoint's method state for an exact resume, but it is not part of the model: predict loads
the model without it. Under torchrun its gradients are averaged across ranks by hand, as DDP
does for the model's."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from spurspec.errors import ArtefactError
from spurspec.training.data import augment
from spurspec.training.distributed import Dist
from spurspec.training.loop import Step, loss_per_image
from spurspec.training.methods.base import Method, RunContext

PROJECTION_DIM = 128  # SupCon's projection size
# Sampling keys use rows shifted by 2**41: a stream of their own (rows are < 2**31).
STREAM = 1 << 41
# Similarities are at most 1 / temperature in size; a masked-out entry of -1e4 contributes
# exp(-1e4 - s) = 0 exactly in float32, so a class with no negatives gives exact zeros.
_MASKED = -1.0e4


def contrastive_loss(z: torch.Tensor, classes: torch.Tensor, temperature: float) -> torch.Tensor:
    """Wang et al.'s pixel-to-pixel loss (module docstring, step 2) of embeddings z (N, D) with
    classes (N,); z is L2-normalised here. 0 (with zero gradient) when no anchor has both a
    positive and a negative."""
    z = F.normalize(z.float(), dim=1)
    sim = z @ z.T / temperature
    same = classes[:, None] == classes[None, :]
    positive = same & ~torch.eye(len(z), dtype=torch.bool, device=z.device)
    negatives = torch.logsumexp(sim.masked_fill(same, _MASKED), dim=1, keepdim=True)
    pair = torch.logaddexp(sim, negatives) - sim  # -log(e^s_p / (e^s_p + sum_n e^s_n))
    count = positive.sum(1)
    per_anchor = (pair * positive).sum(1) / count.clamp_min(1)
    has = count > 0
    return per_anchor[has].mean() if bool(has.any()) else z.sum() * 0.0


def sample_pixels(classes: torch.Tensor, usable: torch.Tensor, per_class: int,
                  generator: torch.Generator) -> torch.Tensor:
    """Flat indices into classes (B, H, W) of up to `per_class` pixels of each class present in
    the `usable` images (B,), uniformly without replacement, in class order."""
    flat = classes.flatten()
    pixels = classes[0].numel()
    ok = usable.to(flat.device).repeat_interleave(pixels)
    scores = torch.rand(flat.shape, generator=generator, device=flat.device)
    picked = []
    for c in torch.unique(flat[ok]).tolist():
        candidates = ok & (flat == c)
        k = min(per_class, int(candidates.sum()))
        picked.append(torch.topk(torch.where(candidates, scores, -1.0), k).indices)
    return torch.cat(picked) if picked else torch.zeros(0, dtype=torch.long, device=flat.device)


class SegSPL(Method):
    def __init__(self, ctx: RunContext) -> None:
        super().__init__(ctx)
        self.cfg, self.dist = ctx.cfg, ctx.dist
        with torch.random.fork_rng(devices=[]):  # its own seeded initialisation: the global stream is untouched
            torch.manual_seed(ctx.cfg.seed)
            width = ctx.model.embedding_channels
            self.projection = nn.Sequential(nn.Linear(width, PROJECTION_DIM), nn.ReLU(inplace=True),
                                            nn.Linear(PROJECTION_DIM, PROJECTION_DIM)).to(ctx.device)
        self._embeddings: torch.Tensor | None = None
        self._handle = ctx.model.on_embeddings(self._keep)
        self._sums = torch.zeros(2, dtype=torch.float64, device=ctx.device)  # loss sum, steps

    def _keep(self, embeddings: torch.Tensor) -> None:
        if torch.is_grad_enabled():  # training forwards only; validation's are not kept
            self._embeddings = embeddings

    def parameters(self) -> list[torch.nn.Parameter]:
        return list(self.projection.parameters())

    def __call__(self, step: Step, logits: torch.Tensor, batch: dict[str, torch.Tensor], weighted: bool) -> torch.Tensor:
        loss = loss_per_image(step, logits, batch, weighted)
        embeddings, self._embeddings = self._embeddings, None
        if embeddings is None:
            raise RuntimeError("seg-spl: the forward pass handed over no pixel embeddings")
        target = batch["target"].to(step.device).long()
        usable = batch["labelled"].bool() if "labelled" in batch else torch.ones(len(target), dtype=torch.bool)
        generator = torch.Generator(device=step.device)
        keys = augment.keys(self.cfg.seed, batch["epoch"].numpy(), batch["row"].numpy().astype(np.int64) + STREAM)
        generator.manual_seed(int(np.bitwise_xor.reduce(keys)))
        at = sample_pixels(target, usable, self.cfg.spl_pixels, generator)
        flat = embeddings.float().permute(0, 2, 3, 1).reshape(-1, embeddings.shape[1])
        contrast = contrastive_loss(self.projection(flat.index_select(0, at)), target.flatten()[at],
                                    self.cfg.spl_temperature)
        with torch.no_grad():
            self._sums += torch.stack([contrast.detach().double(), torch.ones((), dtype=torch.float64, device=step.device)])
        return loss + self.cfg.spl_weight * contrast

    def after_backward(self, step: Step) -> None:
        """Average the projection head's gradients across ranks (it is outside DDP)."""
        if not self.dist.active:
            return
        for p in self.projection.parameters():
            if p.grad is None:
                p.grad = torch.zeros_like(p)
            torch.distributed.all_reduce(p.grad)
            p.grad.div_(self.dist.world)

    def state_dict(self) -> dict:
        return {"projection": {k: v.detach().cpu() for k, v in self.projection.state_dict().items()}}

    def load_state_dict(self, state: dict) -> None:
        if "projection" not in state:
            raise ArtefactError("the checkpoint holds no seg-spl projection head; it was not written by a seg-spl run")
        self.projection.load_state_dict(state["projection"])

    def epoch_log(self, dist: Dist) -> dict[str, float | str | None]:
        total, steps = dist.sum(self._sums.cpu().tolist())
        self._sums.zero_()
        return {"spl_loss": total / steps if steps else None}
