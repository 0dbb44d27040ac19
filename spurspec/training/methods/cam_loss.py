"""`cam-loss` (`--method cam-loss`) follows the external supervision of GAIN (Li, Wu, Peng, Ernst &
Fu, "Tell Me Where to Look: Guided Attention Inference Network", CVPR 2018, section 3.3), which
trains the attention map toward the annotation: here the map is the class activation map of Zhou
et al. (CVPR 2016), w . f(x, y) of the last encoder stage and the linear head, which for a pooled
linear head is Grad-CAM up to a positive factor, and the loss is the share of its positive part
that falls outside the annotated region (regions.py; cells holding no region pixel), in [0, 1].
spurspec uses the share rather than GAIN's squared distance to the mask so the term does not ask
the map to fill the region, only to stay inside it (an abnormality is often told by a part of
its region). Its card is in methods/__init__.py. Reads batches; writes nothing."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from spurspec.training.loop import Step, loss_per_image
from spurspec.training.methods.base import RunContext, Say, Stage
from spurspec.training.methods.regions import RegionTerm, regions

# Fewer cells a side than this and the map is too coarse to localise (stride 32: 128 px gives 4).
COARSE_CAM = 4


def outside_share(cam: torch.Tensor, region: torch.Tensor) -> torch.Tensor:
    """(B,) share of the positive part of `cam` (B, h, w) in cells that hold no pixel of `region`
    (B, H, W): the region max-pooled onto the map's cells, as the study made coarse masks (a
    cell is inside if any region pixel falls in it; averaging instead would leave a small lesion
    'outside' every cell of a coarse map). 0 for a map with no positive evidence."""
    inside = F.adaptive_max_pool2d(region[:, None].float(), cam.shape[-2:])[:, 0]
    mass = F.relu(cam.float())
    return (mass * (1.0 - inside)).flatten(1).sum(1) / mass.flatten(1).sum(1).clamp_min(1e-8)


class CAMLoss(RegionTerm):
    column = "cam_outside_share"

    def __init__(self, ctx: RunContext) -> None:
        super().__init__(ctx)
        self.weight, self.model = ctx.cfg.cam_weight, ctx.model
        self._features: torch.Tensor | None = None
        self._handle = ctx.model.on_features(self._keep)
        self._say: Say | None = None

    def begin(self, stage: Stage) -> None:
        self._say = stage.say  # the map's size is told once, at the first training step

    def _keep(self, features: torch.Tensor) -> None:
        if torch.is_grad_enabled():  # training forwards only
            self._features = features

    def _tell_map_size(self, say: Say, features: torch.Tensor, image_size: int) -> None:
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
            say, self._say = self._say, None
            self._tell_map_size(say, features, batch["image"].shape[-1])
        region, penalised = regions(batch, step.device)
        # The map of the score's evidence: the head's one weight vector, or with two logits the
        # class-1 logit's (score logit) or the log-odds' (w1 - w0) (heads.BinaryHead.evidence_weight).
        weight = step.binary.evidence_weight(self.model.head.weight).float()
        cam = torch.einsum("bchw,c->bhw", features.float(), weight)
        share = outside_share(cam, region) * penalised
        self._add(share, penalised)
        return loss + self.weight * share
