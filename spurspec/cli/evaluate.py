"""`spurspec evaluate RUN` (or `--predictions FILE --dataset DATASET --out DIR`): calls
spurspec.evaluation.evaluate.evaluate and prints the key metrics with their intervals."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from spurspec.artefacts.schemas import SPLITS
from spurspec.cli.common import out, print_rows
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


# Marks a robust AUROC whose cells are below the cell-size rule (spurspec.metrics.cells.small_cell).
SMALL = "*"


def print_metrics(metrics, title: str) -> None:
    """The key metrics as value [95% CI]: one row per summarising function where that fits the
    width, else one row per summary, metric and attribute; a robust AUROC on too few images to
    tell is marked, its counts below; then why any value is NULL."""
    from spurspec.metrics.cells import small_cell

    rows = metrics.to_pylist()
    by = {(r["summary"], r["metric"], r["attribute"]): r for r in rows}
    attrs = sorted({r["attribute"] for r in rows if r["metric"] == "robust_auroc"})
    columns = [("AUROC", "auroc", None)] + [("robust AUROC", "robust_auroc", a) for a in attrs]
    columns += [("worst subgroup", "worst_subgroup_auroc", None), ("AUPRC", "auprc", None),
                ("sensitivity", "sensitivity", None), ("specificity", "specificity", None)]
    small = [r for r in rows if r["metric"] == "robust_auroc" and r["value"] is not None and small_cell(r["n_pos"], r["n_neg"])]
    marked = {(r["summary"], r["attribute"]) for r in small}

    def cell(summary: str, metric: str, attribute: str | None) -> str:
        return _cell(by.get((summary, metric, attribute))) + (f" {SMALL}" if (summary, attribute) in marked and metric == "robust_auroc" else "")

    summaries = sorted({r["summary"] for r in rows})
    wide = [{"summary": s, **{f"{name} {a}" if a else name: cell(s, m, a) for name, m, a in columns}} for s in summaries]
    long = [{"summary": s, "metric": name, "attribute": a or "", "value [95% CI]": cell(s, m, a)}
            for s in summaries for name, m, a in columns]
    print_rows(title, wide, long=[("", long)])
    _print_small(small)
    _print_reasons(rows, {(m, a) for _, m, a in columns})


def _print_small(small: list[dict]) -> None:
    """The legend of the mark: per attribute, the robust test images its AUROC rests on."""
    from spurspec.metrics.cells import MIN_CELL_IMAGES, count_words

    for attribute, n_pos, n_neg in sorted({(r["attribute"], r["n_pos"], r["n_neg"]) for r in small}):
        out.print(f"{SMALL} robust AUROC ({attribute}): too few images to tell, {count_words(n_pos, n_neg)} "
                  f"(fewer than {MIN_CELL_IMAGES} of a class); read its interval, not its value")


def _print_reasons(rows: list[dict], shown: set) -> None:
    reasons = {}
    for r in rows:
        if r["value"] is None and (r["metric"], r["attribute"]) in shown and r["reason"]:
            reasons.setdefault((r["metric"], r["attribute"], r["reason"]), []).append(r["summary"])
    for (metric, attribute, reason), summaries in sorted(reasons.items(), key=str):
        where = f"{metric}{f' ({attribute})' if attribute else ''}"
        out.print(f"NULL {where} for {', '.join(summaries)}: {reason}")
