"""Runs one pipeline job by calling the stage's library function (the same one the CLI
command calls), then writes the job's `done` marker last. Executors (local processes, Slurm
through submitit) only ever call `run_job`, so a job behaves the same wherever it runs."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from spurspec.artefacts import io
from spurspec.artefacts.layout import RunLayout, StudyLayout
from spurspec.config import build, dumps_toml
from spurspec.errors import ConfigError, SpurspecError
from spurspec.pipeline.plan import Job
from spurspec.registry import Registry


@dataclass(frozen=True)
class Stage:
    """How a pipeline runs one stage: build its config from a job's settings, check it with the
    stage's own `check` (the one its library function calls first, so a pipeline refuses what
    the command refuses), both at plan time before any job starts; then call the library
    function with it."""

    config: Callable[[Job], Any]
    check: Callable[[Job, Any], None]
    run: Callable[[Job, Any, bool], None]


STAGE_RUNNERS: Registry[Stage] = Registry("pipeline stage")


def _settings_of(module: str, cls: str) -> Callable[[Job], Any]:
    """A stage whose job settings are exactly the fields of one config class (imported lazily).
    Its errors name no job: checks.py names the pipeline file and table the settings came from."""

    def config(job: Job) -> Any:
        return build(getattr(importlib.import_module(module), cls), job.settings)

    return config


def _check_of(module: str) -> Callable[[Job, Any], None]:
    """The stage module's `check(cfg)` (imported lazily); what it returns is not needed here."""

    def check(job: Job, cfg: Any) -> None:
        importlib.import_module(module).check(cfg)

    return check


def _ingest_config(job: Job) -> Any:
    from spurspec.datasets import get_source

    settings = dict(job.settings)
    module = get_source(settings.pop("source"))
    return build(module.Config, settings)


def _ingest_check(job: Job, cfg: Any) -> None:
    from spurspec.datasets import get_source

    get_source(job.settings["source"]).check(cfg)


def _ingest_run(job: Job, cfg: Any, force: bool) -> None:
    from spurspec.datasets import get_source

    get_source(job.settings["source"]).ingest(cfg, force=force)


def _train_check(job: Job, cfg: Any) -> None:
    """Training's own check, and the mask budget's own rules (a count >= 0 or a fraction in (0, 1]),
    which training applies only once the dataset is open to count its masks: here there is no
    bound on the count yet, so only its form is checked."""
    from spurspec.training.checks import check
    from spurspec.training.data import budget

    check(cfg)
    budget.resolve_count(cfg.mask_budget, available=sys.maxsize)
    if cfg.epochs_this_run is not None:
        # A paused run would be marked done and evaluated as if it had finished.
        raise ConfigError("epochs_this_run pauses a run, and a pipeline trains each run to its end (a killed or "
                          "requeued job resumes from its checkpoint on the next `spurspec run`): leave it out")


def _boxes_run(job: Job, cfg: Any, force: bool) -> None:
    from spurspec.datasets.boxes import derive_boxes

    derive_boxes(cfg, force=force)


def _train_run(job: Job, cfg: Any, force: bool) -> None:
    from spurspec.training import train

    run = RunLayout(job.dir)
    resume = run.checkpoint("last").exists() and not force
    # A directory with no checkpoint holds nothing worth resuming (killed before epoch 1).
    start_over = force or (job.dir.exists() and not resume)
    gpus = int(job.resources.get("gpus", 0) or 0)
    if gpus > 1:
        _torchrun_train(job, gpus, resume=resume, force=start_over)
    else:
        train(cfg, resume=resume, force=start_over, progress=True)


def _torchrun_train(job: Job, gpus: int, resume: bool, force: bool) -> None:
    """Multi-GPU training: the same `spurspec train` command under torchrun, settings via TOML."""
    settings = dict(job.settings)
    dataset, out = settings.pop("dataset"), settings.pop("out")
    cfg_path = StudyLayout(job.dir.parent.parent).launch_config(job.key)
    io.write_text(cfg_path, dumps_toml(settings))
    cmd = [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={gpus}",
           "-m", "spurspec.cli.main", "train", dataset, "--out", out, "--config", str(cfg_path)]
    cmd += ["--resume"] if resume else (["--force"] if force else [])
    proc = subprocess.run(cmd, env={**os.environ, "PYTHONUNBUFFERED": "1"}, check=False)
    if proc.returncode != 0:
        raise SpurspecError(f"{job.id}: torchrun training exited with {proc.returncode}")


def _evaluate_run(job: Job, cfg: Any, force: bool) -> None:
    from spurspec.evaluation.evaluate import evaluate

    # This job runs only when its marker is missing, i.e. the training run may be new: re-score.
    evaluate(cfg, force=True)


def _probe_run(job: Job, cfg: Any, force: bool) -> None:
    from spurspec.probes.stage import probe

    # This job runs only when its marker is missing: its run was (re-)evaluated, so probe again.
    probe(cfg, force=True)


def _report_run(job: Job, cfg: Any, force: bool) -> None:
    from spurspec.report.build import build_report

    # The job runs only when its marker is missing: its runs were (re-)evaluated, so rebuild.
    build_report(cfg, force=True)


STAGE_RUNNERS.add("ingest", Stage(_ingest_config, _ingest_check, _ingest_run))
STAGE_RUNNERS.add("boxes", Stage(_settings_of("spurspec.datasets.boxes", "DeriveBoxesConfig"),
                                 _check_of("spurspec.datasets.boxes"), _boxes_run))
STAGE_RUNNERS.add("train", Stage(_settings_of("spurspec.training", "TrainConfig"), _train_check, _train_run))
STAGE_RUNNERS.add("evaluate", Stage(_settings_of("spurspec.evaluation.evaluate", "EvaluateConfig"),
                                    _check_of("spurspec.evaluation.evaluate"), _evaluate_run))
STAGE_RUNNERS.add("probe", Stage(_settings_of("spurspec.probes.stage", "ProbeConfig"),
                                 _check_of("spurspec.probes.stage"), _probe_run))
STAGE_RUNNERS.add("report", Stage(_settings_of("spurspec.report.settings", "ReportConfig"),
                                  _check_of("spurspec.report.settings"), _report_run))


def config_of(job: Job) -> Any:
    """The job's config, built from its settings as the job builds it when it runs."""
    return STAGE_RUNNERS.get(job.stage).config(job)


def validate(job: Job, cfg: Any = None) -> Any:
    """Check the job's config (built from its settings unless given) with its stage's own check,
    so a bad key or value fails before any job starts, with the stage's own message; returns it."""
    cfg = config_of(job) if cfg is None else cfg
    STAGE_RUNNERS.get(job.stage).check(job, cfg)
    return cfg


def run_job(job: Job, force: bool = False) -> str:
    """Run one job unless its `done` marker exists (or `force`); returns the job id."""
    if job.done_marker.exists() and not force:
        return job.id
    stage = STAGE_RUNNERS.get(job.stage)
    stage.run(job, stage.config(job), force)
    job.dir.mkdir(parents=True, exist_ok=True)
    io.write_text(job.done_marker, job.id + "\n")
    return job.id
