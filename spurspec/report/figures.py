"""The report's figures, drawn with matplotlib's Agg backend (no display) and saved as PNG:
the headline (robust vs overall AUROC by granularity), ROC curves of the robust cells, robust
AUROC by summarising function, and saliency panels (where each model looks)."""

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


def headline(path: Path, rows: list[dict], groups: list[str], reference: dict[str, float], attribute: str) -> None:
    """Per group: each run's overall and robust AUROC with its 95% CI, the mean over seeds as a
    bar, the study's published robust AUROC as a hollow star, and chance at 0.5."""
    fig, ax = plt.subplots(figsize=(max(5.0, 1.4 * len(groups) + 2), 4.2))
    x = np.arange(len(groups))
    for k, (metric, color, label) in enumerate((("overall", "#4c72b0", "overall AUROC"),
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
        ax.scatter([i + 0.18 for i, _ in ref], [v for _, v in ref], marker="*", s=160, facecolors="none",
                   edgecolors="black", label="study's robust AUROC (reference)", zorder=5)
    ax.axhline(0.5, color="grey", ls="--", lw=1)
    ax.set_xticks(x, groups)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("spatial specificity of the supervision")
    ax.set_ylabel("AUROC (test, 95% patient-bootstrap CI)")
    ax.set_title("Robust vs overall AUROC by granularity")
    ax.legend(fontsize=8, loc="lower right")
    _save(fig, path)


def roc_curves(path: Path, curves: list[tuple[str, np.ndarray, np.ndarray, float | None]], attribute: str) -> None:
    fig, ax = plt.subplots(figsize=(4.8, 4.5))
    for label, fpr, tpr, auc in curves:
        ax.plot(fpr, tpr, lw=1.5, label=f"{label} ({'n/a' if auc is None else f'{auc:.2f}'})")
    ax.plot([0, 1], [0, 1], color="grey", ls="--", lw=1)
    ax.set_xlabel("false positive rate")
    ax.set_ylabel("true positive rate")
    ax.set_title(f"ROC in the robust cells ({attribute})")
    ax.legend(fontsize=7, loc="lower right")
    _save(fig, path)


def by_summary(path: Path, data: dict[str, dict[str, list[float]]], summaries: list[str], attribute: str) -> None:
    """Robust AUROC (mean ± sd over seeds) per summarising function, one line per group."""
    fig, ax = plt.subplots(figsize=(max(4.8, 0.9 * len(summaries) + 2), 4.0))
    x = np.arange(len(summaries))
    for group, per in data.items():
        mean = [np.mean(per[s]) if per.get(s) else np.nan for s in summaries]
        sd = [np.std(per[s], ddof=1) if len(per.get(s, [])) > 1 else 0.0 for s in summaries]
        ax.errorbar(x, mean, yerr=sd, marker="o", capsize=3, label=group)
    ax.axhline(0.5, color="grey", ls="--", lw=1)
    ax.set_xticks(x, summaries)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("summarising function (pixel map -> image score)")
    ax.set_ylabel(f"robust AUROC ({attribute})")
    ax.set_title("Robust AUROC by summarising function")
    ax.legend(fontsize=8)
    _save(fig, path)


def saliency(path: Path, panels: list[tuple[str, list[tuple[str, np.ndarray, np.ndarray]]]]) -> None:
    """One row per model: test images from the robust cells with its map overlaid."""
    ncol = max(len(items) for _, items in panels)
    fig, axes = plt.subplots(len(panels), ncol, figsize=(2.0 * ncol, 2.1 * len(panels)), squeeze=False)
    for row, (label, items) in enumerate(panels):
        for col in range(ncol):
            ax = axes[row][col]
            ax.set_xticks([])
            ax.set_yticks([])
            if col >= len(items):
                ax.axis("off")
                continue
            image_id, image, heat = items[col]
            img = image if image.ndim == 2 else (image[0] if image.shape[0] == 1 else np.moveaxis(image, 0, -1))
            ax.imshow(img, cmap="gray" if img.ndim == 2 else None)
            ax.imshow(heat, cmap="jet", alpha=0.45, vmin=0.0, vmax=1.0,
                      extent=(-0.5, img.shape[1] - 0.5, img.shape[0] - 0.5, -0.5))
            ax.set_title(image_id, fontsize=7)
            if col == 0:
                ax.set_ylabel(label, fontsize=8)
    fig.suptitle("Where each model looks (robust-cell test images; map: P(positive) or Grad-CAM)", fontsize=9)
    _save(fig, path)
