"""A tiny synthetic dataset directory for training tests and the training benchmark, written
through DatasetWriter: positives carry a bright blob (the mask), a `chest_tube` attribute draws
a vertical line that co-occurs with the label in train, as in the study's chest X-rays."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa

from spurspec.artefacts.dataset import DatasetWriter


def make(out: Path, n: int = 40, size: int = 32, channels: int = 1, seed: int = 0, masks: bool = True,
         splits: tuple[float, float] = (0.6, 0.2), one_class_val: bool = False, train_tubes: bool = True) -> Path:
    rng = np.random.default_rng(seed)
    n_train, n_val = int(n * splits[0]), int(n * splits[1])
    split = ["train"] * n_train + ["val"] * n_val + ["test"] * (n - n_train - n_val)
    label = np.array([i % 2 for i in range(n)], dtype=np.int8)
    if one_class_val:  # a broken dataset: validation holds negatives only
        label[np.array(split) == "val"] = 0
    # The spurious line agrees with the label 80% of the time in train, 20% elsewhere.
    agree = rng.random(n) < np.where(np.array(split) == "train", 0.8, 0.2)
    tube = np.where(agree, label, 1 - label).astype(np.int8)
    yy, xx = np.mgrid[:size, :size]
    with DatasetWriter(out, n=n, size=size, channels=channels) as w:
        for i in range(n):
            img = rng.normal(60, 15, (size, size))
            mask = np.zeros((size, size), np.uint8)
            if label[i]:
                cy, cx, r = rng.integers(size // 4, 3 * size // 4, 2).tolist() + [max(2, size // 8)]
                mask = (((yy - cy) ** 2 + (xx - cx) ** 2) <= r * r).astype(np.uint8)
                img += 90 * mask
            if tube[i]:
                img[:, size // 8] += 120
            image = np.clip(img, 0, 255).astype(np.uint8)
            w.put(i, np.repeat(image[None], channels, 0), mask if masks else None)
        manifest = pa.table({
            "image_id": [f"img{i:04d}" for i in range(n)],
            "patient_id": [f"p{i:04d}" for i in range(n)],
            "split": split,
            "label": pa.array(label, pa.int8()),
            "has_mask": [bool(masks) and bool(label[i]) for i in range(n)],
            "source": ["tiny"] * n,
            "orig_height": pa.array([size] * n, pa.int32()),
            "orig_width": pa.array([size] * n, pa.int32()),
            # train_tubes=False: unknown on training images, as SIIM's tube labels are
            "chest_tube": pa.array([None if not train_tubes and s == "train" else int(t) for s, t in zip(split, tube, strict=True)],
                                   pa.int8()),
        })
        w.finish(manifest, spurious=["chest_tube"], info={"name": "tiny"}, settings={"seed": seed, "n": n},
                 inputs={})
    return out
