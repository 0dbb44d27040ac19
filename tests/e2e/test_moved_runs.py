"""Runs and datasets that move: a run records its dataset relative to itself and `--resume`
compares settings and the dataset's content, not where the folders live. A paused run copied
elsewhere (with its dataset, or pointed at the dataset's new place) resumes to the weights of an
uninterrupted run; evaluate, probe and report work on it; a different dataset is refused."""

from __future__ import annotations

import shutil
import tomllib
from pathlib import Path

import pytest
import torch
from tiny_dataset import make

from spurspec.artefacts.layout import RunLayout

pytestmark = pytest.mark.e2e
ARGS = ["--epochs", "2", "--batch-size", "8", "--workers", "0", "--device", "cpu", "--seed", "5"]


@pytest.fixture(scope="module")
def whole(tmp_path_factory) -> RunLayout:
    """An uninterrupted run, the reference for every resumed one."""
    from spurspec.training import TrainConfig, train

    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("whole")
    make(root / "ds")
    train(TrainConfig(dataset=root / "ds", out=root / "run", epochs=2, batch_size=8, workers=0, device="cpu", seed=5),
          progress=False)
    return RunLayout(root / "run")


def _same_weights(a: RunLayout, b: RunLayout) -> None:
    x = torch.load(a.checkpoint("last"), weights_only=True)
    y = torch.load(b.checkpoint("last"), weights_only=True)
    assert x["epoch"] == y["epoch"]
    for key, value in x["model"].items():
        assert torch.equal(value, y["model"][key]), key


def _paused(cli, root: Path) -> RunLayout:
    make(root / "ds")
    res = cli(["train", root / "ds", "--out", root / "run", *ARGS, "--epochs-this-run", "1"])
    assert "paused" in res.stdout
    return RunLayout(root / "run")


def test_run_moved_with_its_dataset_mid_training_resumes_to_the_same_weights(cli, whole, tmp_path, monkeypatch):
    paused = _paused(cli, tmp_path / "scratch")
    assert tomllib.loads(paused.config.read_text())["dataset"] == "../ds"  # relative to the run
    shutil.copytree(tmp_path / "scratch", tmp_path / "home")
    shutil.rmtree(tmp_path / "scratch")  # the old place is gone
    monkeypatch.chdir(tmp_path / "home")  # relative paths, from where the user now stands
    cli(["train", "ds", "--out", "run", "--resume"])
    moved = RunLayout(tmp_path / "home" / "run")
    assert moved.done.exists()
    _same_weights(whole, moved)
    cli(["evaluate", "run", "--bootstrap", "20"])
    res = cli(["probe", "run", "--insert", "tube", "--bootstrap", "20"])
    assert "wrote" in res.stdout
    res = cli(["report", "run", "--out", "rep"])
    assert "could not be opened" not in res.stdout + res.stderr
    assert "not compared" not in res.stdout + res.stderr


def test_report_from_inside_the_folder_finds_a_dataset_given_relative(cli, tmp_path, monkeypatch):
    """`train isicrun/ds --out isicrun/seg`, then `report seg` from inside isicrun/."""
    monkeypatch.chdir(tmp_path)
    make(tmp_path / "isicrun" / "ds")
    fast = ["--epochs", "1", "--batch-size", "8", "--workers", "0", "--device", "cpu"]
    cli(["train", "isicrun/ds", "--out", "isicrun/binary", *fast])
    cli(["evaluate", "isicrun/binary", "--bootstrap", "20"])
    monkeypatch.chdir(tmp_path / "isicrun")
    res = cli(["report", "binary", "--out", "rep"])
    assert "could not be opened" not in res.stdout + res.stderr


def test_run_and_dataset_moved_apart_resume_when_pointed_at_the_dataset(cli, whole, tmp_path):
    paused = _paused(cli, tmp_path / "a")
    moved = RunLayout(tmp_path / "b" / "deeper" / "run")
    shutil.copytree(paused.root, moved.root)
    (tmp_path / "a" / "ds").rename(tmp_path / "c")
    res = cli(["evaluate", moved.root, "--bootstrap", "20"], expect=3)
    assert res.stderr.count("error:") == 1 and "pass its new place" in res.stderr
    res = cli(["train", tmp_path / "c", "--out", moved.root, "--resume"])
    assert "records its new place" in res.stdout
    assert tomllib.loads(moved.config.read_text())["dataset"] == "../../../c"
    _same_weights(whole, moved)
    cli(["evaluate", moved.root, "--bootstrap", "20"])


def test_a_finished_run_moved_alone_finds_its_dataset_or_is_pointed_at_it(cli, whole, tmp_path):
    cli(["evaluate", whole.root, "--bootstrap", "20"])
    moved = RunLayout(tmp_path / "elsewhere" / "run")
    shutil.copytree(whole.root, moved.root)
    dataset = whole.root.parent / "ds"
    # where the dataset was when training started, its content unchanged: found there
    res = cli(["evaluate", moved.root, "--bootstrap", "20"])
    assert "up to date" in res.stdout  # the same checkpoint and dataset content: nothing to redo
    res = cli(["evaluate", moved.root, "--dataset", dataset, "--bootstrap", "20"])
    assert "up to date" in res.stdout
    assert (moved.root / tomllib.loads(moved.config.read_text())["dataset"]).resolve() == dataset.resolve()
    cli(["probe", moved.root, "--insert", "tube", "--bootstrap", "20"])


def test_a_different_dataset_is_refused_and_nothing_changes(cli, tmp_path):
    paused = _paused(cli, tmp_path / "a")
    other = make(tmp_path / "other", seed=11)
    before = {p: p.read_bytes() for p in paused.root.rglob("*") if p.is_file()}
    res = cli(["train", other, "--out", paused.root, "--resume"], expect=2)
    assert res.stderr.count("error:") == 1 and "not the dataset" in res.stderr
    res = cli(["evaluate", paused.root, "--dataset", other], expect=2)
    assert res.stderr.count("error:") == 1 and "not the dataset" in res.stderr
    assert {p: p.read_bytes() for p in paused.root.rglob("*") if p.is_file()} == before
