"""Expands a pipeline spec into jobs: one ingest per dataset, one box derivation per dataset
that a box or grid granularity needs, the training matrix (a product of axes, or datasets x
seeds x arms; either way a job is keyed by the same settings), one evaluation per training run, its
reliance probes when the study has a [probe] table, and one report. A job's directory is keyed
by a hash of its logical settings (DomainBed-style), so a re-run finds finished jobs by their
`done` marker and re-runs only what changed."""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from spurspec.artefacts.layout import DONE_MARKER, RunLayout, StudyLayout
from spurspec.errors import ConfigError
from spurspec.pipeline.spec import STAGE_ORDER, Arm, PipelineSpec, named
from spurspec.training.data import granularity

# Dataset options that point at inputs which must exist before any job starts ([train]
# pretrained is checked apart: it may name weights rather than a file).
INPUT_PATH_OPTIONS = ("root", "table", "tube_labels", "labels", "artefacts", "trap_sets", "lesion_groups")


@dataclass(frozen=True)
class Job:
    stage: str
    key: str
    dir: Path
    settings: dict[str, Any]  # the stage config's fields, resolved (paths as strings)
    deps: tuple[str, ...] = ()
    label: str = ""
    resources: dict[str, Any] = field(default_factory=dict)
    table: str = ""  # the pipeline file's table its settings come from (datasets.NAME, train, ...), for messages

    @property
    def id(self) -> str:
        return f"{self.stage}/{self.key}"

    @property
    def done_marker(self) -> Path:
        return self.dir / DONE_MARKER


def job_hash(stage: str, logical: dict[str, Any]) -> str:
    blob = json.dumps({"stage": stage, **logical}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:10]


# What _slug keeps of ASCII text: str.isalnum's ASCII letters and digits, and "-._".
_ASCII_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


def _slug(*parts: object) -> str:
    text = "-".join(str(p) for p in parts if p is not None and p != "")
    if text.isascii():  # the common case, at a regex's speed (a study may have 10,000 jobs)
        return _ASCII_UNSAFE.sub("_", text)
    return "".join(c if c.isalnum() or c in "-._" else "_" for c in text)


def plan(spec: PipelineSpec) -> list[Job]:
    """Every job of the study, in stage order: ingest, boxes, train, evaluate, probe, report."""
    cells = train_cells(spec)
    # Parsing here also refuses a bad granularity (grid:0) with training's own message.
    with named(f"{spec.path} [train]"):
        grans = {name: granularity.parse(name) for name in dict.fromkeys(str(arm.granularity) for _, arm, _ in cells)}
    ingest_of = _ingest_jobs(spec)
    boxes_of = _boxes_jobs(spec, ingest_of, grans)
    train_jobs = _train_jobs(spec, cells, ingest_of, boxes_of, grans)
    eval_jobs = _evaluate_jobs(spec, train_jobs)
    probe_jobs = _probe_jobs(spec, train_jobs, eval_jobs)
    return [*ingest_of.values(), *boxes_of.values(), *train_jobs, *eval_jobs, *probe_jobs,
            _report_job(spec, train_jobs, eval_jobs, probe_jobs)]


def _resources(spec: PipelineSpec, stage: str) -> dict[str, Any]:
    """[resources.default] overlaid with [resources.STAGE]."""
    return {**spec.resources.get("default", {}), **spec.resources.get(stage, {})}


def _ingest_jobs(spec: PipelineSpec) -> dict[str, Job]:
    """One ingest per declared dataset, by dataset name."""
    study = StudyLayout(spec.out)
    jobs = {}
    for ds in spec.datasets.values():
        key = _slug(ds.name, job_hash("ingest", {"source": ds.source, "options": ds.options}))
        out = study.job("ingest", key)
        jobs[ds.name] = Job("ingest", key, out, {"source": ds.source, **ds.options, "out": str(out)},
                            label=f"{ds.name} ({ds.source})", resources=_resources(spec, "ingest"), table=f"datasets.{ds.name}")
    return jobs


def _boxes_jobs(spec: PipelineSpec, ingest_of: dict[str, Job], grans: dict[str, granularity.Granularity]) -> dict[str, Job]:
    """One box derivation per trained dataset when a box or grid granularity needs it, with every
    grid the matrix asks for added to [boxes] grids."""
    if not any(g.needs_boxes for g in grans.values()):
        return {}
    study = StudyLayout(spec.out)
    grids = sorted({g.grid for g in grans.values() if g.grid})
    jobs = {}
    for name in spec.train_matrix["datasets"]:
        ing = ingest_of[name]
        key = _slug(name, job_hash("boxes", {"dataset": ing.key, "options": spec.boxes, "grids": grids}))
        settings = {**spec.boxes, "dataset": ing.settings["out"]}
        if grids:
            settings["grids"] = sorted(set(settings.get("grids", [])) | set(grids))
        jobs[name] = Job("boxes", key, study.job("boxes", key), settings, deps=(ing.id,),
                         label=f"{name} boxes", resources=_resources(spec, "boxes"), table="boxes")
    return jobs


def train_cells(spec: PipelineSpec) -> list[tuple[str, Arm, int | None]]:
    """(dataset, arm, seed) of every training job. The product form in its own order (datasets x
    granularities x seeds x mask budgets x methods); arms as datasets x seeds x arms, so every
    arm's first seed trains before any second seed and a partial study already compares them all."""
    m = spec.train_matrix
    if spec.train_arms:
        return [(ds, arm, seed) for ds, seed, arm in itertools.product(m["datasets"], m.get("seeds", [None]), spec.train_arms)]
    axes = [m.get(k, [None]) for k in ("datasets", "granularities", "seeds", "mask_budgets", "methods")]
    return [(ds, Arm(gran, method, budget), seed) for ds, gran, seed, budget, method in itertools.product(*axes)]


def _train_jobs(spec: PipelineSpec, cells: list[tuple[str, Arm, int | None]], ingest_of: dict[str, Job],
                boxes_of: dict[str, Job], grans: dict[str, granularity.Granularity]) -> list[Job]:
    """One training job per cell, keyed by its dataset, granularity, seed, mask budget and method
    (an arm's name only labels it), so both forms of a matrix give one job one key."""
    root, resources = StudyLayout(spec.out).stage_dir("train"), _resources(spec, "train")
    jobs = []
    for ds_name, arm, seed in cells:
        ing = ingest_of[ds_name]
        gran, budget, method = arm.granularity, arm.mask_budget, arm.method
        # train_fraction and weight_decay only where an arm sets them, so every other job keeps its key
        matrix = {"granularity": gran, "seed": seed, "mask_budget": budget, "method": method,
                  "train_fraction": arm.train_fraction, "weight_decay": arm.weight_decay}
        matrix = {k: v for k, v in matrix.items() if v is not None}
        logical = {"dataset": ing.key, **matrix, "options": spec.train_options}
        key = _slug(ds_name, str(gran).replace(":", ""), f"s{seed}" if seed is not None else None,
                    f"b{budget}" if budget is not None else None,
                    f"f{arm.train_fraction}" if arm.train_fraction is not None else None, method, job_hash("train", logical))
        deps = (ing.id, boxes_of[ds_name].id) if grans[str(gran)].needs_boxes else (ing.id,)
        run_dir = root / key
        settings = {**spec.train_options, **matrix, "dataset": ing.settings["out"], "out": str(run_dir)}
        label = (f"{ds_name} {gran} seed={seed}" + (f" budget={budget}" if budget is not None else "")
                 + (f" fraction={arm.train_fraction}" if arm.train_fraction is not None else "")
                 + (f" weight_decay={arm.weight_decay:g}" if arm.weight_decay is not None else "")
                 + (f" {method}" if method else "") + (f" ({arm.name})" if arm.name else ""))
        jobs.append(Job("train", key, run_dir, settings, deps=deps, label=label, resources=resources, table="train"))
    return jobs


def _evaluate_jobs(spec: PipelineSpec, train_jobs: list[Job]) -> list[Job]:
    """One evaluation per training run."""
    root, resources = StudyLayout(spec.out).stage_dir("evaluate"), _resources(spec, "evaluate")
    jobs = []
    for tj in train_jobs:
        key = _slug(tj.key, job_hash("evaluate", {"train": tj.key, "options": spec.evaluate}))
        jobs.append(Job("evaluate", key, root / key, {**spec.evaluate, "run": str(tj.dir)},
                        deps=(tj.id,), label=tj.label, resources=resources, table="evaluate"))
    return jobs


def _probe_jobs(spec: PipelineSpec, train_jobs: list[Job], eval_jobs: list[Job]) -> list[Job]:
    """With a [probe] table, the reliance probes of each evaluated run (written into the run)."""
    if spec.probe is None:
        return []
    root, resources = StudyLayout(spec.out).stage_dir("probe"), _resources(spec, "probe")
    jobs = []
    for tj, ej in zip(train_jobs, eval_jobs, strict=True):
        key = _slug(tj.key, job_hash("probe", {"evaluate": ej.key, "options": spec.probe}))
        jobs.append(Job("probe", key, root / key, {**spec.probe, "run": str(tj.dir)},
                        deps=(ej.id,), label=tj.label, resources=resources, table="probe"))
    return jobs


def _report_job(spec: PipelineSpec, train_jobs: list[Job], eval_jobs: list[Job], probe_jobs: list[Job]) -> Job:
    """One report over every evaluated run, after their probes when the study has any."""
    study = StudyLayout(spec.out)
    logical = {"evaluate": sorted(j.key for j in eval_jobs), "options": spec.report}
    if probe_jobs:  # only then, so a study without probes keeps its report's key
        logical["probe"] = sorted(j.key for j in probe_jobs)
    key = job_hash("report", logical)
    # Its done marker lives in a job directory of its own, not inside the report it writes.
    return Job("report", key, study.report_job(key),
               {**spec.report, "runs": [str(t.dir) for t in train_jobs], "out": str(study.report)},
               deps=tuple(j.id for j in [*eval_jobs, *probe_jobs]), label="report", resources=_resources(spec, "report"),
               table="report")


def status(job: Job) -> str:
    """'done' (marker present), 'resume' (a training run with a last checkpoint), or 'to do'."""
    if job.done_marker.exists():
        return "done"
    if job.stage == "train" and RunLayout(job.dir).checkpoint("last").exists():
        return "resume"
    return "to do"


def statuses(jobs: list[Job]) -> dict[str, str]:
    """`status` of every job by id, asking the file system only about job directories that exist:
    each folder that holds job directories is listed once, so a study's jobs that never started
    (all 10,000 of a new one) cost no stat each."""
    listed: dict[Path, set[str]] = {}
    out = {}
    for job in jobs:
        parent = job.dir.parent
        if parent not in listed:
            listed[parent] = set(os.listdir(parent)) if parent.is_dir() else set()
        out[job.id] = status(job) if job.dir.name in listed[parent] else "to do"
    return out


def check_inputs(spec: PipelineSpec) -> None:
    """Inputs named by dataset options must exist before anything starts."""
    for ds in spec.datasets.values():
        for opt in INPUT_PATH_OPTIONS:
            value = ds.options.get(opt)
            if isinstance(value, str) and not Path(value).exists():
                raise ConfigError(f"{spec.path} [datasets.{ds.name}]: {opt} = {value!r} does not exist")
    weights = _weights_file(spec)
    if weights is not None and not Path(weights).exists():
        raise ConfigError(f"{spec.path} [train]: pretrained = {str(weights)!r} does not exist")


def _weights_file(spec: PipelineSpec) -> str | Path | None:
    """The local weights file training starts from, with a preset's value applied: None when the
    encoders start from ImageNet's weights (fetched by name, not a path) or from random ones."""
    from spurspec.config import build
    from spurspec.training.config import TrainConfig, pretrained_source
    from spurspec.training.models.choices import IMAGENET

    source = pretrained_source(build(TrainConfig, spec.train_options, where=f"{spec.path} [train]"))
    return None if source is None or str(source) == IMAGENET else source


def select(jobs: list[Job], only: str | None) -> list[Job]:
    if only is None:
        return jobs
    if only not in STAGE_ORDER:
        raise ConfigError(f"unknown stage {only!r}; valid: {', '.join(STAGE_ORDER)}")
    return [j for j in jobs if j.stage == only]
