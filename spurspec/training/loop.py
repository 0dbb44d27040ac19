"""One training epoch and one evaluation pass over a loader. Losses are computed in fp32 even
under autocast; timing separates waiting for data from computing, so the train log can show
whether loading is ever the bottleneck. ERM's per-image losses are here; a training method
(methods/, through `StepHooks`) gives the training loss and hooks around each step. Reads
batches, updates the model; writes nothing."""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from spurspec.training.models.heads import PixelHead


@dataclass
class Step:
    """What a step needs; built once per run."""

    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    device: torch.device
    amp_dtype: torch.dtype | None  # None = full precision
    pixel: bool
    loss: str
    pos_weight: float  # weight of a positive image's loss (1.0 unless balance = pos-weight)
    channels_last: bool
    objective: StepHooks | None = None  # the method's training loss and hooks; None = ERM
    head: PixelHead | None = None  # pixel models: what the output channels mean; None = two classes
    # Training batches only: moves a batch to the device and augments it (augment.BatchAugment,
    # keyed by each item's row and epoch); None = no batch augmentation.
    augment: Callable[[dict], dict] | None = None

    def autocast(self):
        if self.amp_dtype is None:
            return nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.amp_dtype)

    def inputs(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        x = batch["image"].to(self.device, non_blocking=True)
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x


def _head(step: Step) -> PixelHead:
    return step.head or PixelHead(2)


def pixel_loss(step: Step, logits: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor:
    """(B,) fp32: the head's mean per-pixel cross-entropy (+ soft Dice of the positive class on
    images whose target holds it: Dice of an empty target is degenerate). `weight` (B, H, W)
    scales each pixel (0 leaves it out of both terms); None weighs every pixel 1."""
    head = _head(step)
    logits = logits.float()
    loss = head.pixel_loss(logits, target, weight)
    if step.loss.endswith("+dice"):
        prob = head.prob(logits).flatten(1)
        t = head.positive_target(target).flatten(1)
        if weight is not None:
            prob, t = prob * weight.flatten(1), t * weight.flatten(1)
        dice = 1 - (2 * (prob * t).sum(1) + 1.0) / (prob.sum(1) + t.sum(1) + 1.0)
        loss = loss + dice * (t.sum(1) > 0)
    return loss


def loss_per_image(step: Step, logits: torch.Tensor, batch: dict[str, torch.Tensor], weighted: bool) -> torch.Tensor:
    """(B,) fp32 ERM losses. Pixel: `pixel_loss` on the batch's targets. Binary: BCE of the image
    logit. `weighted`: positives times step.pos_weight."""
    label = batch["label"].to(step.device, non_blocking=True)
    if step.pixel:
        loss = pixel_loss(step, logits, batch["target"].to(step.device, non_blocking=True))
    else:
        loss = F.binary_cross_entropy_with_logits(logits.float(), label, reduction="none")
    return image_weights(step, loss, label) if weighted else loss


def image_weights(step: Step, loss: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
    """Per-image losses with positives weighted by step.pos_weight (balance = pos-weight)."""
    if step.pos_weight == 1.0:
        return loss
    return loss * torch.where(label > 0.5, step.pos_weight, 1.0)


class StepHooks:
    """A training method's side of a step, as ERM does it; methods.base.Method extends it into the
    whole method API. The order in train_epoch: prepare (after augmentation) -> forward ->
    __call__ (the (B,) fp32 per-image training loss) -> backward -> after_backward -> optimiser
    step -> after_step."""

    def prepare(self, step: Step, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return batch

    def __call__(self, step: Step, logits: torch.Tensor, batch: dict[str, torch.Tensor], weighted: bool) -> torch.Tensor:
        return loss_per_image(step, logits, batch, weighted)

    def after_backward(self, step: Step) -> None:
        return None

    def after_step(self, step: Step) -> None:
        return None


def train_epoch(step: Step, loader, on_batch: Callable[[int, float], None]) -> dict[str, float]:
    """Returns sums over this rank: loss_sum, n, seconds, wait_seconds."""
    step.model.train()
    objective = step.objective or StepHooks()
    loss_sum = torch.zeros((), device=step.device, dtype=torch.float64)
    n, wait, last_report = 0, 0.0, 0
    start = time.perf_counter()
    batches = iter(loader)
    while True:
        t0 = time.perf_counter()
        batch = next(batches, None)
        wait += time.perf_counter() - t0
        if batch is None:
            break
        if step.augment is not None:
            batch = step.augment(batch)
        batch = objective.prepare(step, batch)
        x = step.inputs(batch)
        with step.autocast():
            logits = step.model(x)
        loss = objective(step, logits, batch, weighted=True)
        step.optimizer.zero_grad(set_to_none=True)
        step.scaler.scale(loss.mean()).backward()
        objective.after_backward(step)
        step.scaler.step(step.optimizer)
        step.scaler.update()
        objective.after_step(step)
        loss_sum += loss.detach().sum()
        n += len(x)
        if n - last_report >= 8 * len(x) or last_report == 0:
            # .item() synchronises the device, so the bar is refreshed only every few batches.
            on_batch(n - last_report, float(loss_sum) / n)
            last_report = n
    if n > last_report:
        on_batch(n - last_report, float(loss_sum) / max(n, 1))
    if step.device.type == "cuda":
        torch.cuda.synchronize(step.device)
    return {"loss_sum": float(loss_sum), "n": n, "seconds": time.perf_counter() - start, "wait_seconds": wait}


@torch.no_grad()
def predict(step: Step, loader, summary: Callable[[torch.Tensor], torch.Tensor] | None) -> dict[str, np.ndarray]:
    """Rows, labels, image scores (probability; pixel models through `summary`), per-image loss,
    and for pixel models per-image Dice at 0.5 of the positive class with whether the target
    holds that class (an empty target's Dice is 1 with no predicted pixel, else 0)."""
    step.model.eval()
    rows, labels, scores, losses, dices, has_target = [], [], [], [], [], []
    for batch in loader:
        x = step.inputs(batch)
        with step.autocast():
            logits = step.model(x)
        logits = logits.float()
        losses.append(loss_per_image(step, logits, batch, weighted=False).cpu())
        if step.pixel:
            prob = _head(step).prob(logits)
            scores.append(summary(prob).cpu())
            target = _head(step).positive_target(batch["target"].to(step.device))
            pred = (prob > 0.5).float()
            inter = (pred * target).flatten(1).sum(1)
            denom = pred.flatten(1).sum(1) + target.flatten(1).sum(1)
            # An empty target scores 1 when nothing is predicted, 0 for any false positive.
            dices.append(torch.where(denom > 0, 2 * inter / denom.clamp_min(1), 1.0).cpu())
            has_target.append((target.flatten(1).sum(1) > 0).cpu())
        else:
            scores.append(torch.sigmoid(logits).cpu())
        rows.append(batch["row"])
        labels.append(batch["label"])
    cat = lambda xs: torch.cat(xs).double().numpy() if xs else np.zeros(0)  # noqa: E731
    return {"row": cat(rows).astype(np.int64), "label": cat(labels), "score": cat(scores),
            "loss": cat(losses), "dice": cat(dices) if step.pixel else np.zeros(0),
            "has_target": cat(has_target) if step.pixel else np.zeros(0)}

