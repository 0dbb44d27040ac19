"""The report's figures, drawn with matplotlib's Agg backend (no display) and saved as PNG:
the headline (robust vs overall AUROC by granularity), ROC curves of the robust cells, robust
AUROC by summarising function, saliency panels (where each model looks), the remedies by what
they need, and the reliance probes' score shifts and evidence mass."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from spurspec.artefacts import io  # noqa: E402

_PNG_META = {"Software": None}  # no version string in the file: same inputs, same bytes



def tick(group: str) -> str:
    """A group as an axis label: an audited model's `audit:NAME` on two lines, so long names fit."""
    return group.replace("audit:", "audit:\n", 1) if group.startswith("audit:") else group

def _save(fig, path: Path) -> None:
    with io.atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight", metadata=_PNG_META)
    plt.close(fig)


def _legend_below(ax, ncol: int = 2) -> None:
    """The legend under the axes, never over the data."""
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.18), ncol=ncol, frameon=False)


def headline(path: Path, rows: list[dict], groups: list[str], reference: dict[str, float], attribute: str,
             study_metric: str = "robust", labels: list[str] | None = None) -> None:
    """Per group: each run's overall and robust AUROC with its 95% CI, the mean over runs as a
    bar, the study's published robust AUROC as a hollow star beside the metric the study meant
    by it (`study_metric`: robust cells, or overall AUROC on ISIC's trap test set), chance at 0.5.
    `labels`: the groups as the axis names them (marked where they count unfinished runs).
    No title: the report's caption is the figure's one title."""
    fig, ax = plt.subplots(figsize=(max(5.0, 1.4 * len(groups) + 2), 4.4))
    x = np.arange(len(groups))
    overall = "trap-test AUROC (the study's robust AUROC)" if study_metric == "overall" else "overall AUROC"
    for k, (metric, color, label) in enumerate((("overall", "#4c72b0", overall),
                                                 ("robust", "#dd5143", f"robust AUROC ({attribute})"))):
        offset = -0.18 if k == 0 else 0.18
        means = []
        for gi, g in enumerate(groups):
            runs = [r for r in rows if r["group"] == g and r[metric] is not None]
            means.append(np.mean([r[metric] for r in runs]) if runs else np.nan)
            for j, r in enumerate(runs):
                jitter = (j - (len(runs) - 1) / 2) * 0.05
                lo, hi = r[f"{metric}_lo"], r[f"{metric}_hi"]
                err = None if lo is None else [[r[metric] - lo], [hi - r[metric]]]
                ax.errorbar(gi + offset + jitter, r[metric], yerr=err, fmt="o", color=color, ms=4, capsize=3, lw=1)
        ax.bar(x + offset, means, width=0.34, color=color, alpha=0.3, label=label)
    ref = [(i, reference[g]) for i, g in enumerate(groups) if g in reference]
    if ref:
        shift = -0.18 if study_metric == "overall" else 0.18
        ax.scatter([i + shift for i, _ in ref], [v for _, v in ref], marker="*", s=160, facecolors="none",
                   edgecolors="black", label="the study's robust AUROC (reference)", zorder=5)
    ax.set_xticks(x, labels or [tick(g) for g in groups])
    _fit_auroc(ax, [*(r[k] for r in rows for m in ("overall", "robust") for k in (m, f"{m}_lo", f"{m}_hi")),
                    *(v for _, v in ref)], bars=True)
    _chance(ax)
    ax.set_xlabel("spatial specificity of the supervision")
    ax.set_ylabel("AUROC (test, 95% patient-bootstrap CI)")
    _legend_below(ax, ncol=3 if ref else 2)
    _save(fig, path)


def roc_curves(path: Path, curves: list[tuple[str, np.ndarray, np.ndarray, float | None]], attribute: str) -> None:
    fig, ax = plt.subplots(figsize=(5.0, 5.0))
    for label, fpr, tpr, auc in curves:
        ax.plot(fpr, tpr, lw=1.5, label=f"{label} (AUROC {'n/a' if auc is None else f'{auc:.2f}'})")
    ax.plot([0, 1], [0, 1], color="grey", ls="--", lw=1)
    ax.text(0.98, 0.93, "chance", color="grey", fontsize=7, ha="right", rotation=45, rotation_mode="anchor",
            transform=ax.transAxes)
    ax.set_xlabel("false positive rate")
    ax.set_ylabel("true positive rate")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    _legend_below(ax)
    _save(fig, path)


def summary_order(names: list[str]) -> list[str]:
    """Summarising functions in their natural order: max (the top pixel), top-k by k, mean (all)."""
    def key(name: str) -> tuple[int, float]:
        if name == "max":
            return (0, 0.0)
        if name.startswith("topk:"):
            return (1, float(name.split(":", 1)[1]))
        return (2, 0.0) if name == "mean" else (3, 0.0)

    return sorted(names, key=key)


def by_summary(path: Path, data: dict[str, dict[str, list[tuple[float, float | None, float | None]]]],
               summaries: list[str], attribute: str) -> None:
    """Robust AUROC per summarising function: every run as a dot with its 95% CI, groups side by
    side; categories are not joined by lines (they are not a continuum)."""
    order = summary_order(summaries)
    fig, ax = plt.subplots(figsize=(max(5.0, 0.9 * len(order) + 2), 4.4))
    x = np.arange(len(order))
    width = 0.7 / max(len(data), 1)
    for k, (group, per) in enumerate(data.items()):
        offset = (k - (len(data) - 1) / 2) * width
        label = group  # on the group's first dot only, so the legend has one entry per group
        for i, name in enumerate(order):
            runs = per.get(name, [])
            for j, (value, lo, hi) in enumerate(runs):
                err = None if lo is None else [[value - lo], [hi - value]]
                jitter = (j - (len(runs) - 1) / 2) * width / max(len(runs), 2)
                ax.errorbar(i + offset + jitter, value, yerr=err, fmt="o", color=f"C{k}", ms=4, capsize=2, lw=1,
                            label=label)
                label = None
    ax.set_xticks(x, order)
    _fit_auroc(ax, [v for per in data.values() for runs in per.values() for run in runs for v in run])
    _chance(ax)
    ax.set_xlabel("summarising function (pixel map -> image score), from the top pixel to every pixel")
    ax.set_ylabel(f"robust AUROC ({attribute}), 95% CI")
    _legend_below(ax, ncol=min(4, max(len(data), 1)))
    _save(fig, path)


@dataclass
class MapPanel:
    """One image of the saliency figure: the image, a model's map over it (S, S) in [0, 1], the
    image's robust cell (label, attribute value) or None, and the outlines where known."""

    image_id: str
    image: np.ndarray  # (S, S) or (C, S, S) uint8
    heat: np.ndarray
    cell: tuple[int, int] | None = None
    mask: np.ndarray | None = None  # the abnormality
    region: np.ndarray | None = None  # the spurious feature, where the dataset stores it


@dataclass
class MapRow:
    """One model's row: its name, what its maps are (a MAP_SCALES key) and its images."""

    label: str
    kind: str
    panels: list[MapPanel] = field(default_factory=list)


# Each map kind's colour map and the words on its colour bar: a pixel model's probability is one
# fixed scale for every image; an attribution is relative, each image scaled to its own top.
MAP_SCALES = {
    "probability": ("magma", "P(positive region)\n(fixed 0-1 scale)"),
    "integrated_gradients": ("viridis", "integrated gradients,\nnormalised per image"),
    "gradcam": ("viridis", "Grad-CAM,\nnormalised per image"),
}
CELL_COLORS = {1: "#c0392b", 0: "#2c5d99"}  # by label: a robust cell's title
ABNORMALITY_COLOR, REGION_COLOR = "#00e5ff", "#ff2bd6"
_MAP_FONT = 11  # points; the smallest words are 1 pt less: 15 px at the report's 110 dpi, 11 px at 700 px


def cell_words(cell: tuple[int, int] | None, attribute: str) -> str:
    """A robust cell in words: 'positive, chest tube absent', 'negative, chest tube present'."""
    if cell is None:
        return ""
    feature = attribute.replace("_", " ")
    return f"{'positive' if cell[0] else 'negative'}, {feature} {'present' if cell[1] else 'absent'}"


def _overlay(heat: np.ndarray, cmap) -> np.ndarray:
    """RGBA of a [0, 1] map whose opacity grows with its value, so the image shows where it is low."""
    rgba = cmap(np.clip(heat, 0.0, 1.0))
    rgba[..., 3] = 0.85 * np.clip(heat, 0.0, 1.0) ** 0.8
    return rgba


def _map_panel(ax, panel: MapPanel, cmap) -> None:
    img = panel.image if panel.image.ndim == 2 else (
        panel.image[0] if panel.image.shape[0] == 1 else np.moveaxis(panel.image, 0, -1))
    ax.imshow(img, cmap="gray" if img.ndim == 2 else None)
    extent = (-0.5, img.shape[1] - 0.5, img.shape[0] - 0.5, -0.5)
    ax.imshow(_overlay(np.asarray(panel.heat, dtype=float), cmap), extent=extent)
    outlines(ax, panel.mask, panel.region)


def outlines(ax, abnormality: np.ndarray | None, region: np.ndarray | None) -> None:
    """The abnormality outlined in solid cyan and the spurious feature's region in dashed magenta.
    Every figure that outlines them (the maps, the example images) draws them here."""
    for outline, color, style in ((abnormality, ABNORMALITY_COLOR, "solid"), (_around(region), REGION_COLOR, "dashed")):
        if outline is not None and np.asarray(outline).any():
            h, w = np.shape(outline)
            ax.contour(np.asarray(outline, dtype=float), levels=[0.5], colors=color, linewidths=1.2,
                       linestyles=style, extent=(-0.5, w - 0.5, h - 0.5, -0.5), origin="upper")


def _around(region: np.ndarray | None) -> np.ndarray | None:
    """The region grown by 2 px per 64, so its outline lies around the feature, not on it: a stroke
    a few pixels wide would hide the pixels under the line."""
    if region is None or not np.asarray(region).any():
        return None
    from scipy.ndimage import binary_dilation

    return binary_dilation(np.asarray(region, bool), iterations=max(1, round(2 * np.shape(region)[0] / 64)))


def saliency(path: Path, rows: list[MapRow], attribute: str) -> None:
    """One row per model, one column per test image: the image in grey, the model's map over it
    with its row's colour bar (MAP_SCALES), the abnormality and the spurious feature's region
    outlined. When every row shows the same images, each robust cell is named in words once
    over its columns and each image by its id; otherwise every image has both."""
    from matplotlib import colormaps
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize

    ncol = max(len(r.panels) for r in rows)
    same = all([p.image_id for p in r.panels] == [p.image_id for p in rows[0].panels] for r in rows)
    fig, axes = plt.subplots(len(rows), ncol, figsize=(1.75 * ncol + 2.2, 1.95 * len(rows) + 0.4), squeeze=False)
    for k, row in enumerate(rows):
        name, bar_label = MAP_SCALES.get(row.kind, ("viridis", row.kind))
        for col, ax in enumerate(axes[k]):
            ax.set_xticks([])
            ax.set_yticks([])
            if col >= len(row.panels):
                ax.axis("off")
                continue
            panel = row.panels[col]
            _map_panel(ax, panel, colormaps[name])
            if k == 0 or not same:
                words = "" if same else cell_words(panel.cell, attribute) + "\n"
                ax.set_title(words + panel.image_id, fontsize=_MAP_FONT - 1, color=_cell_color(panel.cell))
        axes[k][0].set_ylabel(row.label, fontsize=_MAP_FONT)
        bar = fig.colorbar(ScalarMappable(Normalize(0, 1), colormaps[name]), ax=list(axes[k]), fraction=0.04, pad=0.02)
        bar.set_label(bar_label, fontsize=_MAP_FONT - 1)
        bar.ax.tick_params(labelsize=_MAP_FONT - 1)
    if same:
        _cell_headers(fig, axes[0], rows[0].panels, attribute)
    _outline_legend(fig, axes, [p for r in rows for p in r.panels], attribute)
    _save(fig, path)


def _cell_color(cell: tuple[int, int] | None) -> str:
    return CELL_COLORS.get(cell[0], "black") if cell else "black"


def _cell_headers(fig, top_axes, panels: list[MapPanel], attribute: str) -> None:
    """Each run of consecutive columns of one robust cell named once, in words, above them."""
    start = 0
    for end in range(1, len(panels) + 1):
        if end < len(panels) and panels[end].cell == panels[start].cell:
            continue
        left, right = top_axes[start].get_position(), top_axes[end - 1].get_position()
        fig.text((left.x0 + right.x1) / 2, left.y1 + 0.045, cell_words(panels[start].cell, attribute),
                 ha="center", va="bottom", fontsize=_MAP_FONT + 1, fontweight="bold",
                 color=_cell_color(panels[start].cell))
        start = end


def _outline_legend(fig, axes, panels: list[MapPanel], attribute: str) -> None:
    """What each outline marks, under the images, for the outlines the figure draws."""
    from matplotlib.lines import Line2D

    handles = [Line2D([], [], color=color, lw=1.5, ls=style, label=label) for shown, color, style, label in (
        (any(p.mask is not None and p.mask.any() for p in panels), ABNORMALITY_COLOR, "-", "abnormality (its mask)"),
        (any(p.region is not None and p.region.any() for p in panels), REGION_COLOR, "--",
         f"{attribute.replace('_', ' ')} (around the region the data stores)")) if shown]
    if handles:
        left, right = axes[-1][0].get_position(), axes[-1][-1].get_position()
        fig.legend(handles=handles, loc="upper center", ncol=2, fontsize=_MAP_FONT - 1, frameon=False,
                   bbox_to_anchor=((left.x0 + right.x1) / 2, left.y0 - 0.01))


def _band(ax, curve, color) -> None:
    """A curve's mean line, its band (mean of the runs' 95% CIs) and every run as a dot."""
    x = np.asarray(curve.x)
    ax.fill_between(x, curve.low, curve.high, color=color, alpha=0.18, lw=0)
    ax.plot(x, curve.mean, marker="o", color=color, lw=1.6, label=curve.label)
    if curve.points:
        px, py = zip(*curve.points, strict=True)
        ax.scatter(px, py, s=10, color=color, alpha=0.6, zorder=3)


def _run_points(ax, curve, color) -> None:
    """Each run of a curve as a marker with its 95% CI, runs at one x spread a little (log x),
    nothing drawn between the x values."""
    label = curve.label  # one legend entry per curve
    for x in curve.x:
        at = [(y, ci) for (px, y), ci in zip(curve.points, curve.intervals, strict=True) if px == x]
        for j, (y, (lo, hi)) in enumerate(at):
            spread = x * 2 ** ((j - (len(at) - 1) / 2) * 0.12)
            err = None if lo is None or hi is None else [[max(0.0, y - lo)], [max(0.0, hi - y)]]
            ax.errorbar(spread, y, yerr=err, fmt="o", color=color, ms=5, capsize=3, lw=1.2, label=label)
            label = None


def _curve_values(curves) -> list[float]:
    """Every value a curve figure shows: runs, means and interval ends."""
    return [v for c in curves for v in (*c.mean, *c.low, *c.high, *(y for _, y in c.points),
                                         *(e for ci in c.intervals for e in ci))]


def _log_ticks(ax, curves, base: float = 10) -> None:
    """A log x axis labelled at the data's own x values, as plain integers."""
    from matplotlib.ticker import NullLocator

    xs = sorted({x for c in curves for x in c.x})
    ax.set_xscale("log", base=base)
    ax.xaxis.set_minor_locator(NullLocator())
    ax.set_xticks(xs, [f"{x:,.0f}" for x in xs])


def _fit_auroc(ax, values, bars: bool = False) -> None:
    """An AUROC axis that fits what the figure shows (`values`: points and interval ends) and
    chance (0.5) with a margin, instead of the whole 0-1: points in 0.94-1.0 stay apart. With
    `bars` the axis starts at 0: a bar's height is read from its base."""
    shown = [float(v) for v in values if v is not None and np.isfinite(v)] + [0.5] + ([0.0] if bars else [])
    low, high = min(shown), max(shown)
    pad = max(0.02, 0.06 * (high - low))
    ax.set_ylim(0.0 if bars else max(-0.03, low - pad), min(1.03, high + pad))


def _chance(ax, robust: bool = True) -> None:
    """The 0.5 line; on a robust metric, below it a model ranks by the spurious feature."""
    ax.axhline(0.5, color="grey", ls="--", lw=1)
    note = " chance; below = reads the spurious feature" if robust else " chance"
    ax.text(0.01, 0.5, note, fontsize=7, color="grey", va="bottom",
            transform=ax.get_yaxis_transform(), bbox={"facecolor": "white", "edgecolor": "none", "alpha": 0.7, "pad": 1})


def specificity(path: Path, curve, attribute: str, ylabel: str) -> None:
    """The study's coarse-mask figure: robust AUROC against r (log scale); a line and band only
    where runs at an r between the ends were trained (curves.Curve.joined), else each run with
    its 95% CI."""
    fig, ax = plt.subplots(figsize=(5.6, 3.9))
    (_band if curve.joined else _run_points)(ax, curve, "#dd5143")
    _log_ticks(ax, [curve], base=2)
    _fit_auroc(ax, _curve_values([curve]))
    _chance(ax)
    ax.set_xlabel("spatial specificity r (regions labelled; 1 = image label, pixels = mask)")
    ax.set_ylabel(ylabel)
    _save(fig, path)


def budgets(path: Path, panels: list[tuple[str, list, float | None]]) -> None:
    """One panel per metric: a line per (granularity, method) against the number of training
    masks, with bands, and the image-label model's level as a dotted reference line."""
    colors = ["#dd5143", "#4c72b0", "#55a868", "#8172b2", "#ccb974", "#64b5cd"]
    fig, axes = plt.subplots(1, len(panels), figsize=(5.2 * len(panels), 3.9), squeeze=False)
    for ax, (ylabel, curves, binary) in zip(axes[0], panels, strict=True):
        for k, curve in enumerate(curves):
            _band(ax, curve, colors[k % len(colors)])
        if binary is not None:
            ax.axhline(binary, color="black", ls=":", lw=1.2, label="image labels (binary ERM)")
        _log_ticks(ax, curves)
        _fit_auroc(ax, [*_curve_values(curves), binary])
        _chance(ax, robust=not ylabel.startswith("overall"))
        ax.set_xlabel("training images with a mask")
        ax.set_ylabel(ylabel)
        _legend_below(ax)
    _save(fig, path)


def _dots(ax, gi: int, points: list[dict], key: str, color: str) -> None:
    """A group's runs as dots with their 95% CI, side by side."""
    for j, p in enumerate(points):
        jitter = (j - (len(points) - 1) / 2) * 0.08
        lo, hi = p[f"{key}_lo"], p[f"{key}_hi"]
        err = None if lo is None else [[max(0.0, p[key] - lo)], [max(0.0, hi - p[key])]]
        ax.errorbar(gi + jitter, p[key], yerr=err, fmt="o", color=color, ms=4, capsize=3, lw=1)


NEED_COLORS = {"nothing": "#4c72b0", "attribute labels": "#8172b2", "masks": "#55a868"}


def remedies(path: Path, arms: list, deltas: dict[str, list[dict]], reference: float | None, key: str,
             ylabel: str) -> None:
    """Two panels over one row of arms, blocks of arms labelled by what they need. Top: each
    run's `key` with its 95% CI, the mean over runs as a bar, the binary ERM mean as a dotted
    reference line and chance; bottom: each replicate's paired difference to binary ERM with its
    95% CI, the mean as a bar, zero marked. `arms`: RemedyArm-like (group, need, need_label, rows)."""
    fig, (top, bottom) = plt.subplots(2, 1, sharex=True, figsize=(max(6.0, 1.0 * len(arms) + 2.5), 7.0),
                                      gridspec_kw={"height_ratios": [3, 2]})
    x = np.arange(len(arms))
    for gi, arm in enumerate(arms):
        color = NEED_COLORS.get(arm.need, "grey")
        runs = [r for r in arm.rows if r[key] is not None]
        _dots(top, gi, runs, key, color)
        top.bar(gi, np.mean([r[key] for r in runs]) if runs else np.nan, width=0.6, color=color, alpha=0.3)
        diffs = [{"d": r["diff"], "d_lo": r["ci_low"], "d_hi": r["ci_high"]} for r in deltas.get(arm.group, [])]
        _dots(bottom, gi, diffs, "d", color)
        bottom.bar(gi, np.mean([d["d"] for d in diffs]) if diffs else np.nan, width=0.6, color=color, alpha=0.3)
        if arm.group == "binary":
            bottom.text(gi, 0, "reference", ha="center", va="bottom", fontsize=7, color="grey")
    if reference is not None:
        top.axhline(reference, color="black", ls=":", lw=1.2, label="image labels (binary ERM), mean")
        # Beside the axes, not below: the difference panel sits under them.
        top.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False)
    _fit_auroc(top, [*(r[k] for arm in arms for r in arm.rows for k in (key, f"{key}_lo", f"{key}_hi")), reference],
               bars=True)
    _chance(top)
    top.set_ylabel(ylabel)
    _need_blocks(top, arms)
    bottom.axhline(0, color="grey", lw=1)
    ends = [v for rows in deltas.values() for r in rows for v in (r["ci_low"], r["ci_high"]) if v is not None]
    low, high = min([0.0, *ends]), max([0.0, *ends])
    pad = max(0.05, 0.1 * (high - low))  # zero and every interval in view, never clipped at a bar's base
    bottom.set_ylim(low - pad, high + pad)
    bottom.set_ylabel("paired difference to\nbinary ERM (95% CI)")
    bottom.set_xticks(x, [getattr(arm, "label", "") or arm.group for arm in arms], rotation=30, ha="right", fontsize=8)
    _save(fig, path)


def _need_blocks(ax, arms: list) -> None:
    """Consecutive arms of one need as a block: a divider between blocks, the need above it."""
    start = 0
    for end in range(1, len(arms) + 1):
        if end < len(arms) and arms[end].need_label == arms[start].need_label:
            continue
        ax.text((start + end - 1) / 2, 1.04, arms[start].need_label, ha="center", va="bottom", fontsize=8,
                color=NEED_COLORS.get(arms[start].need, "grey"), transform=ax.get_xaxis_transform())
        if end < len(arms):
            ax.axvline(end - 0.5, color="#bbbbbb", lw=0.8)
        start = end


def probe_shift(path: Path, points: list[dict], groups: list[str], flip_label: str,
                labels: list[str] | None = None) -> None:
    """A probe that changes images: per group, each run's median score shift (after - before)
    and its flip rate, each with its 95% CI, and the mean over runs as a bar; zero marked.
    `labels`: the groups as the axis names them."""
    fig, axes = plt.subplots(1, 2, figsize=(max(7.5, 2.4 * len(groups) + 3), 3.9))
    x = np.arange(len(groups))
    # Probabilities shift within [-1, 1]; a logit score (binary_score = logit) may shift further.
    reach = max([1.0, *(abs(p[k]) for p in points for k in ("shift", "shift_lo", "shift_hi") if p.get(k) is not None)])
    panels = (("shift", "median score shift (after - before)", (-1.02 * reach, 1.02 * reach)), ("flip", flip_label, (0, 1.02)))
    for ax, (key, ylabel, ylim) in zip(axes, panels, strict=True):
        means = []
        for gi, g in enumerate(groups):
            runs = [p for p in points if p["group"] == g and p[key] is not None]
            means.append(np.mean([p[key] for p in runs]) if runs else np.nan)
            _dots(ax, gi, runs, key, "#dd5143")
        ax.bar(x, means, width=0.5, color="#dd5143", alpha=0.25)
        ax.axhline(0, color="grey", lw=1)
        ax.set_xticks(x, labels or [tick(g) for g in groups])
        ax.set_ylim(*ylim)
        ax.set_ylabel(ylabel)
    _save(fig, path)


MASS_COLORS = {"abnormality": "#55a868", "spurious": "#dd5143", "elsewhere": "#c8c8c8"}
MAP_NAMES = {"gradcam": "Grad-CAM", "probability": "P map", "integrated_gradients": "IG"}


def evidence_mass(path: Path, bars: list[dict], image_sets: list[str]) -> None:
    """One panel per image set: per group and evidence map, the mean share of the map's mass in
    the abnormality, the spurious region and elsewhere, stacked to 1 with the panel's own region
    at the bottom, and a dotted mark at that region's share of the image (what an even map would
    put there)."""
    fig, axes = plt.subplots(1, len(image_sets), figsize=(max(6.0, 5.2 * len(image_sets)), 4.2), squeeze=False)
    for ax, images in zip(axes[0], image_sets, strict=True):
        shown = [b for b in bars if b["images"] == images]
        x = np.arange(len(shown))
        bottom = np.zeros(len(shown))
        for region in sorted(MASS_COLORS, key=lambda r: (r != images, r == "elsewhere")):
            height = np.array([b.get(region) or 0.0 for b in shown])
            ax.bar(x, height, bottom=bottom, color=MASS_COLORS[region], width=0.7,
                   label=f"in {region}" if region != "elsewhere" else region)
            bottom += height
        area = [b.get("area") for b in shown]
        if any(a is not None for a in area):
            ax.hlines([np.nan if a is None else a for a in area], x - 0.35, x + 0.35, colors="black", linestyles=":",
                      label=f"{images} region's share of the image")
        ax.set_xticks(x, [f"{tick(b['group'])}\n{MAP_NAMES.get(b['map'], b['map'])}" for b in shown], fontsize=7)
        ax.set_ylim(0, 1.02)
        ax.set_ylabel(f"share of evidence (test images with the {images} region)")
        _legend_below(ax, ncol=2)
    _save(fig, path)
