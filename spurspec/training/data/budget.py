"""`--mask-budget`: which training images keep pixel (or box) supervision. A seeded choice among
the training positives that have a mask; negatives always train with all-zero targets; positives
without a kept mask leave pixel-level ERM (`unlabelled` lists them: Seg-SSL trains on them with
pseudo masks). The choice is written to RUN/mask_budget.parquet."""

from __future__ import annotations

import math

import numpy as np
import pyarrow as pa

from spurspec.errors import ConfigError, InputError


def resolve_count(budget: int | float | None, available: int) -> int:
    """An integer is a count, a float in (0, 1] a fraction of the available masks."""
    if budget is None:
        return available
    if isinstance(budget, float):
        if not 0 < budget <= 1:
            raise ConfigError(f"mask budget {budget}: a fraction must be in (0, 1]; give a whole number for a count")
        return max(1, math.floor(budget * available + 0.5))
    if budget < 0:
        raise ConfigError(f"mask budget {budget}: must be a count >= 0 or a fraction in (0, 1]")
    if budget > available:
        raise InputError(
            f"mask budget {budget} is larger than the {available} training positives with a mask in this dataset"
        )
    return budget


def choose(manifest: pa.Table, train_rows: np.ndarray, budget: int | float | None, seed: int) -> tuple[np.ndarray, pa.Table]:
    """Returns (training rows for pixel ERM, the mask-budget table over masked train positives)."""
    labels = np.asarray(manifest.column("label").to_numpy(zero_copy_only=False))
    has_mask = np.asarray(manifest.column("has_mask").to_numpy(zero_copy_only=False), dtype=bool)
    candidates = train_rows[(labels[train_rows] == 1) & has_mask[train_rows]]
    count = resolve_count(budget, len(candidates))
    rng = np.random.default_rng([seed, 11])
    kept = np.sort(rng.choice(candidates, size=count, replace=False)) if count < len(candidates) else candidates
    negatives = train_rows[labels[train_rows] == 0]
    rows = np.sort(np.concatenate([negatives, kept]))
    ids = manifest.column("image_id").to_pylist()
    table = pa.table({
        "row": pa.array(candidates.astype(np.int32)),
        "image_id": pa.array([ids[i] for i in candidates]),
        "label": pa.array(labels[candidates].astype(np.int8)),
        "kept": pa.array(np.isin(candidates, kept)),
    })
    return rows, table


def unlabelled(labels: np.ndarray, train_rows: np.ndarray, pixel_rows: np.ndarray) -> np.ndarray:
    """Training positives outside pixel training (beyond the budget, or without a mask), sorted:
    images whose label is known and whose mask is not."""
    positives = train_rows[np.asarray(labels)[train_rows] == 1]
    return np.setdiff1d(positives, pixel_rows)
