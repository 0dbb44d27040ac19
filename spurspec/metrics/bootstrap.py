"""Patient-level, label-stratified bootstrap of every metric at once, vectorised with numpy.
Each replicate draws, within each stratum (patients with any positive image / with none), as many
patients as the stratum holds, with replacement; an image's weight is its patient's draw count."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from spurspec.metrics.auroc import Ranked, weighted_auroc, weighted_average_precision
from spurspec.metrics.cells import SUBGROUPS, robust_mask, worst_subgroup

# Replicates drawn per block: fixed, so the draws of a seed do not depend on the data size or
# the machine.
BLOCK = 50
# Matrix cells (replicates x images or patients) evaluated, or drawn, at once: bounds the working
# arrays (a few of ~16 MiB) whatever the data size, so memory does not grow with the replicates.
# Chunking rows changes no value: every row is computed on its own, and drawing a block in row
# chunks continues the generator's stream exactly as one call does.
CELLS = 2**21


def patient_strata(patient: np.ndarray, label: np.ndarray, n_patients: int) -> np.ndarray:
    """1 for a patient with any positive image, else 0 (the label stratum of a patient)."""
    strata = np.zeros(n_patients, dtype=np.int8)
    np.maximum.at(strata, patient, (np.asarray(label) == 1).astype(np.int8))
    return strata


def patient_counts(strata: np.ndarray, n_boot: int, rng: np.random.Generator, block: int = BLOCK,
                   dtype: type = np.float64) -> Iterator[np.ndarray]:
    """Blocks of (b, n_patients) draw counts (as `dtype`: counts never exceed a stratum's size);
    each row keeps every stratum's patient total."""
    members = [np.flatnonzero(strata == s) for s in np.unique(strata)]
    done = 0
    while done < n_boot:
        b = min(block, n_boot - done)
        counts = np.zeros((b, len(strata)), dtype=dtype)
        for idx in members:
            n = len(idx)
            at_once = max(1, CELLS // max(n, 1))
            for r0 in range(0, b, at_once):
                r1 = min(b, r0 + at_once)
                draws = rng.integers(0, n, size=(r1 - r0, n), dtype=np.int64) + np.arange(r1 - r0)[:, None] * n
                counts[r0:r1, idx] = np.bincount(draws.ravel(), minlength=(r1 - r0) * n).reshape(r1 - r0, n)
        done += b
        yield counts


def percentile_interval(values: np.ndarray, confidence: float) -> tuple[float | None, float | None, int]:
    """Percentile interval over the replicates where the metric is defined, and how many were."""
    ok = values[~np.isnan(values)]
    if len(ok) == 0:
        return None, None, 0
    alpha = (1.0 - confidence) / 2.0
    lo, hi = np.quantile(ok, [alpha, 1.0 - alpha])
    return float(lo), float(hi), int(len(ok))


@dataclass
class Sample:
    """The evaluated images of one summarising function."""

    score: np.ndarray  # float64 (n,)
    label: np.ndarray  # int (n,) in {0, 1}
    patient: np.ndarray  # int (n,) patient index 0..P-1
    attributes: dict[str, np.ndarray] = field(default_factory=dict)  # name -> int (n,), -1 unknown

    @classmethod
    def from_ids(cls, score, label, patient_ids, attributes=None) -> Sample:
        _, patient = np.unique(np.asarray(patient_ids, dtype=object).astype(str), return_inverse=True)
        return cls(np.asarray(score, dtype=np.float64), np.asarray(label).astype(np.int64), patient, dict(attributes or {}))


def subsets(sample: Sample) -> dict[tuple[str, str | None], Ranked]:
    """The ranked subsets the AUROC metrics are computed on, keyed (metric, attribute); their
    columns are patients, so replicate weights are the patients' draw counts directly."""
    s, y, cols = sample.score, sample.label, sample.patient
    out = {("auroc", None): Ranked.build(s, y, columns=cols)}
    for name, a in sample.attributes.items():
        out[("robust_auroc", name)] = Ranked.build(s, y, np.flatnonzero(robust_mask(y, a)), cols)
        for v in SUBGROUPS:
            out[(f"auroc_attr{v}", name)] = Ranked.build(s, y, np.flatnonzero(a == v), cols)
    return out


def replicates(sample: Sample, n_boot: int, seed: int | np.random.SeedSequence,
               threshold: float | None = None) -> dict[tuple[str, str | None], np.ndarray]:
    """(n_boot,) replicate values of every metric, NaN where a replicate leaves it undefined."""
    rng = np.random.default_rng(seed)
    n_patients = int(sample.patient.max()) + 1 if len(sample.patient) else 0
    strata = patient_strata(sample.patient, sample.label, n_patients)
    ranked = subsets(sample)
    pos = sample.label == 1
    keys = list(ranked) + [("auprc", None)]
    if threshold is not None:
        called = sample.score >= threshold
        # Per patient: how many of their images are positives, true positives, negatives, true negatives.
        per_patient = np.stack([
            np.bincount(sample.patient, weights=m.astype(float), minlength=n_patients)
            for m in (pos, pos & called, ~pos, ~pos & ~called)
        ], axis=1)
        keys += [("sensitivity", None), ("specificity", None)]
    out = {k: np.empty(n_boot) for k in keys}
    step = max(1, CELLS // max(len(sample.score), n_patients, 1))
    done = 0
    for block in patient_counts(strata, n_boot, rng, dtype=np.uint32):
        # One byte a count where they fit (always, in practice): the rows the metrics gather
        # from at random then stay in the CPU caches, so time grows linearly with the images
        # (with float64 rows, 1M images took 14x the time of 100k); the values are the same.
        block = block.astype(np.uint8) if block.size and block.max() <= 255 else block
        for r0 in range(0, len(block), step):
            counts = block[r0 : r0 + step]
            rows = slice(done + r0, done + r0 + len(counts))
            for key, r in ranked.items():
                out[key][rows] = weighted_auroc(r, counts)
            out[("auprc", None)][rows] = weighted_average_precision(ranked[("auroc", None)], counts)
            if threshold is not None:
                # Sums of whole numbers: exact in float64, so chunking cannot change them.
                n_p, tp, n_n, tn = (counts.astype(np.float64) @ per_patient).T
                with np.errstate(invalid="ignore", divide="ignore"):
                    out[("sensitivity", None)][rows] = tp / np.where(n_p > 0, n_p, np.nan)
                    out[("specificity", None)][rows] = tn / np.where(n_n > 0, n_n, np.nan)
        done += len(block)
    add_worst(out, list(sample.attributes))
    return out


def add_worst(values: dict[tuple[str, str | None], np.ndarray], attributes: list[str]) -> None:
    """Worst-subgroup AUROC (spurspec.metrics.cells.worst_subgroup) per attribute over its
    subgroups, and over all attributes' subgroups."""
    every = []
    for a in attributes:
        pair = np.vstack([values[(f"auroc_attr{v}", a)] for v in SUBGROUPS])
        every.append(pair)
        values[("worst_subgroup_auroc", a)] = worst_subgroup(pair)
    if every:
        values[("worst_subgroup_auroc", None)] = worst_subgroup(np.vstack(every))
