"""Explanation-guided training of image-label (binary) classifiers: `rrr` and `cam-loss` use the
annotated regions the data already has (a training positive's mask, or the box around it, while
the mask budget keeps it) to penalise evidence outside them. Their batch items carry the region
as `target` (moved with the image by the batch augmentation) and `labelled` (False where the
budget keeps no region: no penalty there). Negatives are never penalised: nothing says where a
negative's evidence should lie. Reads batches; writes nothing.

`rrr` is "right for the right reasons" (Ross, Hughes & Doshi-Velez, "Right for the Right Reasons:
Training Differentiable Models by Constraining their Explanations", IJCAI 2017, eq. 1): beside
the cross-entropy, lambda_1 * sum_pixels (A * d/dx sum_k log p_k)^2, where A is 1 on irrelevant
pixels (outside the region) and the sum over k runs over both classes of the binary model. The
input gradient is taken with create_graph, so the penalty is trained through (double backward).

`cam-loss` follows the external supervision of GAIN (Li, Wu, Peng, Ernst & Fu, "Tell Me Where to
Look: Guided Attention Inference Network", CVPR 2018, section 3.3), which trains the attention
map toward the annotation: here the map is the class activation map of Zhou et al. (CVPR 2016),
w . f(x, y) of the last encoder stage and the linear head, which for a pooled linear head is
Grad-CAM up to a positive factor, and the loss is the share of its positive part that falls
outside the region (cells holding no region pixel), in [0, 1]. spurspec uses the share
rather than GAIN's squared distance to the mask so the term does not ask the map to fill the
region, only to stay inside it (an abnormality is often told by a part of its region)."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from spurspec.training.loop import Objective, Step, loss_per_image


def regions(batch: dict[str, torch.Tensor], device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """(region (B, H, W) float {0, 1}, penalised (B,) bool): the region of each image and whether
    the image is penalised (a positive whose region the budget keeps)."""
    region = (batch["target"].to(device) > 0).float()
    penalised = batch["labelled"].to(device).bool() & (batch["label"].to(device) > 0.5)
    return region, penalised


def rrr_penalty(grads: torch.Tensor, region: torch.Tensor) -> torch.Tensor:
    """(B,) Ross et al.'s penalty: the sum over channels and pixels outside `region` (B, H, W) of
    the squared input gradients `grads` (B, C, H, W). Exactly 0 when the gradient lies inside."""
    outside = (1.0 - region)[:, None]
    return ((outside * grads.float()) ** 2).flatten(1).sum(1)


def outside_share(cam: torch.Tensor, region: torch.Tensor) -> torch.Tensor:
    """(B,) share of the positive part of `cam` (B, h, w) in cells that hold no pixel of `region`
    (B, H, W): the region max-pooled onto the map's cells, as the study made coarse masks (a
    cell is inside if any region pixel falls in it; averaging instead would leave a small lesion
    'outside' every cell of a coarse map). 0 for a map with no positive evidence."""
    inside = F.adaptive_max_pool2d(region[:, None].float(), cam.shape[-2:])[:, 0]
    mass = F.relu(cam.float())
    return (mass * (1.0 - inside)).flatten(1).sum(1) / mass.flatten(1).sum(1).clamp_min(1e-8)


class _RegionTerm(Objective):
    """What rrr and cam-loss share: a per-image term on penalised images, logged as its mean."""

    def __init__(self, device: torch.device) -> None:
        self._sums = torch.zeros(2, dtype=torch.float64, device=device)  # term sum, penalised images

    def _add(self, term: torch.Tensor, penalised: torch.Tensor) -> None:
        with torch.no_grad():
            self._sums += torch.stack([term.detach().double().sum(), penalised.double().sum()])

    def epoch_log(self, dist) -> dict[str, float | None]:
        total, n = dist.sum(self._sums.cpu().tolist())
        self._sums.zero_()
        return {self.columns[0]: total / n if n else None}


class RRR(_RegionTerm):
    columns = ("rrr_penalty",)

    def __init__(self, *, cfg: Any, device: torch.device, **_: Any) -> None:
        super().__init__(device)
        self.weight = cfg.rrr_weight
        self._x: torch.Tensor | None = None

    def prepare(self, step: Step, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        # The input is a leaf that records its gradient, so the loss can differentiate through it.
        self._x = batch["image"].to(step.device).detach().requires_grad_(True)
        return {**batch, "image": self._x}

    def __call__(self, step: Step, logits: torch.Tensor, batch: dict[str, torch.Tensor], weighted: bool) -> torch.Tensor:
        loss = loss_per_image(step, logits, batch, weighted)
        x, self._x = self._x, None
        region, penalised = regions(batch, step.device)
        z = logits.float()
        log_probs = F.logsigmoid(z) + F.logsigmoid(-z)  # log p(1) + log p(0), Ross et al.'s sum over classes
        grads = torch.autograd.grad(log_probs.sum(), x, create_graph=True)[0]
        penalty = rrr_penalty(grads, region) * penalised
        self._add(penalty, penalised)
        return loss + self.weight * penalty


# Fewer cells a side than this and the map is too coarse to localise (stride 32: 128 px gives 4).
COARSE_CAM = 4


class CAMLoss(_RegionTerm):
    columns = ("cam_outside_share",)

    def __init__(self, *, cfg: Any, model: torch.nn.Module, device: torch.device, **_: Any) -> None:
        super().__init__(device)
        self.weight, self.model = cfg.cam_weight, model
        self._features: torch.Tensor | None = None
        self._handle = model.on_features(self._keep)
        self._say: Any = None

    def begin(self, stage: Any) -> None:
        self._say = stage.say  # the map's size is told once, at the first training step

    def _keep(self, features: torch.Tensor) -> None:
        if torch.is_grad_enabled():  # training forwards only
            self._features = features

    def _tell_map_size(self, features: torch.Tensor, image_size: int) -> None:
        say, self._say = self._say, None
        height, width = features.shape[-2:]
        text = f"cam-loss: the class activation map is {height}x{width} at {image_size} px"
        if min(height, width) < COARSE_CAM:
            # At 64 px (a 2x2 map) one cell holds both the lesion and a tube beside it.
            text += f"; under {COARSE_CAM} cells a side it cannot tell a lesion from what lies next to it (train larger images)"
        say(text)

    def __call__(self, step: Step, logits: torch.Tensor, batch: dict[str, torch.Tensor], weighted: bool) -> torch.Tensor:
        loss = loss_per_image(step, logits, batch, weighted)
        features, self._features = self._features, None
        if features is None:
            raise RuntimeError("cam-loss: the forward pass handed over no encoder features")
        if self._say is not None:
            self._tell_map_size(features, batch["image"].shape[-1])
        region, penalised = regions(batch, step.device)
        cam = torch.einsum("bchw,c->bhw", features.float(), self.model.head.weight[0].float())
        share = outside_share(cam, region) * penalised
        self._add(share, penalised)
        return loss + self.weight * share
