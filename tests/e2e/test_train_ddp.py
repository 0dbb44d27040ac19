"""`spurspec train` under torchrun: two CPU processes with the gloo backend train one run; only
rank 0 writes, the log's image count covers both ranks, and the result predicts like any run."""

from __future__ import annotations

import os
import subprocess
import sys

import pyarrow.parquet as pq
import pytest
import torch
from tiny_dataset import make

from spurspec.artefacts.layout import RunLayout

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def test_torchrun_two_processes_gloo(tmp_path):
    dataset = make(tmp_path / "ds")
    run = RunLayout(tmp_path / "run")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           "-m", "spurspec.cli.main", "train", str(dataset), "--granularity", "seg", "--out", str(run.root),
           "--epochs", "2", "--batch-size", "4", "--workers", "0", "--device", "cpu", "--balance", "none"]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count("finished") == 1  # rank 0 alone reports
    assert run.done.exists()
    log = pq.read_table(run.train_log).to_pylist()
    assert len(log) == 2 and all(0 <= r["val_auroc"] <= 1 for r in log)
    state = torch.load(run.checkpoint("last"), weights_only=True)
    assert state["epoch"] == 1
    # the reduced image count covers both ranks' halves: 24 training images per epoch
    assert log[0]["images_per_s"] * log[0]["epoch_seconds"] == pytest.approx(24)
    from spurspec.training.predict import predict_split

    assert predict_split(run.root, "test", n_saliency=0).predictions.num_rows == 8 * 5
    leftovers = [p.name for p in run.root.rglob("*") if p.name.startswith(".")]
    assert not leftovers
