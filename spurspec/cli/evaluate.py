"""`spurspec evaluate RUN` (or `--predictions FILE --dataset DATASET --out DIR`): calls
spurspec.evaluation.evaluate.evaluate and prints the key metrics with their intervals."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from spurspec.artefacts.schemas import SPLITS
from spurspec.cli.common import out
from spurspec.training.config import CHECKPOINTS

SETTINGS = "spurspec.evaluation.evaluate:EvaluateConfig"  # its defaults fill {default:FIELD} in help


def command(
    run: Annotated[Path | None, typer.Argument(help="Training run directory (from `spurspec train`).")] = None,
    predictions: Annotated[Path | None, typer.Option(help="Predictions made elsewhere: Parquet or CSV with image_id, score[, summary][, split].")] = None,
    dataset: Annotated[Path | None, typer.Option(help="Dataset directory the --predictions refer to; with RUN, the run's dataset at its new place if it moved (same images).")] = None,
    out_dir: Annotated[Path | None, typer.Option("--out", help="Output directory for --predictions metrics.")] = None,
    split: Annotated[str | None, typer.Option(help=f"Split to score: {', '.join(SPLITS)} (default {{default:split}}); the threshold always comes from val.")] = None,
    checkpoint: Annotated[str | None, typer.Option(help=f"Checkpoint of a run to score: {' | '.join(CHECKPOINTS)} (default {{default:checkpoint}}).")] = None,
    bootstrap: Annotated[int | None, typer.Option(help="Bootstrap replicates per interval, 0 = no intervals (default {default:bootstrap}).")] = None,
    seed: Annotated[int | None, typer.Option(help="Bootstrap seed (default {default:seed}).")] = None,
    threshold: Annotated[str | None, typer.Option(help="youden | sensitivity:X, chosen on val (default {default:threshold}).")] = None,
    threads: Annotated[int | None, typer.Option(help="Compute threads for inference (default: OMP_NUM_THREADS if set, else the cores this process may use).")] = None,
    device: Annotated[str | None, typer.Option(help="Inference device for a run, e.g. cpu or cuda:0.")] = None,
    config: Annotated[Path | None, typer.Option(help="TOML file of EvaluateConfig settings (flags override it).")] = None,
    force: Annotated[bool, typer.Option(help="Recompute even if the metrics are up to date.")] = False,
) -> None:
    """Metrics with patient-bootstrap intervals: AUROC, robust AUROC per spurious attribute, subgroups, AUPRC, sensitivity/specificity."""
    from spurspec.artefacts import freshness
    from spurspec.config import resolve
    from spurspec.evaluation.evaluate import WHAT, EvaluateConfig, evaluate

    overrides = {"run": run, "predictions": predictions, "dataset": dataset, "out": out_dir, "split": split,
                 "checkpoint": checkpoint, "bootstrap": bootstrap, "seed": seed, "threshold": threshold, "device": device,
                 "threads": threads}
    cfg = resolve(EvaluateConfig, config, overrides)
    res = evaluate(cfg, force=force)
    if res.up_to_date:
        out.print(freshness.up_to_date(res.out, WHAT))
    for note in res.notes:
        out.print(f"note: {note}")
    print_metrics(res.metrics, f"{res.out}: {cfg.split} split, {cfg.bootstrap} bootstrap replicates")
    out.print(f"wrote {res.out}/metrics.parquet")


def _cell(r: dict | None) -> str:
    if r is None or r["value"] is None:
        return "NULL"
    ci = "" if r["ci_low"] is None else f" [{r['ci_low']:.2f}, {r['ci_high']:.2f}]"
    return f"{r['value']:.3f}{ci}"


def print_metrics(metrics, title: str) -> None:
    """One row per summarising function: the key metrics as value [95% CI]; NULL reasons below."""
    from rich.table import Table

    rows = metrics.to_pylist()
    by = {(r["summary"], r["metric"], r["attribute"]): r for r in rows}
    attrs = sorted({r["attribute"] for r in rows if r["metric"] == "robust_auroc"})
    columns = [("AUROC", "auroc", None)] + [(f"robust AUROC {a}", "robust_auroc", a) for a in attrs]
    columns += [("worst subgroup", "worst_subgroup_auroc", None), ("AUPRC", "auprc", None),
                ("sensitivity", "sensitivity", None), ("specificity", "specificity", None)]
    table = Table(title=title)
    table.add_column("summary")
    for name, _, _ in columns:
        table.add_column(name, justify="right")
    for summary in sorted({r["summary"] for r in rows}):
        table.add_row(summary, *(_cell(by.get((summary, m, a))) for _, m, a in columns))
    out.print(table)
    shown = {(m, a) for _, m, a in columns}
    reasons = {}
    for r in rows:
        if r["value"] is None and (r["metric"], r["attribute"]) in shown and r["reason"]:
            reasons.setdefault((r["metric"], r["attribute"], r["reason"]), []).append(r["summary"])
    for (metric, attribute, reason), summaries in sorted(reasons.items(), key=str):
        where = f"{metric}{f' ({attribute})' if attribute else ''}"
        out.print(f"NULL {where} for {', '.join(summaries)}: {reason}")
