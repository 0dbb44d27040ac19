"""`spurspec train` end to end through the real CLI on a tiny generated dataset: every granularity
trains, writes its artefacts and predicts; a paused run resumed with --resume ends with the same
weights as an uninterrupted one; bad inputs fail clearly and overwrite nothing."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import torch
from tiny_dataset import make

from spurspec.artefacts.layout import DatasetLayout, RunLayout

pytestmark = pytest.mark.e2e
FAST = ["--epochs", "1", "--batch-size", "8", "--workers", "0", "--device", "cpu"]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    torch.set_num_threads(1)
    return make(tmp_path_factory.mktemp("train") / "ds")


@pytest.mark.parametrize("gran", ["binary", "seg", "bbox", "grid:4"])
def test_each_granularity_trains_and_predicts(cli, dataset, tmp_path, gran):
    from spurspec.training.predict import predict_split

    run = RunLayout(tmp_path / "run")
    res = cli(["train", dataset, "--granularity", gran, "--out", run.root, *FAST, "--loss", "ce+dice" if gran == "seg" else "ce"])
    assert "finished" in res.stdout
    for path in (run.config, run.train_log, run.checkpoint("last"), run.checkpoint("best"), run.provenance("train"), run.done):
        assert path.exists(), path
    log = pq.read_table(run.train_log).to_pylist()
    assert len(log) == 1 and log[0]["images_per_s"] > 0 and 0 <= log[0]["data_wait_fraction"] <= 1
    assert 0 <= log[0]["val_auroc"] <= 1
    assert (log[0]["val_dice"] == log[0]["val_dice"]) == (gran != "binary")  # NaN for binary only
    state = torch.load(run.checkpoint("best"), weights_only=True)
    assert state["meta"]["granularity"] == gran and state["epoch"] == 0
    assert "optimizer" not in state and "optimizer" in torch.load(run.checkpoint("last"), weights_only=True)
    out = predict_split(run.root, "test", n_saliency=3)
    preds = out.predictions
    summaries = set(preds.column("summary").to_pylist())
    assert summaries == ({"image"} if gran == "binary" else {"mean", "max", "topk:1", "topk:5", "topk:10"})
    assert preds.num_rows == 8 * len(summaries)
    assert set(preds.column("granularity").to_pylist()) == {gran}
    assert 0 < len(out.saliency) <= 3
    for image, smap in out.saliency.values():
        assert image.shape == (32, 32) and smap.shape == (32, 32) and 0 <= smap.min() <= smap.max() <= 1
    if gran in ("bbox", "grid:4"):
        assert DatasetLayout(dataset).box_masks.exists()


def test_mask_budget_is_recorded_and_seeded(cli, dataset, tmp_path):
    runs = [tmp_path / "a", tmp_path / "b"]
    for run in runs:
        cli(["train", dataset, "--granularity", "seg", "--out", run, *FAST, "--mask-budget", "3", "--seed", "5"])
    tables = [pq.read_table(RunLayout(r).mask_budget) for r in runs]
    assert sum(tables[0].column("kept").to_pylist()) == 3
    assert tables[0].num_rows == 12  # every masked training positive, kept or not
    assert tables[0].equals(tables[1])


def test_resume_matches_uninterrupted(cli, dataset, tmp_path):
    args = ["--granularity", "seg", "--epochs", "2", "--batch-size", "8", "--device", "cpu", "--seed", "3"]
    whole, paused = RunLayout(tmp_path / "whole"), RunLayout(tmp_path / "paused")
    cli(["train", dataset, "--out", whole.root, *args, "--workers", "0"])
    res = cli(["train", dataset, "--out", paused.root, *args, "--workers", "0", "--epochs-this-run", "1"])
    assert "paused" in res.stdout and not paused.done.exists()
    # without --resume an existing run is refused
    cli(["train", dataset, "--out", paused.root, *args], expect=4)
    # resume with only --out (settings come from the run's config.toml), other worker count
    cli(["train", dataset, "--out", paused.root, "--resume", "--workers", "1"])
    assert paused.done.exists()
    a = torch.load(whole.checkpoint("last"), weights_only=True)
    b = torch.load(paused.checkpoint("last"), weights_only=True)
    assert a["epoch"] == b["epoch"] == 1
    for key, value in a["model"].items():
        assert torch.equal(value, b["model"][key]), key
    for key in ("train_loss", "val_loss", "val_auroc", "val_dice"):
        assert [r[key] for r in a["log"]] == [r[key] for r in b["log"]]
    assert pq.read_table(paused.train_log).num_rows == 2
    res = cli(["train", dataset, "--out", paused.root, "--resume"])
    assert "already finished" in res.stdout


def test_bad_inputs_fail_clearly_and_overwrite_nothing(cli, dataset, tmp_path):
    no_masks = make(tmp_path / "nomask", masks=False)
    res = cli(["train", no_masks, "--granularity", "seg", "--out", tmp_path / "r1", *FAST], expect=2)
    assert "no positive image has a mask" in res.stderr and not (tmp_path / "r1").exists()
    res = cli(["train", dataset, "--granularity", "seg", "--out", tmp_path / "r2", *FAST, "--mask-budget", "500"], expect=2)
    assert "larger than the 12" in res.stderr and not (tmp_path / "r2").exists()
    one_class = make(tmp_path / "oneclass", one_class_val=True)
    res = cli(["train", one_class, "--out", tmp_path / "r3", *FAST], expect=2)
    assert "val split has only label 0" in res.stderr and not (tmp_path / "r3").exists()
    res = cli(["train", dataset, "--granularity", "grid:x", "--out", tmp_path / "r4", *FAST], expect=2)
    assert "grid:K" in res.stderr
    res = cli(["train", dataset, "--granularity", "binary", "--select-metric", "dice", "--out", tmp_path / "r5", *FAST], expect=2)
    assert "Dice" in res.stderr

    run = RunLayout(tmp_path / "existing")
    cli(["train", dataset, "--out", run.root, *FAST])
    before = {p: p.read_bytes() for p in run.root.rglob("*") if p.is_file()}
    res = cli(["train", dataset, "--out", run.root, *FAST], expect=4)
    assert "--resume" in res.stderr and "--force" in res.stderr
    res = cli(["train", dataset, "--out", run.root, *FAST, "--lr", "0.1", "--resume"], expect=2)
    assert "lr" in res.stderr
    # a forced run whose inputs are bad leaves the old run alone
    cli(["train", dataset, "--granularity", "seg", "--mask-budget", "500", "--out", run.root, *FAST, "--force"], expect=2)
    assert {p: p.read_bytes() for p in run.root.rglob("*") if p.is_file()} == before
    stranger = tmp_path / "stranger"
    stranger.mkdir()
    (stranger / "notes.txt").write_text("mine")
    cli(["train", dataset, "--out", stranger, *FAST, "--force"], expect=4)
    assert (stranger / "notes.txt").read_text() == "mine"


def test_component_boxes_pos_weight_and_max_summary_are_recorded(cli, tmp_path):
    import tomllib

    dataset = make(tmp_path / "ds")  # its own: the shared one already has union boxes
    run = RunLayout(tmp_path / "run")
    cli(["train", dataset, "--granularity", "bbox", "--out", run.root, *FAST, "--box-mode", "components",
         "--balance", "pos-weight", "--summary", "max", "--select-metric", "dice"])
    cfg = tomllib.loads(run.config.read_text())
    assert (cfg["box_mode"], cfg["balance"], cfg["summary"], cfg["select_metric"]) == ("components", "pos-weight", "max", "dice")
    boxes = json.loads(DatasetLayout(dataset).provenance("derive-boxes").read_text())
    assert boxes["settings"]["mode"] == "components"
    # A second box mode on the same dataset is refused with the command to run, not silently mixed.
    res = cli(["train", dataset, "--granularity", "bbox", "--out", tmp_path / "other", *FAST, "--box-mode", "union"], expect=None)
    assert res.exit_code != 0 and "derive-boxes" in res.output


def test_unknown_method_lists_the_valid_ones(dataset, tmp_path):
    from spurspec.errors import ConfigError
    from spurspec.training import TrainConfig, train
    from spurspec.training.methods import METHODS

    with pytest.raises(ConfigError, match=f"unknown method 'seg-sll'; valid names: {', '.join(METHODS.names())}$"):
        train(TrainConfig(dataset=dataset, out=tmp_path / "run", method="seg-sll"), progress=False)
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
@pytest.mark.parametrize("gran", ["binary", "seg"])
def test_resnet50_trains_and_is_evaluated(cli, dataset, tmp_path, gran):
    """The `resnet50` model (shared ResNet-50 encoder; no shipped pipeline names it) trains one
    epoch at each kind of head and is evaluated, so CI runs it at least once."""
    run = RunLayout(tmp_path / "r50")
    cli(["train", dataset, "--granularity", gran, "--out", run.root, "--model", "resnet50", *FAST])
    cli(["evaluate", run.root, "--bootstrap", "10"])
    rows = pq.read_table(run.metrics).to_pylist()
    assert any(r["metric"] == "auroc" and r["value"] is not None for r in rows)
