"""The synthetic mask-budget table and figure of docs/results/mask-budget.md, both ways to fewer
masks: spurspec's own (`mask_budget`: every image stays, only some positives keep a mask) and
the study's (`train_fraction`, its sample_ratio: fewer images, each with its mask). Per
(granularity, method, mode, level): robust and overall AUROC as mean ± sd over seeds, and the
paired difference method − ERM at the same mode, level and seed as mean [mean ± t(0.975, n−1)·sd/√n].
Reads every evaluated run under the given study directories (their config.toml, metrics.parquet
and mask_budget.parquet through RunRecord); prints Markdown; with --figure PATH also writes robust
and overall AUROC against the masks kept (PNG); with --before DIRS, the arms found in both against
the same arms made by earlier code, seed by seed.

    spurspec run pipelines/mask-budget.toml
    .venv/bin/python tests/benchmarks/budget_table.py studies/mask-budget/train --figure docs/images/mask_budget.png
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from scipy import stats

from spurspec.artefacts.layout import RunLayout
from spurspec.artefacts.run import RunRecord
from spurspec.training.models.summaries import DEFAULT, IMAGE_SCORE

METHOD_ORDER = ("erm", "seg-ssl", "seg-spl")
MODES = {"masks": "fewer masks (spurspec)", "images": "fewer images (study)", "": "reference"}


def run_row(record: RunRecord, attribute: str) -> dict:
    summary = IMAGE_SCORE if record.granularity == "binary" else DEFAULT
    value = {(r["metric"], r["attribute"]): r["value"] for r in record.metric_rows if r["summary"] == summary}
    budget, fraction = record.mask_budget, record.config.get("train_fraction")
    mode, level = ("masks", str(budget)) if budget is not None else ("images", str(fraction)) if fraction else ("", "all")
    return {"gran": record.granularity, "method": record.method, "mode": mode, "level": level,
            "kept": record.kept_masks(), "seed": record.seed,
            "robust": value[("robust_auroc", attribute)], "overall": value[("auroc", None)]}


def mean_sd(values: list[float]) -> str:
    return f"{np.mean(values):.3f} ± {np.std(values, ddof=1):.3f}" if len(values) > 1 else f"{values[0]:.3f}"


def paired(values: list[float]) -> str:
    v = np.asarray(values)
    half = stats.t.ppf(0.975, len(v) - 1) * v.std(ddof=1) / np.sqrt(len(v)) if len(v) > 1 else float("nan")
    return f"{v.mean():+.3f} [{v.mean() - half:+.3f}, {v.mean() + half:+.3f}]"


def order(key: tuple[str, str, str, str]) -> tuple:
    """The image-label reference, spurspec's budgets, the study's fractions, then every mask."""
    gran, method, mode, level = key
    rank = {"masks": 1, "images": 2}.get(mode, 0 if gran == "binary" else 3)
    return (rank, float(level) if level != "all" else 0.0, gran != "binary",
            METHOD_ORDER.index(method) if method in METHOD_ORDER else 9)


def masks_cell(key: tuple[str, str, str, str], rows: list[dict]) -> str:
    gran, _, mode, level = key
    kept = [r["kept"] for r in rows if r["kept"] is not None]
    if gran == "binary":
        return "—" + (f" ({float(level):.0%} of images)" if mode == "images" else "")
    count = f"{kept[0]}" if len(set(kept)) == 1 else f"{np.mean(kept):.0f} ({min(kept)}–{max(kept)})"
    return count + (f" ({float(level):.0%} of images)" if mode == "images" else " (all)" if not mode else "")


def groups_of(dirs: list[str], attribute: str) -> dict[tuple[str, str, str, str], list[dict]]:
    groups: dict[tuple[str, str, str, str], list[dict]] = {}
    for d in dirs:
        for run in sorted(Path(d).iterdir()):
            if RunLayout(run).metrics.exists():
                row = run_row(RunRecord.open(run), attribute)
                groups.setdefault((row["gran"], row["method"], row["mode"], row["level"]), []).append(row)
    return groups


def table(groups: dict) -> None:
    print("| mode | supervision | method | masks | robust AUROC | overall AUROC | Δ robust vs ERM | Δ overall vs ERM |")
    print("|---|---|---|---:|---|---|---|---|")
    for key in sorted(groups, key=order):
        rows = sorted(groups[key], key=lambda r: r["seed"])
        d_robust = d_overall = ""
        ref_key = (key[0], "erm", key[2], key[3])
        if key[1] != "erm" and ref_key in groups:
            ref = {r["seed"]: r for r in groups[ref_key]}
            d_robust = paired([r["robust"] - ref[r["seed"]]["robust"] for r in rows if r["seed"] in ref])
            d_overall = paired([r["overall"] - ref[r["seed"]]["overall"] for r in rows if r["seed"] in ref])
        supervision = "image label" if key[0] == "binary" else key[0]
        print(f"| {MODES[key[2]]} | {supervision} | {key[1]} | {masks_cell(key, rows)} | "
              f"{mean_sd([r['robust'] for r in rows])} | {mean_sd([r['overall'] for r in rows])} | {d_robust} | {d_overall} |")


def before_after(before: dict, after: dict) -> None:
    """Each arm trained both before and after a change (the same settings and seeds, earlier
    code): per seed, and the paired difference after − before."""
    print("| arm | seed | robust before | robust after | overall before | overall after |")
    print("|---|---:|---|---|---|---|")
    for key in sorted(set(before) & set(after), key=order):
        then = {r["seed"]: r for r in before[key]}
        rows = [r for r in sorted(after[key], key=lambda r: r["seed"]) if r["seed"] in then]
        arm = f"{key[0]} {key[1]} {MODES[key[2]]} {key[3]}"
        for r in rows:
            b = then[r["seed"]]
            print(f"| {arm} | {r['seed']} | {b['robust']:.3f} | {r['robust']:.3f} | {b['overall']:.3f} | {r['overall']:.3f} |")
        print(f"| {arm} | Δ after − before | | {paired([r['robust'] - then[r['seed']]['robust'] for r in rows])} | | "
              f"{paired([r['overall'] - then[r['seed']]['overall'] for r in rows])} |")


def figure(groups: dict, path: str) -> None:
    """Robust and overall AUROC (mean over seeds, bars: sd) against the masks kept, one line per
    (mode, granularity, method); the references as horizontal lines."""
    import matplotlib
    import matplotlib.ticker

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharey=True)
    lines: dict[tuple[str, str, str], list] = {}
    for (gran, method, mode, _), rows in groups.items():
        if mode:
            x = np.mean([r["kept"] for r in rows]) if gran != "binary" else None
            lines.setdefault((mode, gran, method), []).append((x, rows))
    for ax, metric in zip(axes, ("robust", "overall"), strict=True):
        for (gran, _method, mode, _), rows in groups.items():
            if not mode:
                style = {"binary": ("grey", "image labels (all images)"), "seg": ("black", "every mask")}[gran]
                ax.axhline(np.mean([r[metric] for r in rows]), color=style[0], ls=":", label=style[1])
        for (mode, gran, method), points in sorted(lines.items()):
            if gran == "binary":  # image labels on the study's fewer images: placed at their masked positives
                points = [(np.mean([r["kept"] for r in groups[("seg", "erm", mode, lv)]]), rows)
                          for (g, m, md, lv), rows in groups.items() if (g, m, md) == ("binary", method, mode)
                          and ("seg", "erm", mode, lv) in groups]
            points = sorted(points, key=lambda p: p[0])
            xs = [p[0] for p in points]
            ys = [np.mean([r[metric] for r in p[1]]) for p in points]
            sd = [np.std([r[metric] for r in p[1]], ddof=1) if len(p[1]) > 1 else 0 for p in points]
            ax.errorbar(xs, ys, yerr=sd, marker="o" if mode == "masks" else "s", capsize=3,
                        ls="-" if mode == "masks" else "--", label=f"{MODES[mode]}: {'image label' if gran == 'binary' else gran} {method}")
        ax.set_xscale("log")
        ax.xaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax.set_xticks(sorted({round(float(np.mean([r["kept"] for r in rows]))) for (g, _m, md, _l), rows in groups.items()
                              if md == "masks" or (md and g != "binary" and not any(k[2] == "masks" for k in groups))}))
        ax.set_xlabel("training masks kept (mean over seeds)")
        ax.set_title(f"{metric} AUROC (test)")
        ax.axhline(0.5, color="lightgrey", lw=0.8)
    axes[0].set_ylabel("AUROC, mean ± sd over seeds")
    axes[1].legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dirs", nargs="+", help="study train folders (e.g. studies/mask-budget/train)")
    parser.add_argument("--attribute", default="chest_tube")
    parser.add_argument("--figure", help="write the figure here (PNG)")
    parser.add_argument("--before", nargs="+", help="runs of the same arms and seeds made by earlier code: "
                        "print them against these, seed by seed, instead of the table")
    args = parser.parse_args(argv)
    groups = groups_of(args.dirs, args.attribute)
    if args.before:
        before_after(groups_of(args.before, args.attribute), groups)
        return
    table(groups)
    if args.figure:
        figure(groups, args.figure)


if __name__ == "__main__":
    main()
