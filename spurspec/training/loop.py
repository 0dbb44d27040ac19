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

from spurspec.training.models.heads import BinaryHead, PixelHead


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
    binary: BinaryHead = BinaryHead()  # binary models: one logit or two, and the image score
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
    """(B,) fp32 ERM losses. Pixel: `pixel_loss` on the batch's targets. Binary: the binary head's
    cross-entropy of the label (BCE of one logit, softmax CE of two). `weighted`: positives times
    step.pos_weight."""
    label = batch["label"].to(step.device, non_blocking=True)
    if step.pixel:
        loss = pixel_loss(step, logits, batch["target"].to(step.device, non_blocking=True))
    else:
        loss = step.binary.loss(logits, label)
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


def predicted_positive(head: PixelHead, logits: torch.Tensor) -> torch.Tensor:
    """(B, H, W) bool: the pixels whose argmax class is the positive one (region of a positive
    image). One sigmoid logit z stands for the two logits (0, z): the argmax is positive where
    z > 0 (a tie goes to the first class, background, as numpy's and torch's argmax do)."""
    if logits.dim() == 3:
        return logits > 0
    return logits.argmax(1) == head.positive


def dice_per_image(pred: torch.Tensor, target: torch.Tensor, empty: float) -> torch.Tensor:
    """(B,) per-image Dice 2|pred ∧ target| / (|pred| + |target|) of {0, 1} maps; `empty` where
    both are empty (0/0). A prediction on an empty target scores 0."""
    pred = pred.float()
    inter = (pred * target).flatten(1).sum(1)
    denom = pred.flatten(1).sum(1) + target.flatten(1).sum(1)
    return torch.where(denom > 0, 2 * inter / denom.clamp_min(1), empty)


@torch.no_grad()
def predict(step: Step, loader, summary: Callable[[torch.Tensor], torch.Tensor] | None) -> dict[str, np.ndarray]:
    """Rows, labels, image scores (binary: the head's score, a probability or a logit; pixel
    models: `summary` of the probability map), `prob` (P(label 1), which a 0.5 cut may read),
    per-image loss,
    and for pixel models per-image Dice of the positive class: `dice` at P > 0.5 (an empty target
    scores 1 with no predicted pixel, else 0) with `has_target` (the target holds that class), and
    `study_dice`, the study's on the argmax class map (NaN for an empty target with nothing
    predicted: the study's nanmean leaves such images out)."""
    step.model.eval()
    rows, labels, scores, probs, losses, dices, has_target = [], [], [], [], [], [], []
    study_dices = []
    for batch in loader:
        x = step.inputs(batch)
        with step.autocast():
            logits = step.model(x)
        logits = logits.float()
        losses.append(loss_per_image(step, logits, batch, weighted=False).cpu())
        if step.pixel:
            prob = _head(step).prob(logits)
            scores.append(summary(prob).cpu())
            probs.append(scores[-1])
            target = _head(step).positive_target(batch["target"].to(step.device))
            # An empty target scores 1 at 0.5 when nothing is predicted; the study's Dice leaves it out (NaN).
            dices.append(dice_per_image(prob > 0.5, target, empty=1.0).cpu())
            study_dices.append(dice_per_image(predicted_positive(_head(step), logits), target, empty=float("nan")).cpu())
            has_target.append((target.flatten(1).sum(1) > 0).cpu())
        else:
            scores.append(step.binary.score(logits).cpu())
            probs.append(step.binary.prob(logits).cpu())
        rows.append(batch["row"])
        labels.append(batch["label"])
    cat = lambda xs: torch.cat(xs).double().numpy() if xs else np.zeros(0)  # noqa: E731
    return {"row": cat(rows).astype(np.int64), "label": cat(labels), "score": cat(scores), "prob": cat(probs),
            "loss": cat(losses), "dice": cat(dices) if step.pixel else np.zeros(0),
            "study_dice": cat(study_dices) if step.pixel else np.zeros(0),
            "has_target": cat(has_target) if step.pixel else np.zeros(0)}

