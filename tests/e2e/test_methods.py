"""The pixel methods (every registered method whose card needs a pixel granularity: Seg-SSL,
Seg-SPL) end to end on tiny generated data: each trains at every pixel granularity through the
CLI (its terms in train_log.parquet, its state in the last checkpoint, the model predicted
without it), with the study preset, under torchrun, and through a pipeline file with a mask
budget sweep; a setting out of its range is refused before anything is written. What every
method keeps (resume, refusals, columns) is tests/e2e/test_method_contract.py's."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import torch
from tiny_dataset import make

from spurspec.artefacts.layout import RunLayout
from spurspec.training.methods import METHODS, log_columns

pytestmark = pytest.mark.e2e
FAST = ["--epochs", "1", "--batch-size", "8", "--workers", "0", "--device", "cpu"]
METHOD_NAMES = [name for name in METHODS.names() if "pixel" in METHODS.get(name).needs]


def budget(method: str) -> list[str]:
    """The tiny set has 12 masked training positives: a method that learns from positives
    without a mask keeps 4 masks and learns from 8 without."""
    return ["--mask-budget", "4"] if "unlabelled" in METHODS.get(method).needs else []


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    torch.set_num_threads(1)
    return make(tmp_path_factory.mktemp("methods") / "ds")


@pytest.mark.parametrize("gran", ["seg", "bbox", "grid:4"])
@pytest.mark.parametrize("method", METHOD_NAMES)
def test_method_trains_at_each_pixel_granularity_and_predicts(cli, dataset, tmp_path, method, gran):
    from spurspec.training.predict import predict_split

    run = RunLayout(tmp_path / "run")
    cli(["train", dataset, "--granularity", gran, "--method", method, "--out", run.root, *FAST, *budget(method)])
    (row,) = pq.read_table(run.train_log).to_pylist()
    own = [c.name for c in METHODS.get(method).columns]
    assert all(row[c] is not None for c in own), row
    assert all(row[c] is None for c in set(log_columns()) - set(own))
    cfg = tomllib.loads(run.config.read_text())
    assert cfg["method"] == method and all(s.key in cfg for s in METHODS.get(method).settings)
    assert torch.load(run.checkpoint("last"), weights_only=True)["method"]  # the teacher or the projection head
    assert "method" not in torch.load(run.checkpoint("best"), weights_only=True)  # scoring needs the model only
    settings = json.loads(run.provenance("train").read_text())["settings"]
    assert settings["unlabelled_train_images"] == (8 if budget(method) else 0)
    preds = predict_split(run.root, "test", n_saliency=0).predictions  # loads the model strictly
    assert set(preds.column("method").to_pylist()) == {method}


@pytest.mark.parametrize("method", METHOD_NAMES)
def test_method_trains_with_the_study_preset(cli, dataset, tmp_path, method):
    run = RunLayout(tmp_path / "run")
    cli(["train", dataset, "--granularity", "seg", "--method", method, "--preset", "study", "--pretrained", "none",
         "--model", "small", "--out", run.root, *FAST, *budget(method)])
    cfg = tomllib.loads(run.config.read_text())
    assert (cfg["preset"], cfg["augment"], cfg["loss"], cfg["method"]) == ("study", "study", "ce", method)
    (row,) = pq.read_table(run.train_log).to_pylist()
    assert all(row[c.name] is not None for c in METHODS.get(method).columns)


def test_a_setting_out_of_range_is_refused_before_writing(cli, dataset, tmp_path):
    res = cli(["train", dataset, "--granularity", "seg", "--method", "seg-ssl", "--out", tmp_path / "run", *FAST,
               "--mask-budget", "4", "--config", _toml(tmp_path, "ssl_threshold = 0.4")], expect=2)
    assert res.stderr.strip() == "error: ssl_threshold must be in (0.5, 1], got 0.4"
    assert not (tmp_path / "run").exists()


def _toml(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "settings.toml"
    path.write_text(text + "\n")
    return path


@pytest.mark.slow
@pytest.mark.parametrize("method", METHOD_NAMES)
def test_method_under_torchrun_two_processes_gloo(tmp_path, method):
    dataset = make(tmp_path / "ds")
    run = RunLayout(tmp_path / "run")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           "-m", "spurspec.cli.main", "train", str(dataset), "--granularity", "seg", "--method", method,
           "--out", str(run.root), "--epochs", "2", "--batch-size", "4", "--workers", "0", "--device", "cpu",
           *budget(method)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"}, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    log = pq.read_table(run.train_log).to_pylist()
    assert len(log) == 2 and all(r[c.name] is not None for r in log for c in METHODS.get(method).columns)
    assert json.loads(run.provenance("train").read_text())["settings"]["world_size"] == 2


PIPELINE = """
[study]
name = "budget"

[datasets.syn]
source = "synthetic"
n = 80
size = 32
seed = 0

[train]
granularities = ["seg"]
seeds = [0]
mask_budgets = [3, 6]
methods = ["erm", "seg-ssl", "seg-spl"]
epochs = 1
batch_size = 16
workers = 0

[evaluate]
bootstrap = 20
n_saliency = 0

[report]
title = "budget"
"""


@pytest.mark.slow
def test_mask_budget_sweep_through_a_pipeline_file(cli, tmp_path):
    path = tmp_path / "budget.toml"
    path.write_text(PIPELINE)
    study = tmp_path / "study"
    cli(["run", path, "--out", study])
    methods = {}
    for predictions in study.glob("train/*/predictions.parquet"):
        table = pq.read_table(predictions)
        (method,) = set(table.column("method").to_pylist())
        kept = sum(pq.read_table(predictions.parent / "mask_budget.parquet").column("kept").to_pylist())
        methods.setdefault(method, set()).add(kept)
    assert methods == {"erm": {3, 6}, "seg-ssl": {3, 6}, "seg-spl": {3, 6}}
    report = (study / "report" / "report.md").read_text()
    assert "seg-ssl" in report and "seg-spl" in report
