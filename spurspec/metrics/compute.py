"""The metric engine: point values from the SQL files (DuckDB over the manifest Parquet and a
predictions table) and patient-level bootstrap intervals (numpy), assembled into METRICS rows.
Reads: the manifest path and normalised predictions (image_id, summary, role, score)."""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from spurspec.artefacts import schemas
from spurspec.errors import InputError
from spurspec.metrics import bootstrap
from spurspec.metrics.cells import SUBGROUPS, worst_subgroup
from spurspec.metrics.db import MetricDB
from spurspec.metrics.thresholds import parse_rule

_SUBSET_METRIC = {"overall": "auroc", "robust": "robust_auroc", **{f"attr{v}": f"auroc_attr{v}" for v in SUBGROUPS}}
_SUBGROUP_METRICS = tuple(f"auroc_attr{v}" for v in SUBGROUPS)


@dataclass(frozen=True)
class MetricSettings:
    n_boot: int = 1000
    seed: int = 0
    confidence: float = 0.95
    threshold: str = "youden"


def compute_metrics(manifest_path: Path, preds: pa.Table, spurious: list[str], settings: MetricSettings,
                    where: str = "predictions", no_val_reason: str | None = None) -> pa.Table:
    """METRICS table for `preds` (columns image_id, summary, role in {'eval','val'}, score)."""
    db = MetricDB(manifest_path, preds, spurious, allowed=spurious)
    try:
        _check_inputs(db, where)
        db.prepare()
        rule, target = parse_rule(settings.threshold)
        db.run("threshold", rule=rule, target=target)
        rows = _point_rows(db, spurious, no_val_reason)
        thresholds = {r["summary"]: r["threshold"] for r in db.rows("sens_spec")}
        for summary in sorted({r["summary"] for r in rows}):
            _add_intervals(db, summary, [r for r in rows if r["summary"] == summary], spurious,
                           thresholds.get(summary), settings)
    finally:
        db.close()
    fields = {f.name: [r.get(f.name) for r in rows] for f in schemas.METRICS}
    return pa.table({k: pa.array(v, type=schemas.METRICS.field(k).type) for k, v in fields.items()},
                    schema=schemas.METRICS)


def _check_inputs(db: MetricDB, where: str) -> None:
    (n_unknown, examples), = db.run("check_unknown_ids").fetchall()
    if n_unknown:
        raise InputError(f"{where}: {n_unknown} image_id(s) not in the dataset manifest, e.g. {', '.join(examples)}")
    (n_dup, examples), = db.run("check_duplicate_ids").fetchall()
    if n_dup:
        raise InputError(f"{where}: {n_dup} image_id(s) scored more than once by the same summary, e.g. {', '.join(examples)}")
    bad = db.rows("check_attribute_values")
    if bad:
        b = bad[0]
        raise InputError(f"manifest: spurious attribute {b['attribute']} has value {b['value']} ({b['n']} rows); expected 0, 1 or null")


def _point_rows(db: MetricDB, spurious: list[str], no_val_reason: str | None) -> list[dict[str, Any]]:
    rows = []
    for r in db.rows("auroc"):
        rows.append({"metric": _SUBSET_METRIC[r["subset"]], "attribute": r["attribute"], "summary": r["summary"],
                     "value": r["value"], "n_pos": r["n_pos"], "n_neg": r["n_neg"], "reason": r["reason"]})
    for r in db.rows("auprc"):
        rows.append({"metric": "auprc", "attribute": None, "summary": r["summary"], "value": r["value"],
                     "n_pos": r["n_pos"], "n_neg": r["n_neg"], "reason": r["reason"]})
    val = {r["summary"]: r for r in db.rows("threshold_rows")}
    for r in db.rows("sens_spec"):
        t = val[r["summary"]]
        reason = no_val_reason or t["reason"]
        rows.append({"metric": "threshold", "attribute": None, "summary": r["summary"], "value": r["threshold"],
                     "n_pos": t["n_pos"], "n_neg": t["n_neg"], "reason": reason})
        for metric in ("sensitivity", "specificity"):
            value = r[metric]
            why = reason if r["threshold"] is None else (None if value is not None else f"no {'positive' if metric == 'sensitivity' else 'negative'} images")
            rows.append({"metric": metric, "attribute": None, "summary": r["summary"], "value": value,
                         "n_pos": r["n_pos"], "n_neg": r["n_neg"], "reason": why})
    rows += _worst_rows(rows, spurious)
    return rows


def _worst_rows(rows: list[dict[str, Any]], spurious: list[str]) -> list[dict[str, Any]]:
    """Worst-subgroup AUROC from the within-subgroup values: per attribute and over all of them."""
    out = []
    for summary in sorted({r["summary"] for r in rows}):
        within = {(r["metric"], r["attribute"]): r for r in rows
                  if r["summary"] == summary and r["metric"] in _SUBGROUP_METRICS}
        groups = {a: [within[(m, a)] for m in _SUBGROUP_METRICS] for a in spurious}
        if spurious:
            groups[None] = [r for a in spurious for r in groups[a]]
        for attribute, subgroup_rows in groups.items():
            out.append({"metric": "worst_subgroup_auroc", "attribute": attribute, "summary": summary,
                        **_worst_of(subgroup_rows)})
    return out


def _worst_of(subgroup_rows: list[dict[str, Any]]) -> dict[str, Any]:
    """value, n_pos, n_neg of the worst subgroup (cells.worst_subgroup) and why any is left out."""
    values = np.array([np.nan if c["value"] is None else c["value"] for c in subgroup_rows])
    worst = worst_subgroup(values[:, None])[0]
    pick = None if np.isnan(worst) else subgroup_rows[int(np.nanargmin(values))]
    missing = [f"{c['attribute']}={c['metric'][-1]}" for c in subgroup_rows if c["value"] is None]
    reason = None
    if missing:
        reason = ("no subgroup has both classes" if pick is None
                  else f"left out (one class or empty): {', '.join(missing)}")
    return {"value": pick and pick["value"], "n_pos": pick and pick["n_pos"], "n_neg": pick and pick["n_neg"],
            "reason": reason}


def _add_intervals(db: MetricDB, summary: str, rows: list[dict[str, Any]], spurious: list[str],
                   threshold: float | None, settings: MetricSettings) -> None:
    """Fill ci_low / ci_high of `rows` (one summary) from the patient bootstrap."""
    if settings.n_boot <= 0:
        return
    ev = db.arrow("eval_rows", summary=summary)
    ids = ev.column("image_id").to_numpy(zero_copy_only=False)
    attrs = {a: np.full(len(ids), -1, dtype=np.int64) for a in spurious}
    known = db.arrow("eval_attributes", summary=summary)
    order = np.argsort(ids)
    pos = order[np.searchsorted(ids, known.column("image_id").to_numpy(zero_copy_only=False), sorter=order)]
    names = known.column("attribute").to_numpy(zero_copy_only=False)
    values = known.column("value").to_numpy()
    for a in spurious:
        m = names == a
        attrs[a][pos[m]] = values[m]
    sample = bootstrap.Sample.from_ids(ev.column("score").to_numpy(), ev.column("label").to_numpy(),
                                       ev.column("patient_id").to_numpy(zero_copy_only=False), attrs)
    # One stream per summary, keyed by its name, so adding a summary does not move the others' draws.
    seed = np.random.SeedSequence([settings.seed, zlib.crc32(summary.encode())])
    reps = bootstrap.replicates(sample, settings.n_boot, seed, threshold)
    for r in rows:
        key = (r["metric"], r["attribute"])
        if r["value"] is None or key not in reps:
            continue
        lo, hi, n_ok = bootstrap.percentile_interval(reps[key], settings.confidence)
        r["ci_low"], r["ci_high"] = lo, hi
        if n_ok < settings.n_boot:
            note = f"interval from {n_ok} of {settings.n_boot} replicates (the rest lacked a class)"
            r["reason"] = f"{r['reason']}; {note}" if r["reason"] else note
