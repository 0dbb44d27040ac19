"""Fault injection: each stage (ingest, train, evaluate, report and `spurspec run`) is started as
a real process and killed with SIGKILL at a random point after it has taken its output's lock
(so while it works); the same command run again must finish (taking over the dead process's
lock, removing its leftovers, resuming training) and leave every table, array and checkpoint
whole. The kill points are drawn from a seeded generator and named in any failure."""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
SPURSPEC = [sys.executable, "-m", "spurspec.cli.main"]
FAST = ["--batch-size", "8", "--workers", "0", "--device", "cpu"]
DRAW = random.Random(15)  # the kill points: reproducible, and different for every stage


def _spurspec(*args: object, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([*SPURSPEC, *map(str, args)], capture_output=True, text=True, cwd=cwd, env=env, timeout=600)


def _kill_while_working(args: list, lock: Path, window: float, cwd: Path) -> str:
    """Start `spurspec args`, wait until it holds `lock`, kill it `window`-random seconds later."""
    delay = DRAW.uniform(0, window)
    proc = subprocess.Popen([*SPURSPEC, *map(str, args)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=cwd,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    start = time.monotonic()
    while not lock.exists() and proc.poll() is None and time.monotonic() - start < 300:
        time.sleep(0.01)
    time.sleep(delay)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    return f"killed {delay:.2f} s after it took {lock.name} (exit {proc.returncode})"


def _rerun(args: list, cwd: Path, where: str) -> None:
    res = _spurspec(*args, cwd=cwd)
    assert res.returncode == 0, f"{where}; the rerun `spurspec {' '.join(map(str, args))}` failed:\n{res.stderr[-2000:]}"


def _whole(root: Path, where: str) -> None:
    """Every table, array and checkpoint under `root` reads; no temporary file or staging folder
    is left beside or inside it."""
    from spurspec.training import checkpoint

    for path in root.rglob("*.parquet"):
        pq.read_table(path)
    for path in root.rglob("*.npy"):
        np.load(path, mmap_mode="r")
    for path in root.rglob("*.pt"):
        checkpoint.load(path)
    leftovers = [*root.rglob(".*.tmp"), *root.parent.glob(f".{root.name}.staging-*"), *root.parent.glob(f".{root.name}.lock")]
    assert not leftovers, f"{where}: left {leftovers}"


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> Path:
    b = tmp_path_factory.mktemp("faults")
    for args in (["ingest", "synthetic", "--out", b / "ds", "--n", 64, "--size", 32],
                 ["train", b / "ds", "--out", b / "run", "--epochs", 1, *FAST],
                 ["evaluate", b / "run", "--bootstrap", 20, "--device", "cpu"]):
        _rerun(args, b, "setup")
    return b


def test_killed_ingest(tmp_path):
    from spurspec.artefacts.dataset import Dataset

    args = ["ingest", "synthetic", "--out", "ds", "--n", 600, "--size", 64]
    where = _kill_while_working(args, tmp_path / ".ds.lock", 1.5, tmp_path)
    _rerun(args, tmp_path, where)
    assert Dataset.open(tmp_path / "ds").manifest.num_rows == 600, where
    _whole(tmp_path / "ds", where)


def test_killed_train(base, tmp_path):
    from spurspec.artefacts.layout import RunLayout

    args = ["train", base / "ds", "--out", "run", "--epochs", 3, *FAST]
    where = _kill_while_working(args, tmp_path / ".run.lock", 3.0, tmp_path)
    _rerun([*args, "--resume"], tmp_path, where)  # what a requeued job does
    layout = RunLayout(tmp_path / "run")
    assert layout.done.exists() and pq.read_table(layout.train_log).num_rows == 3, where
    _whole(layout.root, where)


def test_killed_evaluate(base, tmp_path):
    from spurspec.artefacts.run import RunRecord

    run = shutil.copytree(base / "run", tmp_path / "run")
    for name in ("metrics.parquet", "predictions.parquet", "saliency.npz", "provenance/evaluate.json"):
        (run / name).unlink()  # a trained run, not yet evaluated
    args = ["evaluate", run, "--bootstrap", 200, "--device", "cpu"]
    where = _kill_while_working(args, tmp_path / ".run.lock", 4.0, tmp_path)
    _rerun(args, tmp_path, where)
    record = RunRecord.open(run)
    assert record.metrics.num_rows and record.predictions().num_rows, where
    _whole(Path(run), where)


def test_killed_report(base, tmp_path):
    args = ["report", base / "run", "--out", "rep"]
    where = _kill_while_working(args, tmp_path / ".rep.lock", 2.0, tmp_path)
    _rerun(args, tmp_path, where)
    assert (tmp_path / "rep" / "report.html").exists(), where
    _whole(tmp_path / "rep", where)


def test_killed_pipeline(tmp_path):
    pipeline = tmp_path / "p.toml"
    pipeline.write_text('[study]\nname = "f"\nout = "study"\n\n[datasets.syn]\nsource = "synthetic"\nn = 64\nsize = 32\n\n'
                        '[train]\ngranularities = ["binary"]\nseeds = [0]\nepochs = 1\nbatch_size = 8\n\n'
                        '[evaluate]\nbootstrap = 20\n')
    where = _kill_while_working(["run", pipeline], tmp_path / ".study.lock", 8.0, tmp_path)
    _rerun(["run", pipeline], tmp_path, where)
    jobs = pq.read_table(tmp_path / "study" / "jobs.parquet").to_pylist()
    assert {j["status"] for j in jobs} == {"done"}, where
    _whole(tmp_path / "study", where)
