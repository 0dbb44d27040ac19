"""Seg-SSL (`--method seg-ssl`): pixel training that also learns from the training positives
without a kept mask (budget.unlabelled; their batch items carry `labelled` False and an empty
target that is never read). Its card is in methods/__init__.py. Reads batches, updates a
teacher; writes nothing.

The recipe is FixMatch's confidence-thresholded pseudo-labelling (Sohn et al., "FixMatch:
Simplifying Semi-Supervised Learning with Consistency and Confidence", NeurIPS 2020) with the
labels drawn from a mean teacher, an exponential moving average of the student's weights
(Tarvainen & Valpola, "Mean teachers are better role models", NeurIPS 2017), applied per pixel
as semi-supervised segmentation does (French et al., "Semi-supervised semantic segmentation
needs strong, varied perturbations", BMVC 2020). Per training step:

1. Images with a target (negatives: all background; positives inside the budget: their mask)
   take the ERM loss, as under `erm`.
2. The teacher predicts P(region of a positive image) on each unlabelled image's weakly
   augmented view (the batch augmentation every training image gets). `pseudo_masks` turns that
   into a target and a per-pixel weight from the teacher's confidence alone: a pixel the teacher
   calls positive with confidence `ssl_threshold` is positive, one it calls background with that
   confidence is background, every other pixel is left out (weight 0). The image label may only
   veto: a negative image has no positive pixel (all background). It never forces a pixel to be
   positive: before issue 24 a positive's teacher-top 0.5 % of pixels were positive whatever
   the teacher's confidence, which turned the term into an image-label loss (a positive image
   must hold positive pixels somewhere) that could learn the spurious feature
   (docs/results/mask-budget.md measures both rules). A positive image the teacher is unsure
   of therefore teaches nothing but its confident background.
3. The student sees the unlabelled images strongly perturbed (`perturb`: contrast, brightness
   and Gaussian noise; photometric only, so the pseudo mask stays aligned with the image) and
   learns the pseudo mask with the ERM pixel loss (cross-entropy, plus Dice with `ce+dice`),
   times lambda(epoch) = ssl_weight * exp(-5 (1 - epoch / ssl_rampup)^2) while epoch < ssl_rampup
   (the sigmoid ramp-up of Laine & Aila 2017 used by Tarvainen & Valpola), per image.
4. After the optimiser step the teacher moves toward the student: every weight and BatchNorm
   statistic t <- a t + (1 - a) s with a = min(ssl_teacher_decay, 1 - 1 / (n + 1)) at step n
   (Tarvainen & Valpola's warm-up, so the first steps follow the student closely).

The student is the model that is validated, selected and saved; the teacher and its step count
are the method's checkpoint state, so a resumed run continues exactly. The teacher runs in eval
mode (its BatchNorm uses its averaged statistics), so its labels do not depend on the batch, the
rank or the worker count; perturbations are keyed by (seed, epoch, row) like the augmentation."""

from __future__ import annotations

import copy
import math

import numpy as np
import torch

from spurspec.errors import ArtefactError
from spurspec.training.data import augment
from spurspec.training.distributed import Dist
from spurspec.training.loop import Step, image_weights, loss_per_image, pixel_loss
from spurspec.training.methods.base import Method, RunContext
from spurspec.training.models.heads import PixelHead

# The strong view, in [-1, 1] image units: x * (1 + U(-0.3, 0.3)) + U(-0.2, 0.2) + 0.1 N(0, 1).
CONTRAST, BRIGHTNESS, NOISE = 0.3, 0.2, 0.1
# Perturbation keys use rows shifted by 2**40 (rows are < 2**31): a stream of their own,
# independent of the augmentation's draws for the same (seed, epoch, row).
STREAM = 1 << 40


def rampup(epoch: int, rampup_epochs: int) -> float:
    """exp(-5 (1 - t)^2) with t = epoch / rampup_epochs, 1 from rampup_epochs on."""
    if rampup_epochs <= 0 or epoch >= rampup_epochs:
        return 1.0
    return math.exp(-5.0 * (1.0 - epoch / rampup_epochs) ** 2)


def pseudo_masks(prob: torch.Tensor, label: torch.Tensor, threshold: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(target, weight), both (N, H, W) float {0, 1}, from teacher probabilities `prob` (N, H, W)
    of images labelled `label` (N,): positive where prob >= threshold on an image not labelled
    negative, background where prob <= 1 - threshold or the image is negative, left out (weight
    0) elsewhere. threshold > 0.5, so no pixel is both."""
    flat = prob.detach().float()
    veto = (label.to(flat.device) < 0.5)[:, None, None]
    positive = (flat >= threshold) & ~veto
    background = (flat <= 1 - threshold) | veto
    return positive.float(), (positive | background).float()


def perturb(image: torch.Tensor, rows: np.ndarray, epochs: np.ndarray, seed: int) -> torch.Tensor:
    """The strong view of images (N, C, H, W) in [-1, 1]: per image a contrast, a brightness and
    Gaussian noise drawn from (seed, epoch, row), so the same on any device, batch or rank."""
    key = augment.keys(seed, epochs, np.asarray(rows, dtype=np.int64) + STREAM)
    u = augment.uniforms(key, 2)
    shape = (-1, 1, 1, 1)
    contrast = torch.as_tensor(1 + (2 * u[:, 0] - 1) * CONTRAST, dtype=image.dtype).to(image.device).view(shape)
    brightness = torch.as_tensor((2 * u[:, 1] - 1) * BRIGHTNESS, dtype=image.dtype).to(image.device).view(shape)
    noise = torch.stack([torch.randn(image.shape[1:], generator=torch.Generator().manual_seed(int(k)))
                         for k in key]).to(image.device, image.dtype)
    return image * contrast + brightness + NOISE * noise


class SegSSL(Method):
    """Learns from the training positives without a kept mask (its card needs "unlabelled": the
    trainer keeps them as items with `labelled` False)."""

    def __init__(self, ctx: RunContext) -> None:
        super().__init__(ctx)
        self.cfg, self.student = ctx.cfg, ctx.model
        self.teacher = copy.deepcopy(ctx.model).eval()
        for p in self.teacher.parameters():
            p.requires_grad_(False)
        self.steps = 0
        self.weight = 0.0  # lambda of the current epoch
        # loss sum, unlabelled images, positive-share sum, confident-share sum (this rank, this epoch)
        self._sums = torch.zeros(4, dtype=torch.float64, device=ctx.device)

    @torch.no_grad()
    def prepare(self, step: Step, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Teacher pseudo masks of the unlabelled items, then their strong view for the student."""
        self.weight = self.cfg.ssl_weight * rampup(int(batch["epoch"][0]), self.cfg.ssl_rampup)
        at = torch.flatten(torch.nonzero(~batch["labelled"].bool()))
        if len(at) == 0:
            return batch
        image = batch["image"].to(step.device, non_blocking=True)
        weak = image.index_select(0, at.to(step.device))
        if step.channels_last:
            weak = weak.contiguous(memory_format=torch.channels_last)
        with step.autocast():
            logits = self.teacher(weak)
        head = step.head or PixelHead(2)
        target, weight = pseudo_masks(head.prob(logits), batch["label"][at], self.cfg.ssl_threshold)
        strong = perturb(weak.contiguous(), batch["row"][at].numpy(), batch["epoch"][at].numpy(), self.cfg.seed)
        image = image.index_copy(0, at.to(step.device), strong)
        # The pseudo mask as a class map: the positive class (1 of 2, 2 of 3) or background.
        return {**batch, "image": image, "pseudo_index": at, "pseudo_target": target * head.positive,
                "pseudo_weight": weight}

    def __call__(self, step: Step, logits: torch.Tensor, batch: dict[str, torch.Tensor], weighted: bool) -> torch.Tensor:
        loss = loss_per_image(step, logits, batch, weighted=False)
        if "pseudo_index" not in batch:
            return image_weights(step, loss, batch["label"].to(step.device)) if weighted else loss
        at = batch["pseudo_index"].to(step.device)
        unlabelled = pixel_loss(step, logits.index_select(0, at), batch["pseudo_target"], batch["pseudo_weight"])
        keep = torch.ones_like(loss).index_fill(0, at, 0.0)
        loss = (loss * keep).index_add(0, at, self.weight * unlabelled)
        with torch.no_grad():
            share = lambda m: m.float().flatten(1).mean(1).sum()  # noqa: E731
            self._sums += torch.stack([unlabelled.detach().sum(), torch.tensor(float(len(at)), device=step.device),
                                       share(batch["pseudo_target"] > 0), share(batch["pseudo_weight"])]).double()
        return image_weights(step, loss, batch["label"].to(step.device)) if weighted else loss

    @torch.no_grad()
    def after_step(self, step: Step) -> None:
        """The teacher's exponential moving average of the student (weights and BN statistics)."""
        self.steps += 1
        a = min(self.cfg.ssl_teacher_decay, 1.0 - 1.0 / (self.steps + 1))
        student = self.student.state_dict()
        for name, t in self.teacher.state_dict().items():
            s = student[name].detach()
            if t.dtype.is_floating_point:
                t.mul_(a).add_(s, alpha=1.0 - a)
            else:
                t.copy_(s)

    def state_dict(self) -> dict:
        return {"teacher": {k: v.detach().cpu() for k, v in self.teacher.state_dict().items()}, "steps": self.steps}

    def load_state_dict(self, state: dict) -> None:
        if "teacher" not in state:
            raise ArtefactError("the checkpoint holds no seg-ssl teacher; it was not written by a seg-ssl run")
        self.teacher.load_state_dict(state["teacher"])
        self.steps = int(state["steps"])

    def epoch_log(self, dist: Dist) -> dict[str, float | str | None]:
        loss, n, positive, confident = dist.sum(self._sums.cpu().tolist())
        self._sums.zero_()
        if n == 0:
            return {"ssl_loss": None, "ssl_weight": self.weight, "ssl_positive_share": None, "ssl_confident_share": None}
        return {"ssl_loss": loss / n, "ssl_weight": self.weight, "ssl_positive_share": positive / n,
                "ssl_confident_share": confident / n}
