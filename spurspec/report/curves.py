"""The data behind the report's study figures, gathered from the headline rows and the runs'
datasets: robust AUROC against spatial specificity r (the study's coarse-mask sweep), against
the number of training masks (the annotation-budget sweep), per remedy arm by what it needs
(nothing, attribute labels, N masks), and, for ISIC, each artefact's overlap with the lesion.
Reads the runs' mask_budget.parquet and their datasets' manifests and masks.npy; writes nothing
(figures.py draws)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from spurspec.artefacts.dataset import Dataset
from spurspec.errors import SpurspecError
from spurspec.report.runs import group_key
from spurspec.training.data import budget
from spurspec.training.data import granularity as granularities
from spurspec.training.methods import METHODS, needs_kind


@dataclass
class Curve:
    """One line of a figure: x values with the mean and band of y over the runs at each x."""

    label: str
    x: list[float] = field(default_factory=list)
    mean: list[float] = field(default_factory=list)
    low: list[float] = field(default_factory=list)  # mean over runs of the 95% CI's lower bound
    high: list[float] = field(default_factory=list)
    points: list[tuple[float, float]] = field(default_factory=list)  # every run's (x, y)
    intervals: list[tuple[float | None, float | None]] = field(default_factory=list)  # each point's 95% CI

    @property
    def joined(self) -> bool:
        """Whether a line and band may join the x values: only with one measured between the ends
        (two points joined by a line imply a trend between them that nothing measured)."""
        return len(self.x) > 2


def _curve(label: str, items: list[tuple[float, float, float | None, float | None]]) -> Curve:
    """items: (x, value, ci_low, ci_high) of single runs -> a Curve averaged per x."""
    curve = Curve(label)
    for x in sorted({i[0] for i in items}):
        at = [i for i in items if i[0] == x]
        curve.x.append(x)
        curve.mean.append(float(np.mean([i[1] for i in at])))
        lows = [i[2] for i in at if i[2] is not None]
        highs = [i[3] for i in at if i[3] is not None]
        curve.low.append(float(np.mean(lows)) if lows else float("nan"))
        curve.high.append(float(np.mean(highs)) if highs else float("nan"))
        curve.points += [(x, i[1]) for i in at]
        curve.intervals += [(i[2], i[3]) for i in at]
    return curve


def specificity_curve(rows: list[dict], metric: str = "robust") -> Curve | None:
    """Robust AUROC against r for the ERM runs with every mask whose granularity has an r
    (binary r = 1, grid:K r = K², seg r = pixels; boxes have none). None below two r values."""
    items = []
    for r in rows:
        run = r["run"]
        if run.method != "erm" or run.budget != "all" or r[metric] is None:
            continue
        size = int(run.record.dataset_info.get("size", 0) or 0)
        spec = granularities.parse(run.granularity).specificity(size)
        if spec:
            items.append((float(spec), r[metric], r[f"{metric}_lo"], r[f"{metric}_hi"]))
    if len({i[0] for i in items}) < 2:
        return None
    return _curve("ERM", items)


def budget_curves(rows: list[dict], metric: str) -> tuple[list[Curve], float | None]:
    """Per (granularity, method) of pixel runs: `metric` against the number of training masks
    kept; and the mean of the binary ERM runs as the reference level. No curves below two
    budgets in any line."""
    lines: dict[str, list] = {}
    unfinished: dict[str, int] = {}  # per line, its runs scored before training finished
    binary = []
    for r in rows:
        run = r["run"]
        if r[metric] is None:
            continue
        if run.granularity == "binary" and run.method == "erm":
            if run.train_fraction is None:  # the reference: image labels on every training image
                binary.append(r[metric])
            continue
        kept = run.record.kept_masks()
        if kept is not None:
            label = f"{run.granularity} {run.method}" + (" (fewer images)" if run.train_fraction is not None else "")
            lines.setdefault(label, []).append((float(kept), r[metric], r[f"{metric}_lo"], r[f"{metric}_hi"]))
            unfinished[label] = unfinished.get(label, 0) + bool(run.mark)
    curves = [_curve(label + (f" ({unfinished[label]} unfinished)" if unfinished[label] else ""), items)
              for label, items in sorted(lines.items()) if len({i[0] for i in items}) >= 2]
    return curves, (float(np.mean(binary)) if binary else None)


# What a remedy arm pays for beyond image labels (methods.needs_kind), in the section's order.
NEED_ORDER = ("nothing", "attribute labels", "masks")


@dataclass
class RemedyArm:
    """One arm of the remedies comparison: a report group (granularity, method, mask budget),
    what it needs, how many training masks it was given, and its runs' headline rows."""

    group: str
    need: str  # a NEED_ORDER entry, or "unregistered method" for a method this spurspec lacks
    masks: int | None = None  # masks arms: training images whose mask it used
    rows: list[dict] = field(default_factory=list)
    label: str = ""  # how tables and figures name the arm, if not by its group (e.g. 'seg (1 unfinished)')

    @property
    def need_label(self) -> str:
        if self.need != "masks":
            return self.need
        return "masks" if self.masks is None else f"{self.masks:,} masks"


def shows_remedies(runs: list) -> bool:
    """A comparison of remedies, not a granularity sweep: several methods on the image-label
    granularity, or methods whose needs differ (e.g. ERM beside groupdro or seg-ssl)."""
    binary = {r.method for r in runs if r.granularity == "binary"}
    kinds = {needs_kind(r.method) if r.method in METHODS else r.method for r in runs}
    return len(binary) > 1 or len(kinds) > 1


def remedy_arms(rows: list[dict]) -> list[RemedyArm]:
    """The headline rows by arm, ordered by what the arm needs (nothing, attribute labels, then
    masks by their number) and then as the report orders groups."""
    arms: dict[str, RemedyArm] = {}
    for r in rows:
        run = r["run"]
        if run.group not in arms:
            pixel = granularities.is_pixel(run.granularity)
            need = needs_kind(run.method, pixel) if run.method in METHODS else "unregistered method"
            arms[run.group] = RemedyArm(run.group, need, _masks_given(run) if need == "masks" else None)
        arms[run.group].rows.append(r)
    rank = {need: k for k, need in enumerate(NEED_ORDER)}
    return sorted(arms.values(), key=lambda a: (rank.get(a.need, len(rank)), a.masks or 0, group_key(a.group)))


def _masks_given(run) -> int | None:
    """The training masks a run used: those its mask_budget.parquet kept, else its budget
    resolved against the masked training positives of its dataset (every one without a budget)."""
    kept = run.record.kept_masks()
    if kept is not None:
        return kept
    try:
        man = Dataset.open(run.dataset).manifest
        train = np.asarray(man.column("split").to_pylist()) == "train"
        positive = np.asarray(man.column("label").to_pylist()) == 1
        masked = np.asarray(man.column("has_mask").to_pylist(), dtype=bool)
        return budget.resolve_count(run.record.mask_budget, int((train & positive & masked).sum()))
    except (SpurspecError, OSError, ValueError):
        return None


def artefact_overlap(run, attributes: list[str], split: str = "test", share: float = 0.5) -> dict[str, tuple[float, int]]:
    """Per attribute: the fraction of its attribute-positive `split` images with a mask whose lesion
    box (the box around the mask at training size) covers more than `share` of the image, and
    how many such images there are. A lesion box that fills the image leaves no room for an
    artefact beside it, so the artefact overlaps the lesion (the study's explanation of why
    hair and gel bubbles were hardest)."""
    try:
        ds = Dataset.open(run.dataset)
        masks = ds.masks()
    except (SpurspecError, OSError, ValueError):
        return {}
    man = ds.manifest
    in_split = np.asarray(man.column("split").to_pylist()) == split
    has_mask = np.asarray(man.column("has_mask").to_pylist(), dtype=bool)
    big = np.zeros(man.num_rows, dtype=bool)
    for i in np.flatnonzero(in_split & has_mask):
        ys, xs = np.nonzero(masks[i])
        if len(ys):
            area = (ys.max() - ys.min() + 1) * (xs.max() - xs.min() + 1)
            big[i] = area > share * masks[i].size
    out = {}
    for a in attributes:
        if a not in man.column_names:
            continue
        positive = np.asarray(man.column(a).fill_null(0).to_pylist()) == 1
        pool = in_split & has_mask & positive
        out[a] = (float(big[pool].mean()) if pool.any() else float("nan"), int(pool.sum()))
    return out
