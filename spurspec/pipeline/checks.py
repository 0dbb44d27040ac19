"""A planned study checked whole before any job starts (a dry run too): every job's config built as
the job will build it and checked by its stage's own check (jobs.validate), each distinct config
once, and what a training job needs of its dataset that the dataset's ingest settings already
say (the pixel models' image size). An error names the pipeline file and the table its value
came from. Reads no file (the checks ask at most whether a probe's overlay file exists; the
inputs that must exist: plan.check_inputs); writes nothing."""

from __future__ import annotations

import dataclasses
from typing import Any

from spurspec.pipeline.jobs import config_of, validate
from spurspec.pipeline.plan import Job
from spurspec.pipeline.spec import PipelineSpec, named
from spurspec.training.data import granularity
from spurspec.training.models import check_pixel_size

# A job's own directory: different in every job, and no stage's check reads more of it than that
# it is given, so jobs alike in every other setting share one check.
OWN_DIRECTORY = {"train": "out", "evaluate": "run", "probe": "run"}


def check_jobs(spec: PipelineSpec, jobs: list[Job]) -> dict[str, Any]:
    """Check every job, ingest first (jobs come in stage order), or raise the first error; returns
    each job's checked config by job id (what the progress line sizes a job by)."""
    checker = _Checker(spec)
    return {job.id: checker.check(job) for job in jobs}


class _Checker:
    """Remembers what it checked: a 10,000-job matrix holds a few distinct configs per seed."""

    def __init__(self, spec: PipelineSpec) -> None:
        self.spec = spec
        self.checked: dict[str, Any] = {}  # settings apart from own directory -> checked config
        self.built: dict[str, Any] = {}  # settings apart from own directory and seed -> config
        self.ingest: dict[str, tuple[Any, str]] = {}  # ingest job id -> its config and table

    def check(self, job: Job) -> Any:
        """The job's config, checked (a config alike but for the job's own directory was checked
        once: it is returned as is, its directory another job's)."""
        own = OWN_DIRECTORY.get(job.stage)
        key = _key(job, (own,))
        if key in self.checked:
            return self.checked[key]
        with named(f"{self.spec.path} [{job.table}]"):
            cfg = validate(job, self._config(job, own))
        if job.stage == "ingest":
            self.ingest[job.id] = (cfg, job.table)
        if job.stage == "train":
            self._pixel_size(job, cfg)
        self.checked[key] = cfg
        return cfg

    def _config(self, job: Job, own: str | None) -> Any:
        """The job's config. Building one resolves its class's type hints (0.7 ms for training's,
        most of a large plan's time), so a config is built once per distinct settings apart from
        the job's own directory and seed, and each seed set on it: spec.load has checked that
        seeds are whole numbers, all a build would check of them."""
        if "seed" not in job.settings:
            return config_of(job)
        base = _key(job, (own, "seed"))
        if base not in self.built:
            self.built[base] = config_of(job)
        return dataclasses.replace(self.built[base], seed=job.settings["seed"])

    def _pixel_size(self, job: Job, cfg: Any) -> None:
        """A pixel model's image size, which its dataset's ingest settings already state."""
        if granularity.parse(cfg.granularity).pixel:
            ingest, table = self.ingest[job.deps[0]]  # plan: a training job depends on its ingest first
            check_pixel_size(ingest.size, f"{self.spec.path} [{table}]")


def _key(job: Job, skip: tuple[str | None, ...]) -> str:
    """The job's stage and settings, less `skip`, as text (a repr: 1, 1.0, True and "1" stay apart)."""
    return job.stage + repr(sorted((k, v) for k, v in job.settings.items() if k not in skip))
