"""The results table `spurspec run` prints at the end: one row per evaluated training run of a
study (granularity, seed, overall and robust AUROC with 95% CIs), read from metrics.parquet."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from spurspec.artefacts.layout import RunLayout, StudyLayout


def results_table(study: Path) -> list[dict[str, Any]]:
    rows = []
    train_root = StudyLayout(study).stage_dir("train")
    if not train_root.exists():
        return rows
    for run_dir in sorted(train_root.iterdir()):
        run = RunLayout(run_dir)
        if not run.metrics.exists() or not run.config.exists():
            continue
        cfg = tomllib.loads(run.config.read_text())
        metrics = pq.read_table(run.metrics).to_pylist()
        for summary in _summaries(metrics, cfg):
            row: dict[str, Any] = {"granularity": cfg.get("granularity"), "seed": cfg.get("seed"), "summary": summary}
            for m in metrics:
                if m.get("summary") != summary:
                    continue
                name = _NAMES.get(m["metric"], m["metric"])
                if m.get("attribute") is not None:
                    name = f"{name} ({m['attribute']})"
                if m["metric"] in _NAMES:
                    row[name] = _fmt(m)
            rows.append(row)
    return rows


_NAMES = {"auroc": "AUROC", "robust_auroc": "robust AUROC"}


def _summaries(metrics: list[dict[str, Any]], cfg: dict[str, Any]) -> list[str]:
    """The run's own summarising function (the one it was trained to be scored by)."""
    present = sorted({m.get("summary") for m in metrics if m.get("summary") is not None})
    own = cfg.get("summary")
    if own in present:
        return [own]
    return present[:1]


def _fmt(m: dict[str, Any]) -> str:
    if m.get("value") is None:
        return f"NULL ({m.get('reason') or 'undefined'})"
    if m.get("ci_low") is None:
        return f"{m['value']:.3f}"
    return f"{m['value']:.3f} [{m['ci_low']:.3f}, {m['ci_high']:.3f}]"
