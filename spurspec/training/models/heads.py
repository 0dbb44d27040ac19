"""Heads: what a model's output means, defined once for training, validation, prediction,
probes and methods. Binary heads (`BinaryHead`): one logit with binary cross-entropy (spurspec's),
or two logits with softmax cross-entropy (the study's ResNet-50), and the image score a binary
model is ranked by: P(label 1), or the raw logit of class 1 as the study's evaluation ranked.
Pixel heads (`PixelHead`): Two classes (background / region of a positive image) is one logit per pixel with
a sigmoid, the chest-film case whose negatives have no mask. Three classes (background / region
of a negative image / region of a positive image) is the study's ISIC head: benign lesions have
masks too, so a model that lumped them with malignant ones would learn "where is the lesion"
and score lesion area, not malignancy. Either way the image score is a summarising function of
P(region of a positive image), and Dice is measured on that class. Reads and writes nothing.
Torch is imported inside the methods: the CLI lists HEADS without loading it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch

# Values of the `head` setting: resolved per dataset by `classes_for`.
HEADS = ("auto", "two-class", "three-class")
# Values of `binary_head` and `binary_score` (BinaryHead).
BINARY_HEADS = ("one-logit", "two-logit")
BINARY_SCORES = ("probability", "logit")


def classes_for(setting: str, negative_regions: bool) -> int:
    """2 or 3. `auto`: three classes when some negative image has a region (its mask holds
    pixels: ISIC's benign lesions), else two; `two-class` treats negatives' regions as
    background. A negative with an empty mask (SIIM records one for every image) has no region."""
    if setting == "three-class":
        return 3
    if setting == "two-class":
        return 2
    return 3 if negative_regions else 2


def negatives_have_regions(masks: np.ndarray, has_mask: np.ndarray, labels: np.ndarray, chunk: int = 256) -> bool:
    """Does any negative image's mask hold a pixel? Reads the (memory-mapped) masks of negatives
    with a mask in chunks and stops at the first region, so ISIC answers at once and a
    12,000-image chest-film set streams its negatives' masks once."""
    rows = np.flatnonzero(np.asarray(has_mask, dtype=bool) & (np.asarray(labels) == 0))
    for start in range(0, len(rows), chunk):
        if np.asarray(masks[rows[start:start + chunk]]).any():
            return True
    return False


def dataset_classes(setting: str, dataset) -> int:
    """The classes a run on `dataset` (an artefacts.dataset.Dataset) trains with under `setting`:
    training and prediction both ask here, so they always agree."""
    if setting != "auto":
        return classes_for(setting, False)
    counted = dataset.info.get("negatives_with_regions")  # written by ingest since issue 17
    if counted is not None:
        return classes_for(setting, counted > 0)
    column = dataset.manifest.column
    has_mask = column("has_mask").to_numpy(zero_copy_only=False)
    labels = column("label").to_numpy(zero_copy_only=False)
    return classes_for(setting, negatives_have_regions(dataset.masks(), has_mask, labels))


def target_classes(mask: np.ndarray, label: int, classes: int) -> np.ndarray:
    """A 0/1 region mask of one image -> its class map: 0 background; a positive image's region
    is the last class (1 of 2, 2 of 3); a negative image's region is class 1 of 3, or background
    with two classes. So a negative image's target never holds the positive class."""
    region = np.asarray(mask, dtype=np.uint8)
    if classes == 2:
        return region * np.uint8(label == 1)
    return region * np.uint8(2 if label == 1 else 1)


@dataclass(frozen=True)
class PixelHead:
    classes: int  # 2 or 3

    @property
    def out_channels(self) -> int:
        """Logit channels of the network: one (sigmoid) for two classes, else one per class."""
        return 1 if self.classes == 2 else self.classes

    @property
    def positive(self) -> int:
        return self.classes - 1

    def prob(self, logits: torch.Tensor) -> torch.Tensor:
        """(B, H, W) P(region of a positive image) from the network's logits."""
        import torch

        if self.classes == 2:
            return torch.sigmoid(logits.float())
        return torch.softmax(logits.float(), dim=1)[:, self.positive]

    def positive_target(self, target: torch.Tensor) -> torch.Tensor:
        """(B, H, W) float {0, 1}: the positive class of a class-map target."""
        return (target == self.positive).float()

    def pixel_loss(self, logits: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor:
        """(B,) mean per-pixel cross-entropy, unweighted (the study's); with two classes this is
        the binary cross-entropy of the one logit. `weight` (B, H, W) scales each pixel's term
        before the mean over all pixels (Seg-SSL's pseudo-labels: 0 where the teacher is unsure)."""
        import torch.nn.functional as F

        logits = logits.float()
        if self.classes == 2:
            loss = F.binary_cross_entropy_with_logits(logits, self.positive_target(target), reduction="none")
        else:
            loss = F.cross_entropy(logits, target.long(), reduction="none")
        if weight is not None:
            loss = loss * weight
        return loss.flatten(1).mean(1)


@dataclass(frozen=True)
class BinaryHead:
    """An image-label model's output. `logits`: one-logit (B,) with binary cross-entropy, or
    two-logit (B, 2) with softmax cross-entropy (the study's). `score`: probability = P(label 1)
    (the sigmoid, or the softmax's class 1); logit = the raw logit of class 1 (the study's
    evaluation). With two logits the two rank differently: softmax P(1) = sigmoid(z1 - z0)
    ranks by the difference, the study by z1 alone. A logit score is unbounded, so anything
    that needs a probability (a 0.5 cut, JTT's errors) reads `prob`, never `score`."""

    logits: str = "one-logit"
    score_by: str = "probability"

    @property
    def out_features(self) -> int:
        return 2 if self.logits == "two-logit" else 1

    def loss(self, logits: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
        """(B,) fp32 cross-entropy of the label: binary on one logit, softmax on two."""
        import torch.nn.functional as F

        logits = logits.float()
        if self.out_features == 1:
            return F.binary_cross_entropy_with_logits(logits, label.float(), reduction="none")
        return F.cross_entropy(logits, label.long(), reduction="none")

    def log_odds(self, logits: torch.Tensor) -> torch.Tensor:
        """(B,) log P(1) / P(0): the logit, or z1 - z0."""
        logits = logits.float()
        return logits if self.out_features == 1 else logits[:, 1] - logits[:, 0]

    def prob(self, logits: torch.Tensor) -> torch.Tensor:
        """(B,) P(label 1)."""
        import torch

        return torch.sigmoid(self.log_odds(logits))

    def log_probs(self, logits: torch.Tensor) -> torch.Tensor:
        """(B, 2) log P(0), log P(1)."""
        import torch
        import torch.nn.functional as F

        z = self.log_odds(logits)
        return torch.stack([F.logsigmoid(-z), F.logsigmoid(z)], dim=1)

    def evidence(self, logits: torch.Tensor) -> torch.Tensor:
        """(B,) the unsaturated quantity the score ranks by, for gradients (Grad-CAM, integrated
        gradients): the class-1 logit under `logit`, else the log-odds (the probability's logit)."""
        if self.score_by == "logit" and self.out_features == 2:
            return logits.float()[:, 1]
        return self.log_odds(logits)

    def score(self, logits: torch.Tensor) -> torch.Tensor:
        """(B,) the image score the run is ranked by."""
        return self.evidence(logits) if self.score_by == "logit" else self.prob(logits)

    def evidence_weight(self, weight: torch.Tensor) -> torch.Tensor:
        """(C,) the linear head's weights (out_features, C) of `evidence`: its class activation map
        is this vector against the last features."""
        if self.out_features == 1:
            return weight[0]
        return weight[1] if self.score_by == "logit" else weight[1] - weight[0]

    def set_log_odds(self, linear: torch.nn.Linear, weight: torch.Tensor, bias: float) -> None:
        """Make the linear head's log-odds weight . x + bias (DFR's refit): with two logits class 0's
        logit is 0 and class 1's is the log-odds, so both scores rank as the refit does."""
        import torch

        with torch.no_grad():
            w = torch.as_tensor(weight, dtype=linear.weight.dtype, device=linear.weight.device)
            linear.weight.zero_()
            linear.bias.zero_()
            linear.weight[-1].copy_(w)
            linear.bias[-1] = float(bias)
