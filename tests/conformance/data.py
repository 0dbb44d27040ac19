"""Small fixed dataset directories for the conformance tests: given masks and labels, written
through DatasetWriter as an ingest would (a `name` of "isic" makes the trainer treat it as ISIC).
Images are the masks made bright on a dark background; every row is in one split unless told.
`Fixed` is a model that outputs given logits, for the rows that score fixed outputs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import torch

from spurspec.artefacts.dataset import DatasetWriter


def write(out: Path, masks: np.ndarray, labels: list[int], name: str = "tiny",
          splits: list[str] | None = None) -> Path:
    n, size = len(labels), masks.shape[-1]
    splits = splits or ["train"] * n
    with DatasetWriter(out, n=n, size=size, channels=1) as w:
        for i in range(n):
            w.put(i, (40 + 160 * masks[i]).astype(np.uint8)[None], masks[i].astype(np.uint8))
        manifest = pa.table({
            "image_id": [f"img{i:03d}" for i in range(n)],
            "patient_id": [f"p{i:03d}" for i in range(n)],
            "split": splits,
            "label": pa.array(labels, pa.int8()),
            "has_mask": [True] * n,
            "source": [name] * n,
            "orig_height": pa.array([size] * n, pa.int32()),
            "orig_width": pa.array([size] * n, pa.int32()),
            "chest_tube": pa.array([0] * n, pa.int8()),
        })
        w.finish(manifest, spurious=["chest_tube"], info={"name": name}, settings={}, inputs={})
    return out


class Fixed(torch.nn.Module):
    """A "model" whose output is the given logits, whatever the input."""

    def __init__(self, logits: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("logits", logits)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.logits[: len(x)]
