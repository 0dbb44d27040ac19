"""The synthetic mask-budget table of docs/results/mask-budget.md: robust and overall AUROC per
(granularity, method, budget) as mean ± sd over seeds, and the paired difference method − ERM at
the same budget and seed as mean [mean ± t(0.975, n−1)·sd/√n]. Reads every evaluated run under
the given study directories (their config.toml, metrics.parquet and mask_budget.parquet through
RunRecord); prints Markdown.

    spurspec run pipelines/mask-budget-reference.toml
    spurspec run pipelines/mask-budget.toml
    .venv/bin/python tests/benchmarks/budget_table.py studies/mask-budget/train
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from scipy import stats

from spurspec.artefacts.layout import RunLayout
from spurspec.artefacts.run import RunRecord
from spurspec.training.models.summaries import DEFAULT, IMAGE_SCORE

METHOD_ORDER = ("erm", "seg-ssl", "seg-spl")


def run_row(record: RunRecord, attribute: str) -> dict:
    summary = IMAGE_SCORE if record.granularity == "binary" else DEFAULT
    value = {(r["metric"], r["attribute"]): r["value"] for r in record.metric_rows if r["summary"] == summary}
    budget = record.mask_budget
    return {"gran": record.granularity, "method": record.method, "budget": "all" if budget is None else str(budget),
            "kept": record.kept_masks(), "seed": record.seed,
            "robust": value[("robust_auroc", attribute)], "overall": value[("auroc", None)]}


def mean_sd(values: list[float]) -> str:
    return f"{np.mean(values):.3f} ± {np.std(values, ddof=1):.3f}" if len(values) > 1 else f"{values[0]:.3f}"


def paired(values: list[float]) -> str:
    v = np.asarray(values)
    half = stats.t.ppf(0.975, len(v) - 1) * v.std(ddof=1) / np.sqrt(len(v)) if len(v) > 1 else float("nan")
    return f"{v.mean():+.3f} [{v.mean() - half:+.3f}, {v.mean() + half:+.3f}]"


def order(key: tuple[str, str, str]) -> tuple:
    gran, method, budget = key
    return (gran != "binary", budget == "all", float(budget) if budget != "all" else 0.0,
            METHOD_ORDER.index(method) if method in METHOD_ORDER else 9)


def main(dirs: list[str], attribute: str = "chest_tube") -> None:
    groups: dict[tuple[str, str, str], list[dict]] = {}
    for d in dirs:
        for run in sorted(Path(d).iterdir()):
            if RunLayout(run).metrics.exists():
                row = run_row(RunRecord.open(run), attribute)
                groups.setdefault((row["gran"], row["method"], row["budget"]), []).append(row)
    print("| supervision | method | masks | robust AUROC | overall AUROC | Δ robust vs ERM | Δ overall vs ERM |")
    print("|---|---|---:|---|---|---|---|")
    for key in sorted(groups, key=order):
        rows = sorted(groups[key], key=lambda r: r["seed"])
        masks = "—" if key[0] == "binary" else f"{rows[0]['kept']}" + (" (all)" if key[2] == "all" else "")
        d_robust = d_overall = ""
        if key[1] != "erm" and (key[0], "erm", key[2]) in groups:
            ref = {r["seed"]: r for r in groups[(key[0], "erm", key[2])]}
            d_robust = paired([r["robust"] - ref[r["seed"]]["robust"] for r in rows if r["seed"] in ref])
            d_overall = paired([r["overall"] - ref[r["seed"]]["overall"] for r in rows if r["seed"] in ref])
        supervision = "image label" if key[0] == "binary" else key[0]
        print(f"| {supervision} | {key[1]} | {masks} | {mean_sd([r['robust'] for r in rows])} | "
              f"{mean_sd([r['overall'] for r in rows])} | {d_robust} | {d_overall} |")


if __name__ == "__main__":
    main(sys.argv[1:])
