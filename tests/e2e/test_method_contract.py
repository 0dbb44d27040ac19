"""The contract every registered training method keeps, run over every name in methods.METHODS
(no list of methods here) on tiny generated data through the real CLI: it trains two steps (two
epochs of one batch), logs its card's train_log columns with their types and leaves every other
method's null; a run paused after one epoch and resumed ends exactly where the uninterrupted run
does (weights, method state, log, best checkpoint, its own tables); and each need its card
declares is refused, when the data lacks it, with one `error:` line naming the need and exit 2,
before anything is written. How to give a method what it needs, or take it away, is keyed by
need (NEEDS), so a new method with known needs is tested the moment its card is registered."""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import torch
from tiny_dataset import make

from spurspec.artefacts.layout import RunLayout
from spurspec.training.methods import METHODS, NEEDS, TRAIN_LOG, log_columns

pytestmark = pytest.mark.e2e
NAMES = METHODS.names()
# Two epochs of one step: the batch holds every training image (60 of the 100 below).
FAST = ["--epochs", "2", "--batch-size", "64", "--workers", "0", "--device", "cpu"]
# Train-log columns that time the run: equal only by chance between two runs.
TIMING = {"images_per_s", "data_wait_fraction", "epoch_seconds"}


@pytest.fixture(scope="module")
def datasets(tmp_path_factory) -> dict[str, Path]:
    """The tiny set that serves every need (100 images: both validation halves hold every
    (label, attribute) group), and one lacking each need that data can lack."""
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("contract")
    return {"full": make(root / "full", n=100), "no masks": make(root / "no-masks", n=40, masks=False),
            "no train attribute": make(root / "no-tubes", n=40, train_tubes=False),
            "few val groups": make(root / "few-val", n=40)}


def serving(name: str) -> list[str]:
    """The flags that give method `name` what its card needs, on the full set."""
    needs = METHODS.get(name).needs
    granularity = "seg" if "pixel" in needs else "binary"
    # 4 of the ~30 masked training positives keep their mask: the rest are without one.
    budget = ["--mask-budget", "4"] if "unlabelled" in needs else []
    return ["--granularity", granularity, *budget]


# Per need: the dataset that lacks it and the flags that take it away (None: keep the method's own).
LACKING = {
    "pixel": ("full", ["--granularity", "binary"]),
    "binary": ("full", ["--granularity", "seg"]),
    "unlabelled": ("full", ["--granularity", "seg"]),  # no --mask-budget: every mask is kept
    "regions": ("no masks", None),
    "train_attribute": ("no train attribute", None),
    "heldout_attribute": ("few val groups", None),
}
# A need only torchrun can take away, tested (slow) under two processes.
ONE_PROCESS = "one_process"


def test_every_need_has_a_way_to_lack_it():
    assert set(NEEDS) == set(LACKING) | {ONE_PROCESS}


@pytest.mark.parametrize("name", NAMES)
def test_trains_logs_its_columns_and_resumes_exactly(cli, datasets, tmp_path, name):
    args = ["--method", name, *serving(name), *FAST]
    whole, paused = RunLayout(tmp_path / "whole"), RunLayout(tmp_path / "paused")
    cli(["train", datasets["full"], "--out", whole.root, *args])
    cli(["train", datasets["full"], "--out", paused.root, *args, "--epochs-this-run", "1"])
    assert not paused.done.exists()
    cli(["train", datasets["full"], "--out", paused.root, "--resume"])
    assert whole.done.exists() and paused.done.exists()

    log = pq.read_table(whole.train_log)
    assert log.schema.names == TRAIN_LOG.names and log.num_rows == 2
    own = {c.name: c.type for c in METHODS.get(name).columns}
    for column, arrow_type in own.items():
        assert log.schema.field(column).type == arrow_type and log.column(column).null_count == 0, column
    assert all(log.column(c).null_count == 2 for c in set(log_columns()) - set(own))

    a, b = (torch.load(r.checkpoint("last"), weights_only=True) for r in (whole, paused))
    assert a["epoch"] == b["epoch"] == 1
    _same(a["model"], b["model"], "model")
    _same(a["method"], b["method"], "method state")
    assert [_stable(r) for r in a["log"]] == [_stable(r) for r in b["log"]]
    best_a, best_b = (torch.load(r.checkpoint("best"), weights_only=True) for r in (whole, paused))
    _same(best_a["model"], best_b["model"], "best model")
    for table in sorted(whole.root.glob("*.parquet")):  # the method's own tables too (dfr.parquet)
        if table.name != "train_log.parquet":
            assert pq.read_table(table).equals(pq.read_table(paused.root / table.name)), table.name


def _stable(row: dict) -> dict:
    """A log row without its timings, NaN written as text (a binary run's val_dice) so rows compare."""
    return {k: "nan" if isinstance(v, float) and math.isnan(v) else v for k, v in row.items() if k not in TIMING}


def _same(a, b, what: str) -> None:
    """Equal nested state: tensors bit for bit, everything else by ==."""
    assert type(a) is type(b), what
    if isinstance(a, dict):
        assert a.keys() == b.keys(), what
        for key in a:
            _same(a[key], b[key], f"{what}[{key!r}]")
    elif isinstance(a, torch.Tensor):
        assert torch.equal(a, b), what
    else:
        assert a == b, what


REFUSALS = [(name, need) for name in NAMES for need in METHODS.get(name).needs if need in LACKING]


@pytest.mark.parametrize(("name", "need"), REFUSALS)
def test_refuses_data_it_cannot_serve_before_writing(cli, datasets, tmp_path, name, need):
    dataset, flags = LACKING[need]
    out = tmp_path / "run"
    res = cli(["train", datasets[dataset], "--method", name, "--out", out, *(flags or serving(name)), *FAST], expect=2)
    (line,) = res.stderr.strip().splitlines()
    assert line.startswith(f"error: method {name!r} cannot train this run") and NEEDS[need] in line, line
    assert not out.exists()


@pytest.mark.slow
@pytest.mark.parametrize("name", [n for n in NAMES if ONE_PROCESS in METHODS.get(n).needs])
def test_refuses_torchrun_when_it_needs_one_process(datasets, tmp_path, name):
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m",
           "spurspec.cli.main", "train", str(datasets["full"]), "--method", name, "--out", str(out),
           *serving(name), *FAST]
    proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"}, timeout=300)
    assert proc.returncode != 0
    assert f"error: method {name!r} cannot train this run: it needs {NEEDS[ONE_PROCESS]}" in proc.stderr, proc.stderr[-2000:]
    assert not out.exists()
