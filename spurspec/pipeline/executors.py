"""Where jobs run. `local`: in this process one after another, or N worker processes at once.
`slurm`: submitit job arrays (one per stage, capped parallelism, each stage depending on the
previous one, requeued on preemption and resumed from the checkpoint). `submitit-local`: the same
submitit path on this machine (submitit's LocalExecutor), for testing it without a cluster."""

from __future__ import annotations

import multiprocessing as mp
import os
import shutil
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

from spurspec import runtime
from spurspec.errors import ConfigError, SpurspecError
from spurspec.pipeline.jobs import run_job
from spurspec.pipeline.plan import Job
from spurspec.registry import Registry

EXECUTORS: Registry[Any] = Registry("executor")
# Defaults when the pipeline's [resources] leave a value out.
DEFAULT_TIME_MIN = 60
DEFAULT_CPUS = 4


class LocalExecutor:
    def __init__(self, workers: int = 1, **_: Any) -> None:
        self.workers = max(1, workers)

    def check(self) -> None:
        """Nothing to check: local jobs need only this machine."""

    def run_stage(self, stage: str, jobs: list[Job], force: bool, on_done: Callable[[str], None],
                  on_start: Callable[[Job], None] = lambda job: None) -> None:
        if self.workers == 1 or len(jobs) == 1:
            for job in jobs:
                on_start(job)
                on_done(run_job(job, force))
            return
        # 'spawn': each worker imports torch afresh instead of inheriting a forked one. Each gets
        # an equal share of the cores, so N jobs at once do not oversubscribe the machine.
        threads = max(1, runtime.allowed_cores() // self.workers)
        with ProcessPoolExecutor(max_workers=self.workers, mp_context=mp.get_context("spawn"),
                                 initializer=_share_cores, initargs=(threads,)) as pool:
            futures = []
            for job in jobs:  # announced as submitted: up to `workers` of them run at once
                on_start(job)
                futures.append(pool.submit(run_job, job, force))
            for fut in futures:
                on_done(fut.result())

    def finish(self) -> None:
        """Local jobs have finished by the time run_stage returns."""


def _share_cores(threads: int) -> None:
    """Worker initializer: cap the compute threads of torch and the BLAS libraries."""
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = str(threads)
    import torch

    torch.set_num_threads(threads)


def _checkpointable_job() -> type:
    import submitit

    class PipelineJob(submitit.helpers.Checkpointable):
        """On preemption or timeout submitit calls checkpoint(), which requeues the same call;
        run_job then resumes training from its last checkpoint."""

        def __call__(self, job: Job, force: bool) -> str:
            return run_job(job, force)

    return PipelineJob


def slurm_parameters(stage: str, jobs: list[Job], slurm: dict[str, Any]) -> dict[str, Any]:
    """submitit's Slurm parameters for one stage's array, from the pipeline's resources."""
    res = jobs[0].resources if jobs else {}
    params: dict[str, Any] = {
        "job_name": f"spurspec-{stage}",
        "time": int(res.get("time_min", DEFAULT_TIME_MIN)),
        "cpus_per_task": int(res.get("cpus", DEFAULT_CPUS)),
        "array_parallelism": int(slurm.get("array_parallelism", 16)),
        "signal_delay_s": int(slurm.get("signal_delay_s", 120)),
    }
    gpus = int(res.get("gpus", 0) or 0)
    if gpus:
        params["gpus_per_node"] = gpus
    for key in ("partition", "account", "qos", "constraint", "mem"):
        value = res.get(key, slurm.get(key))
        if value:
            params[key] = value
    if slurm.get("setup"):
        params["setup"] = list(slurm["setup"])
    return params


def sbatch_preview(stage: str, jobs: list[Job], slurm: dict[str, Any], folder: Path, dependency: str | None) -> str:
    """The sbatch script submitit would generate for this stage's array (for --dry-run)."""
    from submitit.slurm.slurm import _make_sbatch_string

    params = slurm_parameters(stage, jobs, slurm)
    return _make_sbatch_string(
        command="python -u -m submitit.core._submit " + str(folder / "%j"),
        folder=folder / "%j",
        map_count=len(jobs),
        dependency=dependency,
        **params,
    )


class SubmititExecutor:
    def __init__(self, folder: Path, cluster: str, slurm: dict[str, Any] | None = None, **_: Any) -> None:
        self.folder = Path(folder)
        self.cluster = cluster
        self.slurm = slurm or {}
        self._pending: list[tuple[list[Job], list[Any], Callable[[str], None]]] = []
        self._previous: list[Any] = []

    def check(self) -> None:
        try:
            import submitit  # noqa: F401
        except ImportError:
            raise ConfigError("the slurm executor needs submitit: pip install submitit") from None
        if self.cluster == "slurm":
            missing = [tool for tool in ("sbatch", "srun", "squeue") if shutil.which(tool) is None]
            if missing:
                raise ConfigError(f"the slurm executor needs Slurm's {', '.join(missing)} on PATH; "
                                  "run on a cluster login node, or use --executor local")

    def _executor(self, stage: str, jobs: list[Job]) -> Any:
        import submitit

        folder = self.folder / stage / "%j"
        if self.cluster != "slurm":
            executor = submitit.LocalExecutor(folder=folder)
            executor.update_parameters(timeout_min=int(jobs[0].resources.get("time_min", DEFAULT_TIME_MIN)))
            return executor
        executor = submitit.SlurmExecutor(folder=folder)
        params = slurm_parameters(stage, jobs, self.slurm)
        if self._previous:
            # Slurm starts this stage's array only after every job of the previous one succeeded.
            params["additional_parameters"] = {"dependency": "afterok:" + ":".join(j.job_id for j in self._previous)}
        executor.update_parameters(**params)
        return executor

    def run_stage(self, stage: str, jobs: list[Job], force: bool, on_done: Callable[[str], None],
                  on_start: Callable[[Job], None] = lambda job: None) -> None:
        executor = self._executor(stage, jobs)
        for job in jobs:  # announced as submitted: the scheduler decides when each starts
            on_start(job)
        callable_job = _checkpointable_job()()
        with executor.batch():
            submitted = [executor.submit(callable_job, job, force) for job in jobs]
        if self.cluster == "slurm":
            # Queue every stage now (chained by dependencies); wait for all of them in finish().
            self._pending.append((jobs, submitted, on_done))
            self._previous = submitted
            return
        # submitit's local executor knows no dependencies: wait for the stage before the next.
        self._collect(jobs, submitted, on_done)

    def _collect(self, jobs: list[Job], submitted: list[Any], on_done: Callable[[str], None]) -> None:
        for job, sub in zip(jobs, submitted, strict=True):
            try:
                on_done(sub.result())
            except Exception as exc:  # submitit re-raises the job's own failure with its log tail
                raise SpurspecError(f"{job.id} failed (logs under {self.folder}): {(str(exc).strip().splitlines() or [type(exc).__name__])[-1]}") from None

    def finish(self) -> None:
        for jobs, submitted, on_done in self._pending:
            self._collect(jobs, submitted, on_done)
        self._pending.clear()


EXECUTORS.add("local", lambda folder, workers, slurm: LocalExecutor(workers=workers))
EXECUTORS.add("slurm", lambda folder, workers, slurm: SubmititExecutor(folder, "slurm", slurm))
EXECUTORS.add("submitit-local", lambda folder, workers, slurm: SubmititExecutor(folder, "local", slurm))
