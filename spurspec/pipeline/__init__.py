"""`spurspec run`: a study declared in a pipeline file, run stage by stage (ingest -> boxes ->
train -> evaluate -> report) on an executor. Reads the pipeline TOML (with any `--set`
overrides); writes job directories under the study's `out`, each finished job marked `done`, and
a job table (jobs.parquet) whose metadata records the pipeline file and the overrides it ran with."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa

from spurspec.artefacts import io, locks
from spurspec.artefacts.layout import StudyLayout
from spurspec.errors import ConfigError
from spurspec.pipeline import plan as planning
from spurspec.pipeline import spec as specs
from spurspec.pipeline.checks import check_jobs
from spurspec.pipeline.executors import EXECUTORS, sbatch_preview
from spurspec.pipeline.progress import Progress
from spurspec.pipeline.spec import STAGE_ORDER


@dataclass(frozen=True)
class RunOptions:
    pipeline: Path
    executor: str = "local"
    workers: int = 1
    dry_run: bool = False
    only: str | None = None
    force: bool = False
    out: Path | None = None  # overrides the pipeline's [study] out
    overrides: tuple[str, ...] = ()  # `--set KEY=VALUE`, applied to the parsed file in order
    yes: bool = False  # run a matrix larger than LARGE_STUDY jobs without asking


# A study with more jobs than this is refused without --yes: a matrix typo (a seeds list of
# range(1000)) should cost a line of output, not a week of cluster time.
LARGE_STUDY = 500


@dataclass
class PipelineResult:
    study: Path
    jobs: list[dict[str, Any]]  # stage, job, status, label
    sbatch: dict[str, str] = field(default_factory=dict)  # stage -> sbatch script (dry run, slurm)
    report: Path | None = None
    ran: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Prepared:
    """A study ready to run: planned, checked whole, its executor built."""

    spec: specs.PipelineSpec
    jobs: list[planning.Job]
    executor: Any
    notes: list[str]
    configs: dict[str, Any]  # job id -> its checked config


def prepare(opts: RunOptions) -> Prepared:
    """Everything that can fail before a job starts, a dry run's too: the file, every job's
    settings (checks.py; errors name the file and table), inputs, and the executor's needs.
    Missing input paths are a dry run's warning: a study file is often previewed before its
    data paths are set."""
    spec = specs.load(opts.pipeline, out=opts.out, overrides=opts.overrides)
    jobs = planning.plan(spec)
    _check_size(jobs, opts)
    configs = check_jobs(spec, jobs)
    notes: list[str] = []
    if spec.overrides:
        notes.append("with --set " + ", ".join(f"{k}={json.dumps(v, default=str)}" for k, v in spec.overrides.items()))
    try:
        planning.check_inputs(spec)
    except ConfigError as exc:
        if not opts.dry_run:
            raise
        notes.append(f"warning: {exc}; a real run would stop here")
    executor = EXECUTORS.get(opts.executor)(StudyLayout(spec.out).logs, opts.workers, spec.slurm)
    if not opts.dry_run:
        executor.check()
    return Prepared(spec, jobs, executor, notes, configs)


def _check_size(jobs: list[planning.Job], opts: RunOptions) -> None:
    """State the size of an unusually large study and ask for --yes before planning on."""
    if len(jobs) <= LARGE_STUDY or opts.yes or opts.dry_run:
        return
    per_stage = ", ".join(f"{stage} {sum(j.stage == stage for j in jobs)}" for stage in STAGE_ORDER
                          if any(j.stage == stage for j in jobs))
    raise ConfigError(f"{opts.pipeline}: this study plans {len(jobs)} jobs ({per_stage}), more than {LARGE_STUDY}; "
                      "pass --yes to run them, or --dry-run to see them")


def job_rows(jobs: list[planning.Job]) -> list[dict[str, Any]]:
    """The job table: jobs named by their settings, the hash-keyed directory name last."""
    status = planning.statuses(jobs)
    return [{"stage": j.stage, "what": j.label, "status": status[j.id], "job": j.key} for j in jobs]


def run_pipeline(opts: RunOptions, on_event: Callable[[str], None] = lambda _: None) -> PipelineResult:
    prepared = prepare(opts)
    spec, jobs, executor = prepared.spec, prepared.jobs, prepared.executor
    selected = planning.select(jobs, opts.only)
    result = PipelineResult(study=spec.out, jobs=job_rows(jobs), notes=prepared.notes)
    if opts.dry_run:
        if opts.executor == "slurm":
            previous = None
            for stage in STAGE_ORDER:
                stage_jobs = _todo(selected, stage, opts.force)
                if stage_jobs:
                    result.sbatch[stage] = sbatch_preview(stage, stage_jobs, spec.slurm, StudyLayout(spec.out).logs / stage,
                                                          dependency=f"afterok:<{previous} array>" if previous else None)
                    previous = stage
        return result
    # One `spurspec run` per study at a time (a second exits 4 naming this one); each job's stage
    # also locks the output it writes.
    with locks.hold(spec.out, "run"):
        if opts.only is not None:
            _check_upstream_done(jobs, selected)
        todo_of = {stage: _todo(selected, stage, opts.force) for stage in STAGE_ORDER}
        progress = Progress([j for stage in STAGE_ORDER for j in todo_of[stage]], prepared.configs, on_event)
        for stage in STAGE_ORDER:
            todo = todo_of[stage]
            if not todo:
                continue
            executor.run_stage(stage, todo, opts.force, lambda job_id: (result.ran.append(job_id), progress.finish(job_id)),
                               on_start=progress.start)
        executor.finish()
        result.jobs = job_rows(jobs)
        io.write_table(StudyLayout(spec.out).jobs_table, jobs_table(spec, result.jobs))
    report_dir = StudyLayout(spec.out).report
    result.report = report_dir if report_dir.exists() else None
    return result


# jobs.parquet's schema metadata key: the pipeline file and the --set overrides of the last run.
JOBS_METADATA_KEY = "spurspec.pipeline"


def jobs_table(spec: specs.PipelineSpec, rows: list[dict[str, Any]]) -> pa.Table:
    """The job table, with what ran recorded in its metadata (read it back with `run_record`)."""
    record = {"pipeline": str(spec.path), "overrides": spec.overrides}
    return pa.Table.from_pylist(rows).replace_schema_metadata({JOBS_METADATA_KEY: json.dumps(record, default=str)})


def run_record(study: Path) -> dict[str, Any]:
    """{"pipeline": path, "overrides": {dotted key: value}} of the study's last run."""
    metadata = io.read_table(StudyLayout(study).jobs_table, "job table").schema.metadata or {}
    return json.loads(metadata.get(JOBS_METADATA_KEY.encode(), b"{}"))


def _todo(jobs: list[planning.Job], stage: str, force: bool) -> list[planning.Job]:
    mine = [j for j in jobs if j.stage == stage]
    status = {} if force else planning.statuses(mine)
    return [j for j in mine if force or status[j.id] != "done"]


def _check_upstream_done(jobs: list[planning.Job], selected: list[planning.Job]) -> None:
    by_id = {j.id: j for j in jobs}
    for job in selected:
        for dep in job.deps:
            if planning.status(by_id[dep]) != "done":
                raise ConfigError(f"{job.id} needs {dep}, which has not run; run its stage first (or drop --only)")


