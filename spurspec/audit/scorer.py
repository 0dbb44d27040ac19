"""An outside model as the probes' scorer (the interface of spurspec.probes.scoring.Scorer:
score_images, clean_scores, map_kinds, maps), so `spurspec audit` runs the probe stage itself
rather than a copy of it. Images go through the card's normalisation in batches; the one map is
occlusion (Captum's, with the model wrapped as a function: it needs no gradients): a window of
the card's mean (zero after normalisation) slides over the image, and a pixel's evidence is the
mean drop in the score when the windows covering it are blanked, its positive part kept.
Occlusion costs one forward pass per image and window; that count is said before it starts and
in a terminal a progress bar with an ETA follows it (stderr). Reads the dataset's images; writes nothing."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any

import numpy as np

from spurspec.artefacts.dataset import Dataset
from spurspec.audit.model import OnnxModel

MAPS = ("occlusion",)


def windows(size: int, window: int, stride: int) -> int:
    """Occlusion windows per image: positions per side squared (Captum's count)."""
    per_side = (size - window) // stride + 1
    return per_side * per_side


def default_window(size: int) -> tuple[int, int]:
    """A window an eighth of the image (at least 2 px) moved by half its side."""
    window = max(2, size // 8)
    return window, max(1, window // 2)


@dataclass
class ExternalScorer:
    model: OnnxModel
    ds: Dataset
    batch_size: int = 64
    window: int | None = None
    stride: int | None = None
    say: Any = None  # callable(str) hearing the occlusion's cost; None: stderr

    map_kinds = MAPS

    def score_images(self, images: np.ndarray) -> np.ndarray:
        """Scores of uint8 images (n, C, S, S), in batches."""
        out = [self.model.scores(self.model.normalise(images[s:s + self.batch_size]))
               for s in range(0, len(images), self.batch_size)]
        return np.concatenate(out) if out else np.zeros(0)

    def clean_scores(self, rows: np.ndarray) -> np.ndarray:
        """Scores of the dataset's own `rows`, in that order, one batch read at a time (a run of
        consecutive rows is sliced from the memory map rather than gathered)."""
        images = self.ds.images()
        rows = np.asarray(rows, dtype=np.int64)
        out = []
        for s in range(0, len(rows), self.batch_size):
            part = rows[s:s + self.batch_size]
            consecutive = len(part) and part[-1] - part[0] == len(part) - 1 and bool(np.all(np.diff(part) == 1))
            batch = images[part[0]:part[-1] + 1] if consecutive else images[part]
            out.append(self.model.scores(self.model.normalise(batch)))
        return np.concatenate(out) if out else np.zeros(0)

    def maps(self, kind: str, images: np.ndarray, ig_steps: int) -> np.ndarray:
        """float32 (n, S, S) occlusion maps (>= 0) of uint8 images (n, C, S, S)."""
        if kind != "occlusion":
            raise ValueError(f"unknown map kind {kind!r}")
        import torch
        from captum.attr import Occlusion
        from tqdm import tqdm

        n, c, size = len(images), images.shape[1], images.shape[-1]
        default = default_window(size)
        window, stride = self.window or default[0], self.stride or default[1]
        passes = n * (windows(size, window, stride) + 1)  # + each image's unblanked pass
        (self.say or _stderr)(f"occlusion: {n} images x {windows(size, window, stride)} windows of {window} px "
                              f"(stride {stride}) = {passes} forward passes")
        bar = tqdm(total=passes, unit="pass", file=sys.stderr, disable=None, leave=False)

        def forward(x: torch.Tensor) -> torch.Tensor:
            bar.update(len(x))
            return torch.from_numpy(self.model.scores(x.numpy()))

        occlusion = Occlusion(forward)
        out = []
        try:
            for s in range(0, n, self.batch_size):
                x = torch.from_numpy(self.model.normalise(images[s:s + self.batch_size]))
                attr = occlusion.attribute(x, sliding_window_shapes=(c, window, window), strides=(c, stride, stride),
                                           baselines=0.0, perturbations_per_eval=max(1, self.batch_size // len(x)))
                out.append(attr.sum(dim=1).clamp(min=0).numpy().astype(np.float32))
        finally:
            bar.close()
        return np.concatenate(out) if out else np.zeros((0, size, size), np.float32)


def _stderr(text: str) -> None:
    print(text, file=sys.stderr, flush=True)
