"""`make bench-gpu`'s script stays runnable where CI has no GPU: without CUDA it stops with one
line and exit code 2, and --allow-cpu runs its whole path (synthetic ingest, `train` per model x
granularity, the train_log read-out, the JSON) on a few tiny images."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the scripts beside this file
import bench_gpu  # noqa: E402


def test_without_cuda_it_stops_with_one_line(monkeypatch, capsys, tmp_path):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert bench_gpu.main(["--json", str(tmp_path / "gpu.json")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "no CUDA device" in err and "--allow-cpu" in err
    assert not (tmp_path / "gpu.json").exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="on a GPU machine the script measures the GPU")
def test_cpu_smoke_runs_the_same_path(tmp_path, capsys):
    out = tmp_path / "gpu.json"
    argv = ["--allow-cpu", "--images", "12", "--size", "32", "--batch", "2", "--epochs", "2", "--models", "small",
            "--granularities", "binary,seg", "--json", str(out)]
    assert bench_gpu.main(argv) == 0
    doc = json.loads(out.read_text())
    assert doc["benchmark"] == "gpu" and doc["results"]["cuda"] is False
    assert "CPU" in doc["results"]["device"] and doc["machine"]["cpu"]
    rows = doc["results"]["rows"]
    assert [(r["model"], r["granularity"]) for r in rows] == [("small", "binary"), ("small", "seg")]
    for r in rows:
        assert r["images_per_s"] > 0 and 0 <= r["data_wait_fraction"] < 1 and r["peak_memory_mib"] > 0
        assert len(r["epoch_images_per_s"]) == 2
    assert "| small     | seg " in capsys.readouterr().out
