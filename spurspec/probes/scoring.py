"""A run's model applied to images a probe made: image scores, and evidence maps for attribution.
The model is loaded as `evaluate` loads it (spurspec.training.predict) and images go through the
same conversion as every scored image (spurspec.training.data.rows.RowsDataset), so a probe's clean
scores are evaluate's scores. Maps: the probability map P(positive region) of a pixel model,
Grad-CAM of a binary model (predict.grad_cam, MONAI's), and for both the positive part of the
integrated gradients (models.attribution, Captum's) of the image score: a binary model's score
evidence (its logit, or with two logits the class-1 logit or the log-odds,
heads.BinaryHead.evidence: it ranks images as the score does and does not saturate) or a pixel
model's summarised probability map. Reads a run (config, checkpoint, dataset); writes nothing."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from spurspec.training import predict
from spurspec.training.data import rows as data
from spurspec.training.models import attribution, summaries

MAPS_BINARY = ("gradcam", "integrated_gradients")
MAPS_PIXEL = ("probability", "integrated_gradients")


class ArrayRows(data.RowsDataset):
    """RowsDataset over images held in memory (uint8 (n, C, S, S)) instead of a dataset's file:
    the same items, the same conversion to the network's input."""

    def __init__(self, images: np.ndarray, seed: int) -> None:
        super().__init__(Path("."), np.zeros(len(images)), None, "none", seed)
        self._array = images

    def _open(self) -> None:
        self._images = self._array


@dataclass
class Scorer:
    """One run's model, ready to score images under one summarising function."""

    run: predict._Loaded
    summary: str

    @classmethod
    def load(cls, run_dir: Path, checkpoint: str, summary: str, device: str | None) -> Scorer:
        return cls(predict._load(Path(run_dir), "test", checkpoint, device), summary)

    @property
    def pixel(self) -> bool:
        return self.run.gran.pixel

    @property
    def map_kinds(self) -> tuple[str, ...]:
        return MAPS_PIXEL if self.pixel else MAPS_BINARY

    def dataset_rows(self) -> data.RowsDataset:
        """The run's own dataset, unaugmented, as evaluate scores it."""
        labels = np.asarray(self.run.ds.manifest.column("label").to_numpy(zero_copy_only=False))
        return data.RowsDataset(self.run.ds.root, labels, None, "none", self.run.cfg.seed)

    def scores(self, dataset: data.RowsDataset, rows: np.ndarray) -> np.ndarray:
        """Image scores of `rows` of `dataset`, in that order."""
        if len(rows) == 0:
            return np.zeros(0)
        scores, order, _ = predict._score(self.run, dataset, np.asarray(rows), set())
        by_row = dict(zip(order, scores[self.summary], strict=True))
        return np.array([by_row[int(r)] for r in rows], dtype=np.float64)

    def clean_scores(self, rows: np.ndarray) -> np.ndarray:
        """Image scores of the dataset's own `rows` (unchanged images), as evaluate scored them."""
        return self.scores(self.dataset_rows(), rows)

    def score_images(self, images: np.ndarray) -> np.ndarray:
        """Image scores of uint8 images (n, C, S, S)."""
        return self.scores(ArrayRows(images, self.run.cfg.seed), np.arange(len(images)))

    def maps(self, kind: str, images: np.ndarray, ig_steps: int) -> np.ndarray:
        """float32 (n, S, S) evidence maps (>= 0) of uint8 images (n, C, S, S), in batches."""
        dataset = ArrayRows(images, self.run.cfg.seed)
        out = []
        step = max(1, self.run.cfg.batch_size)
        for start in range(0, len(images), step):
            rows = list(range(start, min(start + step, len(images))))
            x = torch.stack([dataset[r]["image"] for r in rows]).to(self.run.device)
            out.append(self._batch_maps(kind, dataset, rows, x, ig_steps))
        return np.concatenate(out) if out else np.zeros((0, *images.shape[-2:]), np.float32)

    def _batch_maps(self, kind: str, dataset: ArrayRows, rows: list[int], x: torch.Tensor, ig_steps: int) -> np.ndarray:
        if kind == "probability":
            with torch.no_grad():
                return self.run.head.prob(self.run.model(x).float()).cpu().numpy().astype(np.float32)
        if kind == "gradcam":
            cams = predict.grad_cam(self.run.model, dataset, rows, self.run.device, self.run.binary)
            return np.stack([cams[r] for r in rows])
        if kind == "integrated_gradients":
            # Unsmoothed: the attribution probe counts the evidence's mass, not a drawing of it.
            return attribution.integrated_gradients(self._score_of, x, ig_steps)
        raise ValueError(f"unknown map kind {kind!r}")

    def _score_of(self, x: torch.Tensor) -> torch.Tensor:
        """(B,) the differentiable image score integrated gradients explains."""
        logits = self.run.model(x).float()
        if not self.pixel:
            return self.run.binary.evidence(logits)
        return summaries.get(self.summary)(self.run.head.prob(logits))

