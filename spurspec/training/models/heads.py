"""Pixel heads: what a pixel model's output means, defined once for training, validation and
prediction. Two classes (background / region of a positive image) is one logit per pixel with
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
