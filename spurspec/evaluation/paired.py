"""Paired comparisons of two models scored on the same test images: the difference of every
AUROC-family metric (overall, robust, per subgroup, worst subgroup, AUPRC) with a paired
patient-level bootstrap interval and a two-sided p-value, and DeLong's test for plain AUROC.

Paired means one set of resamples for both models: `bootstrap.replicates` draws patient counts
from a generator seeded only by `seed` and the patients' label strata, which two aligned samples
share, so replicate k of model A and replicate k of model B weigh the same patients. A p-value
prints through `format_p`, for the terminal and the report alike. Reads run records (predictions
and the dataset manifest); writes nothing."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pyarrow.compute as pc

from spurspec.artefacts.dataset import Dataset
from spurspec.artefacts.run import RunRecord
from spurspec.errors import ConfigError
from spurspec.metrics import bootstrap
from spurspec.metrics.auroc import weighted_auroc, weighted_average_precision
from spurspec.training.models import summaries

# Metrics a paired comparison covers: those defined by ranking alone (thresholds differ per model).
PAIRED_METRICS = ("auroc", "auprc", "robust_auroc", "auroc_attr0", "auroc_attr1", "worst_subgroup_auroc")


@dataclass
class Scored:
    """One model's scores on a split, aligned by image_id with everything a metric needs."""

    image_ids: np.ndarray  # sorted
    sample: bootstrap.Sample


@dataclass(frozen=True)
class Difference:
    metric: str
    attribute: str | None
    a: float | None  # the reference model's value
    b: float | None
    diff: float | None  # b - a
    ci_low: float | None
    ci_high: float | None
    p_value: float | None  # two-sided, from the paired bootstrap
    n_boot: int  # replicates where both were defined


def headline_summary(record: RunRecord, wanted: str = summaries.DEFAULT) -> str:
    """The summarising function a run is compared by: `wanted`, or a binary model's image score."""
    present = set(record.predictions(["summary"]).column("summary").to_pylist())
    if wanted in present:
        return wanted
    if present == {summaries.IMAGE_SCORE}:
        return summaries.IMAGE_SCORE
    raise ConfigError(f"{record.root}: summarising function {wanted!r} was not scored; scored: {', '.join(sorted(present))}")


def scored(record: RunRecord, summary: str, split: str = "test") -> Scored:
    """A run's `split` scores under `summary`, joined to its dataset's labels, patients and
    spurious attributes (-1 where unknown), sorted by image_id."""
    preds = record.predictions(["image_id", "split", "summary", "score"])
    preds = preds.filter(pc.and_(pc.equal(preds.column("split"), split), pc.equal(preds.column("summary"), summary)))
    ds = Dataset.open(record.dataset)
    cols = ["image_id", "label", "patient_id", *ds.spurious]
    table = preds.join(ds.manifest.select(cols), "image_id").sort_by("image_id")
    attrs = {a: np.asarray(table.column(a).fill_null(-1).to_numpy(zero_copy_only=False), dtype=np.int64)
             for a in ds.spurious}
    sample = bootstrap.Sample.from_ids(table.column("score").to_numpy(), table.column("label").to_numpy(),
                                       table.column("patient_id").to_numpy(zero_copy_only=False), attrs)
    return Scored(np.asarray(table.column("image_id").to_pylist()), sample)


def check_same_images(a: Scored, b: Scored, where: str) -> None:
    """Paired differences need the same test images with the same labels and patients."""
    same = (len(a.image_ids) == len(b.image_ids) and np.array_equal(a.image_ids, b.image_ids)
            and np.array_equal(a.sample.label, b.sample.label) and np.array_equal(a.sample.patient, b.sample.patient))
    if not same:
        only_a = sorted(set(a.image_ids) - set(b.image_ids))[:3]
        only_b = sorted(set(b.image_ids) - set(a.image_ids))[:3]
        raise ConfigError(f"{where}: the runs were not scored on the same test images (only in the first: "
                          f"{', '.join(only_a) or 'none'}; only in the second: {', '.join(only_b) or 'none'}); "
                          "a paired comparison needs the same test set")


def point_values(sample: bootstrap.Sample) -> dict[tuple[str, str | None], float]:
    """Every paired metric at unit weights (NaN where undefined). With one spurious attribute
    the worst subgroup over all attributes is that attribute's worst subgroup, the same subgroups
    and the same number: it is left out rather than compared twice under two names."""
    ones = np.ones((1, int(sample.patient.max()) + 1 if len(sample.patient) else 0))
    ranked = bootstrap.subsets(sample)
    values = {key: weighted_auroc(r, ones) for key, r in ranked.items()}
    values[("auprc", None)] = weighted_average_precision(ranked[("auroc", None)], ones)
    bootstrap.add_worst(values, list(sample.attributes))
    if len(sample.attributes) == 1:
        del values[("worst_subgroup_auroc", None)]
    return {k: float(v[0]) for k, v in values.items()}


def differences(a: Scored, b: Scored, n_boot: int = 1000, seed: int = 0,
                confidence: float = 0.95) -> list[Difference]:
    """b - a for every paired metric, with the paired bootstrap interval and p-value."""
    check_same_images(a, b, "compare")
    pa_, pb = point_values(a.sample), point_values(b.sample)
    ra = bootstrap.replicates(a.sample, n_boot, seed) if n_boot > 0 else {}
    rb = bootstrap.replicates(b.sample, n_boot, seed) if n_boot > 0 else {}
    out = []
    for key in sorted(pa_, key=lambda k: (PAIRED_METRICS.index(k[0]), k[1] or "")):
        va, vb = _defined(pa_[key]), _defined(pb[key])
        diff = None if va is None or vb is None else vb - va
        lo = hi = p = None
        n_ok = 0
        if diff is not None and key in ra:
            d = rb[key] - ra[key]
            d = d[~np.isnan(d)]
            n_ok = len(d)
            if n_ok:
                alpha = (1 - confidence) / 2
                lo, hi = (float(x) for x in np.quantile(d, [alpha, 1 - alpha]))
                p = float(min(1.0, 2 * min(np.mean(d <= 0), np.mean(d >= 0))))
        out.append(Difference(key[0], key[1], va, vb, diff, lo, hi, p, n_ok))
    return out


def p_floor(n_boot: int) -> float:
    """The smallest p a paired bootstrap of `n_boot` replicates can tell from 0: its two-sided p is
    2 x the share of replicates on the far side of 0, so it moves in steps of 2 / n_boot and a p
    of 0 (no replicate crossed 0) means below 2 / n_boot, not zero."""
    return min(1.0, 2 / n_boot)


def format_p(p: float | None, n_boot: int | None = None) -> str:
    """A p-value for people: two significant digits ("0.066", "0.5"); a bootstrap p below its
    resolution as "< 2/B" (`p_floor`: "< 0.002" for 1,000 replicates); "—" where undefined.
    Without `n_boot` (DeLong's p, from a formula) a tiny p keeps its digits ("3.1e-12")."""
    if p is None or math.isnan(p):
        return "—"
    if n_boot and p < p_floor(n_boot):
        digits = 1 - math.floor(math.log10(p_floor(n_boot)))  # two significant, rounded up: never claims more
        return f"< {math.ceil(round(p_floor(n_boot) * 10**digits, 6)) / 10**digits:g}"
    text = f"{p:.2g}"
    return text if any(c in text for c in ".e") else f"{text}.0"


def _defined(v: float) -> float | None:
    return None if math.isnan(v) else v


def delong(score_a: np.ndarray, score_b: np.ndarray, label: np.ndarray) -> tuple[float, float, float]:
    """DeLong's test for two correlated AUROCs on the same images (DeLong et al. 1988, with the
    midrank structural components of Sun & Xu 2014): (AUROC b - AUROC a, its standard error,
    two-sided p). Image-level: it ignores patient clustering, so use it as a fast check beside
    the patient bootstrap."""
    label = np.asarray(label) == 1
    m, n = int(label.sum()), int((~label).sum())
    if m < 2 or n < 2:
        raise ConfigError("DeLong's test needs at least two positive and two negative images")
    v10, v01, auc = [], [], []
    for s in (np.asarray(score_a, float), np.asarray(score_b, float)):
        pos, neg = s[label], s[~label]
        # Structural components, in image order so the two models' components pair up: per
        # positive, the share of negatives below it; per negative, the share of positives above
        # it (ties count half).
        neg_sorted, pos_sorted = np.sort(neg), np.sort(pos)
        below = (np.searchsorted(neg_sorted, pos, "left") + np.searchsorted(neg_sorted, pos, "right")) / 2.0 / n
        above = (m - (np.searchsorted(pos_sorted, neg, "left") + np.searchsorted(pos_sorted, neg, "right")) / 2.0) / m
        v10.append(below)
        v01.append(above)
        auc.append(below.mean())
    s10, s01 = np.cov(np.vstack(v10)), np.cov(np.vstack(v01))
    var = (s10[0, 0] + s10[1, 1] - 2 * s10[0, 1]) / m + (s01[0, 0] + s01[1, 1] - 2 * s01[0, 1]) / n
    diff = float(auc[1] - auc[0])
    se = float(math.sqrt(max(var, 0.0)))
    p = 1.0 if se == 0 else float(math.erfc(abs(diff) / se / math.sqrt(2)))
    return diff, se, p
