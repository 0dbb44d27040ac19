"""The results table `spurspec run` prints at the end: one row per evaluated training run of a
study (granularity, method and masks kept where the study varies them, seed, overall and robust
AUROC with 95% CIs), read through the run record."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from spurspec.artefacts.layout import RunLayout, StudyLayout
from spurspec.artefacts.run import RunRecord

_NAMES = {"auroc": "AUROC", "robust_auroc": "robust AUROC"}


def results_table(study: Path) -> list[dict[str, Any]]:
    rows = []
    train_root = StudyLayout(study).stage_dir("train")
    if not train_root.exists():
        return rows
    for run_dir in sorted(p for p in train_root.iterdir() if RunLayout(p).metrics.exists()):
        record = RunRecord.open(run_dir)
        summary = _own_summary(record)
        row: dict[str, Any] = {"granularity": record.granularity, "method": record.method,
                               "masks kept": record.kept_masks() if record.kept_masks() is not None else "-",
                               "seed": record.seed, "summary": summary}
        for m in record.metric_rows:
            if m["summary"] == summary and m["metric"] in _NAMES:
                name = _NAMES[m["metric"]] + (f" ({m['attribute']})" if m["attribute"] is not None else "")
                row[name] = _fmt(m)
        rows.append(row)
    for column in ("method", "masks kept"):  # only where the study varies them
        if len({r[column] for r in rows}) <= 1:
            for r in rows:
                del r[column]
    return rows


def _own_summary(record: RunRecord) -> str:
    """The run's own summarising function (the one it was selected with), or its only score."""
    present = sorted({m["summary"] for m in record.metric_rows if m["summary"] is not None})
    return record.summary if record.summary in present else present[0]


def _fmt(m: dict[str, Any]) -> str:
    if m.get("value") is None:
        return f"NULL ({m.get('reason') or 'undefined'})"
    if m.get("ci_low") is None:
        return f"{m['value']:.3f}"
    return f"{m['value']:.3f} [{m['ci_low']:.3f}, {m['ci_high']:.3f}]"
