"""`spurspec compare`: paired differences between evaluated runs scored on the same test images.
Runs are found and grouped as the report groups them (granularity, method, mask budget); the
first run's group is the reference unless another is named. Each other group's runs are paired
with the reference group's run of the same replicate (trap set and seed), and every paired metric
gets b - a with a paired patient-bootstrap interval, a p-value and, for plain AUROC, DeLong's p.
Runs are counted as the report counts them (runs.select): one per group and replicate, finished
ones only unless unfinished ones are asked for.
Reads run records; writes the comparison table (Parquet) only when asked to."""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa

from spurspec.artefacts import io, schemas
from spurspec.errors import ConfigError
from spurspec.evaluation import paired
from spurspec.report.runs import find_runs, select
from spurspec.training.models import summaries


@dataclass(frozen=True)
class CompareConfig:
    runs: tuple[Path, ...] = ()  # evaluated run directories, or directories holding runs
    reference: str | None = None  # the group others are compared with; unset = the first run's
    summary: str = summaries.DEFAULT  # pixel models' summarising function (binary: its image score)
    split: str = "test"
    bootstrap: int = 1000  # paired replicates; the same resamples for both runs of a pair
    seed: int = 0
    confidence: float = 0.95
    out: Path | None = None  # a Parquet file for the table; unset = print only
    keep: tuple[Path, ...] = ()  # of runs sharing a group and replicate, the one to count
    include_unfinished: bool = False  # pair runs scored before their training finished (marked)


@dataclass
class CompareResult:
    rows: list[dict[str, Any]]  # one per (pair, metric, attribute)
    groups: list[dict[str, Any]] = field(default_factory=list)  # mean ± sd of the differences per group
    notes: list[str] = field(default_factory=list)
    unfinished: dict[str, str] = field(default_factory=dict)  # run directory -> its mark, for unfinished runs paired


def check(cfg: CompareConfig) -> None:
    if not cfg.runs:
        raise ConfigError("name at least two runs (or directories holding them) to compare")
    summaries.get(cfg.summary)
    if cfg.split not in schemas.SPLITS:
        raise ConfigError(f"split {cfg.split!r}: use one of {', '.join(schemas.SPLITS)}")
    if cfg.bootstrap < 0 or not 0 < cfg.confidence < 1:
        raise ConfigError("bootstrap must be >= 0 and confidence in (0, 1)")


def compare(cfg: CompareConfig) -> CompareResult:
    check(cfg)
    found, notes = find_runs(list(cfg.runs))
    chosen = select(found, cfg.keep, cfg.include_unfinished)
    runs, notes = chosen.runs, notes + chosen.notes
    unfinished = f" ({len(chosen.left_out)} unfinished run(s) left out; --include-unfinished counts them)" if chosen.left_out else ""
    if len(runs) < 2:
        raise ConfigError(f"compare needs at least two evaluated runs{unfinished}")
    reference = cfg.reference or find_runs([cfg.runs[0]])[0][0].group
    ref_runs = {r.replicate: r for r in runs if r.group == reference}
    if not ref_runs:
        raise ConfigError(f"no runs in reference group {reference!r}{unfinished}; "
                          f"groups: {', '.join(sorted({r.group for r in runs}))}")
    rows = []
    for run in runs:
        if run.group == reference:
            continue
        ref = ref_runs.get(run.replicate)
        if ref is None:
            notes.append(f"{run.root}: no {reference} run with {run.replicate} to pair with; left out")
            continue
        rows += pair_rows(ref, run, cfg)
    if not rows:
        raise ConfigError(f"no pairs to compare: every other group lacks a run matching a {reference} run's replicate")
    marks = {str(r.root): r.mark for r in runs if r.mark}
    result = CompareResult(rows, group_summary(rows, set(marks)), notes, marks)
    if cfg.out is not None:
        io.write_table(Path(cfg.out), pa.Table.from_pylist(rows, schema=_plain(schemas.COMPARISON)), schemas.COMPARISON)
    return result


def pair_rows(ref, run, cfg: CompareConfig) -> list[dict[str, Any]]:
    """Every paired metric of `run` minus `ref` (report Run objects on the same test images)."""
    sa = paired.scored(ref.record, paired.headline_summary(ref.record, cfg.summary), cfg.split)
    sb = paired.scored(run.record, paired.headline_summary(run.record, cfg.summary), cfg.split)
    paired.check_same_images(sa, sb, f"{ref.root} vs {run.root}")
    delong_p = None
    if len(set(sa.sample.label.tolist())) == 2 and min((sa.sample.label == 1).sum(), (sa.sample.label == 0).sum()) >= 2:
        delong_p = paired.delong(sa.sample.score, sb.sample.score, sa.sample.label)[2]
    out = []
    for d in paired.differences(sa, sb, cfg.bootstrap, cfg.seed, cfg.confidence):
        out.append({"reference_group": ref.group, "group": run.group, "replicate": run.replicate,
                    "reference_run": str(ref.root), "run": str(run.root), "metric": d.metric,
                    "attribute": d.attribute, "a": d.a, "b": d.b, "diff": d.diff, "ci_low": d.ci_low,
                    "ci_high": d.ci_high, "p_value": d.p_value, "n_boot": d.n_boot,
                    "delong_p": delong_p if (d.metric, d.attribute) == ("auroc", None) else None})
    return out


def group_summary(rows: list[dict[str, Any]], unfinished: set[str] = frozenset()) -> list[dict[str, Any]]:
    """Per (group, metric, attribute): the mean ± sd over replicates of the paired difference, and
    how many of those replicates pair an unfinished run (a run directory in `unfinished`)."""
    keys = sorted({(r["group"], r["metric"], r["attribute"] or "") for r in rows})
    out = []
    for group, metric, attribute in keys:
        mine = [r for r in rows if (r["group"], r["metric"], r["attribute"] or "") == (group, metric, attribute)
                and r["diff"] is not None]
        diffs = [r["diff"] for r in mine]
        out.append({"group": group, "metric": metric, "attribute": attribute or None, "replicates": len(diffs),
                    "unfinished": sum(1 for r in mine if {r["run"], r["reference_run"]} & unfinished),
                    "mean_diff": statistics.mean(diffs) if diffs else None,
                    "sd_diff": statistics.stdev(diffs) if len(diffs) > 1 else None})
    return out


def _plain(schema: pa.Schema) -> pa.Schema:
    return pa.schema(list(schema))
