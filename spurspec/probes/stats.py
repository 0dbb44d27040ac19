"""The numbers a probe reports, each with a patient-level bootstrap interval drawn as
spurspec.metrics.bootstrap draws them (patients redrawn within their label stratum; an image
weighs its patient's draw count). Paired, as spurspec.evaluation.paired pairs two models: the
scores before and after a change are the same images, so every replicate weighs both with the
same draws, and the interval of a difference is the spread of the replicate differences.

shift_rows: median score shift (after - before), flip rates at the validation threshold (up: of
the images called negative before, the share called positive after; down: the reverse) per image
set (all, positives, negatives), and AUROC before, after and their difference on all images.
mean_row: the mean of a per-image value (an attribution share, a pointing hit) with its interval.
Pure numpy; reads and writes nothing."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from spurspec.metrics import bootstrap
from spurspec.metrics.auroc import Ranked, weighted_auroc

# The image sets a shift is reported on, by label (None: every image).
IMAGE_SETS: dict[str, int | None] = {"all": None, "positives": 1, "negatives": 0}


@dataclass(frozen=True)
class Paired:
    """One set of images scored before and after a change."""

    before: np.ndarray  # float (n,)
    after: np.ndarray  # float (n,)
    label: np.ndarray  # int (n,) in {0, 1}
    patient: np.ndarray  # int (n,) patient index 0..P-1

    @classmethod
    def from_ids(cls, before, after, label, patient_ids) -> Paired:
        sample = bootstrap.Sample.from_ids(before, label, patient_ids)
        return cls(sample.score, np.asarray(after, dtype=np.float64), sample.label, sample.patient)


def weighted_median(sorted_values: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Per row of `weights` (b, n), the median of `sorted_values` (n,) ascending under those
    weights: halfway between the lowest value whose cumulative weight reaches half the total
    and the lowest that passes it (np.median at unit weights); NaN for a row of zero weight."""
    if weights.shape[1] == 0:
        return np.full(len(weights), np.nan)
    cum = np.cumsum(weights, axis=1)
    total = cum[:, -1]
    half = total[:, None] / 2
    lo = np.argmax(cum >= half, axis=1)
    hi = np.argmax(cum > half, axis=1)
    return np.where(total > 0, (sorted_values[lo] + sorted_values[hi]) / 2, np.nan)


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)


def _statistics(p: Paired, threshold: float | None) -> dict[tuple[str, str], Callable[[np.ndarray, np.ndarray], np.ndarray]]:
    """(image set, metric) -> f(image weights (b, n), patient weights (b, P)) -> (b,) values."""
    diff = p.after - p.before
    out: dict[tuple[str, str], Callable] = {}
    for name, label in IMAGE_SETS.items():
        members = np.ones(len(diff), bool) if label is None else p.label == label
        order = np.flatnonzero(members)[np.argsort(diff[members], kind="stable")]
        out[(name, "median_shift")] = lambda w, _, o=order: weighted_median(diff[o], w[:, o])
        if threshold is not None:
            below, above = p.before < threshold, p.after >= threshold
            up_of, up = members & below, members & below & above
            down_of, down = members & ~below, members & ~below & ~above
            out[(name, "flip_up")] = lambda w, _, a=up, b=up_of: _ratio(w @ a, w @ b)
            out[(name, "flip_down")] = lambda w, _, a=down, b=down_of: _ratio(w @ a, w @ b)
    ranked = [Ranked.build(s, p.label, columns=p.patient) for s in (p.before, p.after)]
    out[("all", "auroc_before")] = lambda _, c: weighted_auroc(ranked[0], c)
    out[("all", "auroc_after")] = lambda _, c: weighted_auroc(ranked[1], c)
    out[("all", "auroc_diff")] = lambda _, c: weighted_auroc(ranked[1], c) - weighted_auroc(ranked[0], c)
    return out


def _counts(p: Paired, threshold: float | None) -> dict[tuple[str, str], int]:
    """How many images each value is computed on (its denominator)."""
    out = {}
    for name, label in IMAGE_SETS.items():
        members = np.ones(len(p.before), bool) if label is None else p.label == label
        out[(name, "median_shift")] = int(members.sum())
        if threshold is not None:
            below = p.before < threshold
            out[(name, "flip_up")] = int((members & below).sum())
            out[(name, "flip_down")] = int((members & ~below).sum())
    for metric in ("auroc_before", "auroc_after", "auroc_diff"):
        out[("all", metric)] = len(p.before)
    return out


def _replicates(stats: dict, patient: np.ndarray, label: np.ndarray, n_boot: int,
                seed: np.random.SeedSequence) -> dict[tuple[str, str], np.ndarray]:
    """(n_boot,) replicate values of every statistic from one stream of patient draws."""
    n_patients = int(patient.max()) + 1 if len(patient) else 0
    strata = bootstrap.patient_strata(patient, label, n_patients)
    out = {k: np.empty(n_boot) for k in stats}
    done = 0
    for counts in bootstrap.patient_counts(strata, n_boot, np.random.default_rng(seed)):
        rows = slice(done, done + len(counts))
        weights = counts[:, patient]
        for key, f in stats.items():
            out[key][rows] = f(weights, counts)
        done += len(counts)
    return out


def shift_rows(p: Paired, threshold: float | None, n_boot: int, seed: np.random.SeedSequence,
               confidence: float, no_threshold: str = "no validation threshold") -> list[dict]:
    """Rows (images, metric, value, ci_low, ci_high, n_images, reason) of a paired change."""
    stats = _statistics(p, threshold)
    n = _counts(p, threshold)
    n_patients = int(p.patient.max()) + 1 if len(p.patient) else 0
    point = {k: float(f(np.ones((1, len(p.before))), np.ones((1, n_patients)))[0]) for k, f in stats.items()}
    reps = _replicates(stats, p.patient, p.label, n_boot, seed) if n_boot > 0 and len(p.before) else {}
    rows = []
    for key in stats:
        rows.append(_row(key, point[key], reps.get(key), n[key], confidence, n_boot))
    if threshold is None:
        rows += [{"images": name, "metric": m, "value": None, "ci_low": None, "ci_high": None, "n_images": 0,
                  "reason": no_threshold} for name in IMAGE_SETS for m in ("flip_up", "flip_down")]
    return rows


def _row(key: tuple[str, str], value: float, reps: np.ndarray | None, n: int, confidence: float, n_boot: int) -> dict:
    images, metric = key
    row = {"images": images, "metric": metric, "value": None, "ci_low": None, "ci_high": None, "n_images": n,
           "reason": None}
    if np.isnan(value):
        row["reason"] = "no images" if n == 0 else ("one class only" if metric.startswith("auroc") else "undefined")
        return row
    row["value"] = value
    if reps is not None:
        lo, hi, n_ok = bootstrap.percentile_interval(reps, confidence)
        row["ci_low"], row["ci_high"] = lo, hi
        if n_ok < n_boot:
            row["reason"] = f"interval from {n_ok} of {n_boot} replicates (the rest left it undefined)"
    return row


def mean_row(values: np.ndarray, label: np.ndarray, patient: np.ndarray, n_boot: int,
             seed: np.random.SeedSequence, confidence: float) -> dict:
    """The mean of per-image `values` (NaN ones left out and counted) with its interval."""
    values = np.asarray(values, dtype=np.float64)
    ok = ~np.isnan(values)
    dropped = int((~ok).sum())
    v, y, pt = values[ok], np.asarray(label)[ok], np.asarray(patient)[ok]
    if len(v) == 0:
        return {"value": None, "ci_low": None, "ci_high": None, "n_images": 0, "reason": "no images"}
    _, pt = np.unique(pt, return_inverse=True)
    stats = {("all", "mean"): lambda w, _: _ratio(w @ v, w.sum(axis=1))}
    reps = _replicates(stats, pt, y, n_boot, seed) if n_boot > 0 else {}
    row = _row(("all", "mean"), float(v.mean()), reps.get(("all", "mean")), len(v), confidence, n_boot)
    if dropped:
        note = f"{dropped} image(s) with an empty map left out"
        row["reason"] = f"{row['reason']}; {note}" if row["reason"] else note
    return {k: row[k] for k in ("value", "ci_low", "ci_high", "n_images", "reason")}
