"""Expands a pipeline spec into jobs: one ingest per dataset, one box derivation per dataset
that a box or grid granularity needs, the training matrix, one evaluation per training run and
one report. A job's directory is keyed by a hash of its logical settings (DomainBed-style), so a
re-run finds finished jobs by their `done` marker and re-runs only what changed."""

from __future__ import annotations

import hashlib
import itertools
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from spurspec.artefacts.layout import DONE_MARKER, RunLayout, StudyLayout
from spurspec.errors import ConfigError
from spurspec.pipeline.spec import STAGE_ORDER, PipelineSpec
from spurspec.training import granularity

# Option names that point at inputs which must exist before any job starts.
INPUT_PATH_OPTIONS = ("root", "table", "tube_labels", "labels", "artefacts", "trap_sets", "lesion_groups", "pretrained")


@dataclass(frozen=True)
class Job:
    stage: str
    key: str
    dir: Path
    settings: dict[str, Any]  # the stage config's fields, resolved (paths as strings)
    deps: tuple[str, ...] = ()
    label: str = ""
    resources: dict[str, Any] = field(default_factory=dict)

    @property
    def id(self) -> str:
        return f"{self.stage}/{self.key}"

    @property
    def done_marker(self) -> Path:
        return self.dir / DONE_MARKER


def job_hash(stage: str, logical: dict[str, Any]) -> str:
    blob = json.dumps({"stage": stage, **logical}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:10]


def _slug(*parts: object) -> str:
    text = "-".join(str(p) for p in parts if p is not None and p != "")
    return "".join(c if c.isalnum() or c in "-._" else "_" for c in text)


def plan(spec: PipelineSpec) -> list[Job]:
    study = StudyLayout(spec.out)
    jobs: list[Job] = []
    res = lambda stage: {**spec.resources.get("default", {}), **spec.resources.get(stage, {})}  # noqa: E731

    ingest_of: dict[str, Job] = {}
    for ds in spec.datasets.values():
        logical = {"source": ds.source, "options": ds.options}
        key = _slug(ds.name, job_hash("ingest", logical))
        job = Job("ingest", key, study.job("ingest", key), {"source": ds.source, **ds.options, "out": str(study.job("ingest", key))},
                  label=f"{ds.name} ({ds.source})", resources=res("ingest"))
        ingest_of[ds.name] = job
        jobs.append(job)

    m = spec.train_matrix
    # Parsing here also refuses a bad granularity (grid:0) with training's own message.
    grans = {str(g): granularity.parse(str(g)) for g in m["granularities"]}
    boxes_of: dict[str, Job] = {}
    grids = sorted({g.grid for g in grans.values() if g.grid})
    if any(g.needs_boxes for g in grans.values()):
        for name in m["datasets"]:
            ing = ingest_of[name]
            logical = {"dataset": ing.key, "options": spec.boxes, "grids": grids}
            key = _slug(name, job_hash("boxes", logical))
            settings = {**spec.boxes, "dataset": ing.settings["out"]}
            if grids:
                settings["grids"] = sorted(set(settings.get("grids", [])) | set(grids))
            boxes_of[name] = Job("boxes", key, study.job("boxes", key), settings, deps=(ing.id,),
                                 label=f"{name} boxes", resources=res("boxes"))
            jobs.append(boxes_of[name])

    train_jobs: list[Job] = []
    axes = [(k, m.get(k, [None])) for k in ("datasets", "granularities", "seeds", "mask_budgets", "methods")]
    for combo in itertools.product(*(values for _, values in axes)):
        ds_name, gran, seed, budget, method = combo
        ing = ingest_of[ds_name]
        matrix = {"granularity": gran, "seed": seed, "mask_budget": budget, "method": method}
        matrix = {k: v for k, v in matrix.items() if v is not None}
        logical = {"dataset": ing.key, **matrix, "options": spec.train_options}
        key = _slug(ds_name, str(gran).replace(":", ""), f"s{seed}" if seed is not None else None,
                    f"b{budget}" if budget is not None else None, method, job_hash("train", logical))
        deps = [ing.id] + ([boxes_of[ds_name].id] if grans[str(gran)].needs_boxes else [])
        run_dir = study.job("train", key)
        settings = {**spec.train_options, **matrix, "dataset": ing.settings["out"], "out": str(run_dir)}
        job = Job("train", key, run_dir, settings, deps=tuple(deps), label=f"{ds_name} {gran} seed={seed}"
                  + (f" budget={budget}" if budget is not None else "") + (f" {method}" if method else ""),
                  resources=res("train"))
        train_jobs.append(job)
    jobs += train_jobs

    eval_jobs = []
    for tj in train_jobs:
        logical = {"train": tj.key, "options": spec.evaluate}
        key = _slug(tj.key, job_hash("evaluate", logical))
        eval_jobs.append(Job("evaluate", key, study.job("evaluate", key), {**spec.evaluate, "run": str(tj.dir)},
                             deps=(tj.id,), label=tj.label, resources=res("evaluate")))
    jobs += eval_jobs

    logical = {"evaluate": sorted(j.key for j in eval_jobs), "options": spec.report}
    key = job_hash("report", logical)
    jobs.append(Job("report", key, study.job("report", key),
                    {**spec.report, "runs": [str(t.dir) for t in train_jobs], "out": str(study.report)},
                    deps=tuple(j.id for j in eval_jobs), label="report", resources=res("report")))
    return jobs


def status(job: Job) -> str:
    """'done' (marker present), 'resume' (a training run with a last checkpoint), or 'to do'."""
    if job.done_marker.exists():
        return "done"
    if job.stage == "train" and RunLayout(job.dir).checkpoint("last").exists():
        return "resume"
    return "to do"


def check_inputs(spec: PipelineSpec) -> None:
    """Inputs named by dataset options must exist before anything starts."""
    for ds in spec.datasets.values():
        for opt in INPUT_PATH_OPTIONS:
            value = ds.options.get(opt)
            if isinstance(value, str) and not Path(value).exists():
                raise ConfigError(f"{spec.path} [datasets.{ds.name}]: {opt} = {value!r} does not exist")
    value = spec.train_options.get("pretrained")
    if isinstance(value, str) and not Path(value).exists():
        raise ConfigError(f"{spec.path} [train]: pretrained = {value!r} does not exist")


def select(jobs: list[Job], only: str | None) -> list[Job]:
    if only is None:
        return jobs
    if only not in STAGE_ORDER:
        raise ConfigError(f"unknown stage {only!r}; valid: {', '.join(STAGE_ORDER)}")
    return [j for j in jobs if j.stage == only]
