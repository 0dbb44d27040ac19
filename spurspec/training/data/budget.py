"""Training on fewer masks, two ways; either choice is written to RUN/mask_budget.parquet (every
training image whose mask the model would see, and whether it was kept).

`--mask-budget N|F` (spurspec's own, `choose`): a seeded choice of N masks (or a fraction F)
among the masks the model sees: the training positives' masks, and under a three-class head
(negatives' regions are a class of their own, the study's ISIC head) the negatives' masks too,
so a budget counts every mask the model learns from. Every other image stays: negatives without
a mask train with all-zero targets; images whose mask is not kept leave pixel-level ERM
(`unlabelled` lists the positives among them: Seg-SSL trains on those with pseudo masks).

`--train-fraction F` (the study's `sample_ratio`, `sample`): each training image, positive or
negative, kept with probability F after the negative subsampling; a kept image keeps its mask,
so the class balance is unchanged and there are fewer images, not fewer masks per image."""

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
            f"mask budget {budget} is larger than the {available} training masks this run could keep in this dataset"
        )
    return budget


def choose(manifest: pa.Table, train_rows: np.ndarray, budget: int | float | None, seed: int,
           negatives_masked: bool = False) -> tuple[np.ndarray, pa.Table]:
    """Returns (training rows for pixel ERM, the mask-budget table over the masks the model sees).
    `negatives_masked`: the negatives' masks are targets too (a three-class head), so they count
    against the budget like the positives'; a negative whose mask is not kept leaves pixel
    training (an all-background target would call its region background)."""
    labels, has_mask = _columns(manifest)
    train_rows = np.asarray(train_rows)
    seen = has_mask[train_rows] & ((labels[train_rows] == 1) | negatives_masked)
    candidates = train_rows[seen]
    count = resolve_count(budget, len(candidates))
    rng = np.random.default_rng([seed, 11])
    kept = np.sort(rng.choice(candidates, size=count, replace=False)) if count < len(candidates) else candidates
    free = train_rows[(labels[train_rows] == 0) & ~seen]  # negatives without a mask: all-zero targets
    return np.sort(np.concatenate([free, kept])), _table(manifest, labels, candidates, np.isin(candidates, kept))


def check_fraction(fraction: float | None) -> None:
    if fraction is not None and not 0 < fraction <= 1:
        raise ConfigError(f"train fraction {fraction}: must be in (0, 1] (the share of training images kept)")


def sample(manifest: pa.Table, train_rows: np.ndarray, fraction: float, seed: int,
           negatives_masked: bool = False) -> tuple[np.ndarray, pa.Table]:
    """The study's `sample_ratio`: each of `train_rows` (already negative-subsampled) kept with
    probability `fraction`, by a draw seeded by `seed` alone. Returns (kept rows, the table of the
    masks the model would see among `train_rows`, kept where their image is)."""
    check_fraction(fraction)
    labels, has_mask = _columns(manifest)
    train_rows = np.asarray(train_rows)
    keep = np.random.default_rng([seed, 17]).random(len(train_rows)) < fraction
    seen = has_mask[train_rows] & ((labels[train_rows] == 1) | negatives_masked)
    return train_rows[keep], _table(manifest, labels, train_rows[seen], keep[seen])


def _columns(manifest: pa.Table) -> tuple[np.ndarray, np.ndarray]:
    labels = np.asarray(manifest.column("label").to_numpy(zero_copy_only=False))
    return labels, np.asarray(manifest.column("has_mask").to_numpy(zero_copy_only=False), dtype=bool)


def _table(manifest: pa.Table, labels: np.ndarray, rows: np.ndarray, kept: np.ndarray) -> pa.Table:
    """mask_budget.parquet's rows (artefacts.schemas.MASK_BUDGET)."""
    ids = manifest.column("image_id").to_pylist()
    return pa.table({
        "row": pa.array(rows.astype(np.int32)),
        "image_id": pa.array([ids[i] for i in rows], pa.string()),
        "label": pa.array(labels[rows].astype(np.int8)),
        "kept": pa.array(np.asarray(kept, dtype=bool)),
    })


def unlabelled(labels: np.ndarray, train_rows: np.ndarray, pixel_rows: np.ndarray) -> np.ndarray:
    """Training positives outside pixel training (beyond the budget, or without a mask), sorted:
    images whose label is known and whose mask is not."""
    positives = train_rows[np.asarray(labels)[train_rows] == 1]
    return np.setdiff1d(positives, pixel_rows)
