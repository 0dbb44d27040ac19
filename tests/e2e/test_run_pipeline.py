"""`spurspec run` end to end on a tiny synthetic study: every stage through the real CLI, a
re-run that skips finished jobs, an interrupted sweep resumed without redoing finished jobs,
the Slurm path through submitit's local executor, the dry run's sbatch preview, and `--set`
overrides. (Every shipped pipeline run end to end: test_shipped_pipelines.py.)"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[2]

TINY = """
[study]
name = "tiny"

[datasets.syn]
source = "synthetic"
n = 80
size = 32
seed = 0

[train]
granularities = ["binary", "seg", "grid:4"]
seeds = [0]
epochs = {epochs}
batch_size = 16
workers = 0

[evaluate]
bootstrap = 50
n_saliency = 2

[report]
title = "tiny"
"""


def _pipeline(tmp_path: Path, epochs: int = 1) -> Path:
    path = tmp_path / "tiny.toml"
    path.write_text(TINY.format(epochs=epochs))
    return path


def _mtimes(study: Path, pattern: str) -> dict[str, int]:
    return {str(p.relative_to(study)): p.stat().st_mtime_ns for p in study.glob(pattern)}


@pytest.mark.slow
def test_run_all_stages_then_rerun_skips_everything(cli, tmp_path):
    study = tmp_path / "study"
    result = cli(["run", _pipeline(tmp_path), "--out", study])
    assert "robust AUROC" in result.stdout and "report.html" in result.stdout
    jobs = pq.read_table(study / "jobs.parquet").to_pylist()
    assert {j["stage"] for j in jobs} == {"ingest", "boxes", "train", "evaluate", "report"}
    assert all(j["status"] == "done" for j in jobs)
    assert (study / "report" / "report.html").exists()
    # The report directory holds the report only: no hash-named job folder inside it.
    assert sorted(p.name for p in (study / "report").iterdir() if p.is_dir()) == ["figures", "provenance"]
    n = len(jobs)
    assert f"job 1 of {n}: ingest" in result.stdout and f"job {n} of {n}: report" in result.stdout
    assert f"{n}/{n} jobs done in" in result.stdout and "left" in result.stdout
    # the bar is drawn (not eaten as markup), and no time is guessed before a run of each kind is timed
    assert re.search(rf"^\[#+\.+\] 1/{n} jobs done in \S+, estimating…  \(ingest/", result.stdout, flags=re.M)
    last_train = max(i for i, line in enumerate(result.stdout.splitlines()) if "jobs done" in line and "(train/" in line)
    assert "estimating…" not in result.stdout.splitlines()[last_train]
    runs = sorted((study / "train").iterdir())
    assert len(runs) == 3 and all((r / "metrics.parquet").exists() for r in runs)
    before = _mtimes(study, "train/*/checkpoints/*.pt")
    again = cli(["run", _pipeline(tmp_path), "--out", study])
    assert "job 1 of" not in again.stdout  # nothing ran
    assert _mtimes(study, "train/*/checkpoints/*.pt") == before


@pytest.mark.slow
def test_interrupted_sweep_resumes_without_redoing_finished_jobs(tmp_path):
    study = tmp_path / "study"
    pipeline = _pipeline(tmp_path, epochs=3)
    cmd = [sys.executable, "-m", "spurspec.cli.main", "run", str(pipeline), "--out", str(study)]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(cmd, cwd=PROJECT_ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    deadline = time.time() + 240
    try:
        # Kill the whole sweep as soon as the first training job has finished.
        while not list(study.glob("train/*/done")):
            assert proc.poll() is None, "the sweep ended before it could be interrupted"
            assert time.time() < deadline, "no training job finished in time"
            time.sleep(0.05)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    finished = [p.parent for p in study.glob("train/*/done")]
    assert len(finished) == 1
    before = _mtimes(study, f"train/{finished[0].name}/checkpoints/*.pt")
    dry = subprocess.run(cmd + ["--dry-run"], cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, check=True)
    assert "done" in dry.stdout and "to do" in dry.stdout
    subprocess.run(cmd, cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, check=True)
    assert _mtimes(study, f"train/{finished[0].name}/checkpoints/*.pt") == before
    jobs = pq.read_table(study / "jobs.parquet").to_pylist()
    assert all(j["status"] == "done" for j in jobs)
    for run in (study / "train").iterdir():
        log = pq.read_table(run / "train_log.parquet").column("epoch").to_pylist()
        assert log == [0, 1, 2], f"{run.name} trained epochs {log}"


@pytest.mark.slow
def test_slurm_path_through_submitit_local_executor(cli, tmp_path):
    study = tmp_path / "study"
    cli(["run", _pipeline(tmp_path), "--out", study, "--executor", "submitit-local"])
    jobs = pq.read_table(study / "jobs.parquet").to_pylist()
    assert all(j["status"] == "done" for j in jobs)
    # submitit wrote one log folder per stage, with the job's pickled call and its output.
    assert {p.name for p in (study / "logs").iterdir()} == {"ingest", "boxes", "train", "evaluate", "report"}
    assert list((study / "logs" / "train").rglob("*_log.out"))


def test_dry_run_shows_sbatch_and_runs_nothing(cli, tmp_path):
    study = tmp_path / "study"
    result = cli(["run", PROJECT_ROOT / "pipelines" / "siim-study.toml", "--out", study, "--dry-run", "--executor", "slurm"])
    assert "#SBATCH --gpus-per-node=1" in result.stdout
    assert "#SBATCH --array=0-23%12" in result.stdout  # 8 granularities x 3 seeds, 12 at once
    assert "afterok" in result.stdout
    assert "does not exist; a real run would stop here" in result.stdout
    assert not study.exists()


def test_slurm_without_slurm_fails_before_any_job(cli, tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # no sbatch/srun here
    study = tmp_path / "study"
    result = cli(["run", _pipeline(tmp_path), "--out", study, "--executor", "slurm"], expect=2)
    assert "needs Slurm's sbatch, srun, squeue on PATH" in result.stderr
    assert not study.exists()


def test_unknown_key_is_named_before_any_job(cli, tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text(TINY.format(epochs=1).replace("batch_size = 16", "batch_sise = 16"))
    result = cli(["run", path, "--out", tmp_path / "study"], expect=2)
    assert "batch_sise" in result.stderr and f"{path} [train]" in result.stderr
    assert not (tmp_path / "study").exists()


def test_set_overrides_the_file_before_any_check(cli, tmp_path):
    study = tmp_path / "study"
    result = cli(["run", _pipeline(tmp_path), "--out", study, "--dry-run",
                  "--set", 'train.granularities=["binary"]', "--set", "evaluate.bootstrap=20"])
    assert 'with --set train.granularities=["binary"], evaluate.bootstrap=20' in result.stdout
    assert "syn binary seed=0" in result.stdout and "grid:4" not in result.stdout and "boxes" not in result.stdout
    bad = cli(["run", _pipeline(tmp_path), "--out", study, "--set", "train.epochs=0"], expect=2)
    assert bad.stderr == f"error: {tmp_path / 'tiny.toml'} [train]: epochs must be at least 1, got 0\n"
    bad = cli(["run", _pipeline(tmp_path), "--out", study, "--set", "trian.epochs=2"], expect=2)
    assert bad.stderr.startswith("error: --set trian.epochs=2: unknown section [trian]") and bad.stderr.count("\n") == 1
    assert not study.exists()


def test_study_pipeline_with_its_paths_set_has_nothing_missing(cli, tmp_path):
    """siim-study's preset asks for ImageNet weights by name: not a path to check."""
    (tmp_path / "siim").mkdir()
    (tmp_path / "tubes.csv").write_text("ImageId,chest_tube\n")
    result = cli(["run", PROJECT_ROOT / "pipelines" / "siim-study.toml", "--out", tmp_path / "s", "--dry-run",
                  "--set", f"datasets.siim.root={tmp_path / 'siim'}", "--set", f"datasets.siim.tube_labels={tmp_path / 'tubes.csv'}"])
    assert "warning" not in result.stdout and "does not exist" not in result.stdout


@pytest.mark.parametrize("name", sorted(p.name for p in (PROJECT_ROOT / "pipelines").glob("*.toml")))
def test_shipped_pipelines_validate(cli, tmp_path, name):
    result = cli(["run", PROJECT_ROOT / "pipelines" / name, "--out", tmp_path / "s", "--dry-run"])
    assert "report" in result.stdout


@pytest.mark.slow
@pytest.mark.serial  # the job is signalled 15 s into each attempt: it must train an epoch by then
def test_timed_out_training_job_is_requeued_and_resumes(tmp_path):
    """When Slurm signals a job before its time limit (or preempts it), submitit checkpoints the
    call and requeues it; the requeued job resumes training from its last checkpoint. Exercised
    with submitit's local executor and a time limit far shorter than the training."""
    import submitit

    from spurspec.artefacts.layout import RunLayout
    from spurspec.pipeline import plan as planning
    from spurspec.pipeline import spec as specs
    from spurspec.pipeline.executors import _checkpointable_job
    from spurspec.pipeline.jobs import run_job

    path = tmp_path / "p.toml"
    path.write_text(TINY.format(epochs=60).replace("n = 80", "n = 400").replace("workers = 0", "workers = 0\npatience = 1000"))
    jobs = planning.plan(specs.load(path, out=tmp_path / "study"))
    run_job(next(j for j in jobs if j.stage == "ingest"))
    train = next(j for j in jobs if j.stage == "train" and j.settings["granularity"] == "binary")
    executor = submitit.LocalExecutor(folder=tmp_path / "logs" / "%j", max_num_timeout=20)
    # Signal at 20 s - 5 s = 15 s into each attempt: time for some epochs, not for all 60.
    executor.update_parameters(timeout_min=20 / 60, signal_delay_s=5)
    job = executor.submit(_checkpointable_job()(), train, False)
    assert job.result() == train.id
    out = job.stdout() or ""
    assert "Requeued" in out and "resuming" in out, out[-2000:]
    epochs = pq.read_table(RunLayout(train.dir).train_log).column("epoch").to_pylist()
    assert epochs == list(range(60))


@pytest.mark.slow
def test_multi_gpu_training_jobs_launch_through_torchrun(cli, tmp_path):
    """`gpus > 1` in [resources.train] runs the job's `spurspec train` under torchrun (here on the
    CPU with gloo, two processes): the run records a world size of 2."""
    import json

    text = TINY.format(epochs=1).replace('granularities = ["binary", "seg", "grid:4"]', 'granularities = ["binary"]')
    path = tmp_path / "ddp.toml"
    path.write_text(text + "\n[resources.train]\ngpus = 2\n")
    study = tmp_path / "study"
    cli(["run", path, "--out", study])
    (run,) = [p for p in (study / "train").iterdir() if p.is_dir()]
    record = json.loads((run / "provenance" / "train.json").read_text())
    assert record["settings"]["world_size"] == 2
    assert (run / "metrics.parquet").exists()


@pytest.mark.slow
def test_parallel_local_jobs_give_the_same_numbers_as_sequential(cli, tmp_path):
    pipeline = _pipeline(tmp_path)
    values = {}
    for workers in (1, 2):
        study = tmp_path / f"w{workers}"
        cli(["run", pipeline, "--out", study, "--workers", workers])
        tables = sorted((p.parent.name, pq.read_table(p)) for p in study.glob("train/*/metrics.parquet"))
        values[workers] = [(name, t.column("metric").to_pylist(), t.column("value").to_pylist()) for name, t in tables]
    assert len(values[1]) == 3 and values[1] == values[2]
