"""Test helper for evaluate/report: a tiny dataset directory (written with DatasetWriter) with
spurious attributes, and prediction tables for it whose scores lean on an attribute."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa

from spurspec.artefacts.dataset import DatasetWriter


def write_dataset(out: Path, labels, attrs: dict[str, list], splits, patients=None, size: int = 8,
                  name: str = "siim") -> pa.Table:
    """Write a dataset with the given per-image labels/attributes/splits; return its manifest."""
    n = len(labels)
    ids = [f"img{i:04d}" for i in range(n)]
    patients = patients or [f"p{i:04d}" for i in range(n)]
    rng = np.random.default_rng(0)
    cols = {
        "image_id": ids, "patient_id": list(patients), "split": list(splits),
        "label": pa.array(labels, pa.int8()), "has_mask": [bool(v) for v in labels],
        "source": ["test"] * n, "orig_height": pa.array([size] * n, pa.int32()),
        "orig_width": pa.array([size] * n, pa.int32()),
    }
    for a, values in attrs.items():
        cols[a] = pa.array(values, pa.int8())
    with DatasetWriter(out, n=n, size=size, channels=1) as w:
        for i in range(n):
            mask = np.zeros((size, size), np.uint8)
            if labels[i]:
                mask[2:5, 2:5] = 1
            w.put(i, rng.integers(0, 255, (1, size, size), dtype=np.uint8), mask)
        w.finish(pa.table(cols), spurious=list(attrs), info={"name": name, "source": "test"},
                 settings={}, inputs={})
    return pa.table(cols)


def study_like(out: Path, n: int = 400, seed: int = 0, name: str = "siim") -> pa.Table:
    """A dataset where `chest_tube` goes with the label in most images (as in SIIM), plus an
    unrelated attribute `marker` with unknown (null) values; splits train/val/test."""
    rng = np.random.default_rng(seed)
    label = rng.integers(0, 2, n)
    tube = np.where(rng.random(n) < 0.75, label, 1 - label)
    marker = [None if rng.random() < 0.2 else int(rng.integers(0, 2)) for _ in range(n)]
    splits = rng.choice(["train", "val", "test"], size=n, p=[0.4, 0.3, 0.3])
    patients = [f"p{i // 2:04d}" for i in range(n)]  # two images per patient
    return write_dataset(out, label.tolist(), {"chest_tube": tube.tolist(), "marker": marker},
                         splits.tolist(), patients=patients, name=name)


def shortcut_scores(manifest: pa.Table, seed: int = 0, weight: float = 1.5) -> np.ndarray:
    """Scores that read the label a little and the tube a lot (robust AUROC below 0.5)."""
    rng = np.random.default_rng(seed)
    y = np.asarray(manifest.column("label").to_pylist(), dtype=float)
    tube = np.asarray([v or 0 for v in manifest.column("chest_tube").to_pylist()], dtype=float)
    return 0.3 * y + weight * tube + rng.normal(0, 0.5, len(y))


def fake_run(root: Path, dataset: Path, manifest: pa.Table, granularity: str, seed: int, shortcut: float,
             summaries=("image",), n_saliency: int = 3) -> Path:
    """A run directory as train + evaluate leave it, with made-up but well-formed predictions:
    config.toml, predictions.parquet, metrics.parquet (computed by the real evaluate), saliency.npz
    and the `done` marker of a finished training run."""
    import pyarrow.parquet as pq

    from spurspec.artefacts.run import write_saliency
    from spurspec.config import dumps_toml
    from spurspec.evaluation.evaluate import EvaluateConfig, evaluate

    root.mkdir(parents=True)
    (root / "config.toml").write_text(dumps_toml({"dataset": str(dataset), "granularity": granularity, "seed": seed, "model": "small"}))
    ids = manifest.column("image_id").to_pylist()
    parts = []
    for k, summary in enumerate(summaries):
        s = shortcut_scores(manifest, seed=seed * 10 + k, weight=shortcut * (1 + 0.3 * k))
        parts.append(pa.table({"image_id": ids, "split": manifest.column("split"), "summary": [summary] * len(ids),
                               "score": s, "granularity": [granularity] * len(ids)}))
    src = root.parent / f".{root.name}-preds.parquet"
    pq.write_table(pa.concat_tables(parts), src)
    evaluate(EvaluateConfig(predictions=src, dataset=dataset, out=root, bootstrap=100))
    rng = np.random.default_rng(seed)
    test = [i for i, sp in zip(ids, manifest.column("split").to_pylist(), strict=True) if sp == "test"][:n_saliency]
    write_saliency(root / "saliency.npz", {i: (rng.integers(0, 255, (8, 8), dtype=np.uint8), rng.random((8, 8)).astype(np.float32)) for i in test})
    (root / "done").write_text("")  # RunLayout.done: training finished (report counts finished runs)
    return root
