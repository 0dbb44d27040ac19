"""The report's figures, drawn with matplotlib's Agg backend (no display) and saved as PNG:
the headline (robust vs overall AUROC by granularity), ROC curves of the robust cells, robust
AUROC by summarising function, saliency panels (where each model looks), the remedies by what
they need, and the reliance probes' score shifts and evidence mass."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from spurspec.artefacts import io  # noqa: E402

_PNG_META = {"Software": None}  # no version string in the file: same inputs, same bytes


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
    ax.set_xticks(x, labels or groups)
    ax.set_ylim(0, 1.02)
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
    ax.set_ylim(0, 1.02)
    _chance(ax)
    ax.set_xlabel("summarising function (pixel map -> image score), from the top pixel to every pixel")
    ax.set_ylabel(f"robust AUROC ({attribute}), 95% CI")
    _legend_below(ax, ncol=min(4, max(len(data), 1)))
    _save(fig, path)


CELL_COLORS = {"positives": "#dd5143", "negatives": "#4c72b0"}


def saliency(path: Path, panels: list[tuple[str, list[tuple[str, np.ndarray, np.ndarray, str, np.ndarray | None]]]]) -> None:
    """One row per model, one column per robust-cell test image: the image in grey, the model's
    map in one colour map (with its colour bar), the abnormality's outline, and the image's robust
    cell above it."""
    ncol = max(len(items) for _, items in panels)
    fig, axes = plt.subplots(len(panels), ncol, figsize=(2.1 * ncol + 0.8, 2.2 * len(panels)), squeeze=False)
    shown = None
    for row, (label, items) in enumerate(panels):
        for col in range(ncol):
            ax = axes[row][col]
            ax.set_xticks([])
            ax.set_yticks([])
            if col >= len(items):
                ax.axis("off")
                continue
            image_id, image, heat, cell, mask = items[col]
            img = image if image.ndim == 2 else (image[0] if image.shape[0] == 1 else np.moveaxis(image, 0, -1))
            ax.imshow(img, cmap="gray" if img.ndim == 2 else None)
            extent = (-0.5, img.shape[1] - 0.5, img.shape[0] - 0.5, -0.5)
            shown = ax.imshow(heat, cmap="magma", alpha=0.5, vmin=0.0, vmax=1.0, extent=extent)
            if mask is not None and mask.any():
                ax.contour(np.asarray(mask, dtype=float), levels=[0.5], colors="#00e5ff", linewidths=0.9,
                           extent=extent, origin="upper")
            ax.set_title(f"{cell}\n{image_id}", fontsize=6.5, color=CELL_COLORS.get(cell.split(" ")[0], "black"))
            if col == 0:
                ax.set_ylabel(label, fontsize=8)
    if shown is not None:
        bar = fig.colorbar(shown, ax=axes, fraction=0.02, pad=0.03)
        bar.set_label("P(positive region), or Grad-CAM (binary)", fontsize=7)
    _save(fig, path)


def _band(ax, curve, color) -> None:
    """A curve's mean line, its band (mean of the runs' 95% CIs) and every run as a dot."""
    x = np.asarray(curve.x)
    ax.fill_between(x, curve.low, curve.high, color=color, alpha=0.18, lw=0)
    ax.plot(x, curve.mean, marker="o", color=color, lw=1.6, label=curve.label)
    if curve.points:
        px, py = zip(*curve.points, strict=True)
        ax.scatter(px, py, s=10, color=color, alpha=0.6, zorder=3)


def _log_ticks(ax, curves, base: float = 10) -> None:
    """A log x axis labelled at the data's own x values, as plain integers."""
    from matplotlib.ticker import NullLocator

    xs = sorted({x for c in curves for x in c.x})
    ax.set_xscale("log", base=base)
    ax.xaxis.set_minor_locator(NullLocator())
    ax.set_xticks(xs, [f"{x:,.0f}" for x in xs])


def _chance(ax, robust: bool = True) -> None:
    """The 0.5 line; on a robust metric, below it a model ranks by the spurious feature."""
    ax.axhline(0.5, color="grey", ls="--", lw=1)
    note = " chance; below = reads the spurious feature" if robust else " chance"
    ax.text(0.01, 0.5, note, fontsize=7, color="grey", va="bottom",
            transform=ax.get_yaxis_transform(), bbox={"facecolor": "white", "edgecolor": "none", "alpha": 0.7, "pad": 1})


def specificity(path: Path, curve, attribute: str, ylabel: str) -> None:
    """The study's coarse-mask figure: robust AUROC against r (log scale) with its band."""
    fig, ax = plt.subplots(figsize=(5.6, 3.9))
    _band(ax, curve, "#dd5143")
    _log_ticks(ax, [curve], base=2)
    ax.set_ylim(0, 1.02)
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
        ax.set_ylim(0, 1.02)
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
    top.set_ylim(0, 1.02)
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
        ax.set_xticks(x, labels or groups)
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
        ax.set_xticks(x, [f"{b['group']}\n{MAP_NAMES.get(b['map'], b['map'])}" for b in shown], fontsize=7)
        ax.set_ylim(0, 1.02)
        ax.set_ylabel(f"share of evidence (test images with the {images} region)")
        _legend_below(ax, ncol=2)
    _save(fig, path)
