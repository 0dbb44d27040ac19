"""Fewer masks, both ways, through `spurspec train`: on generated ISIC-format data (every lesion
masked, benign ones too, so the head has three classes) a mask budget counts every mask the model
sees, and the study's `--train-fraction` keeps images with their masks; the two are refused
together, and the fraction is refused where it cannot bound what a method reads."""

from __future__ import annotations

import pyarrow.parquet as pq
import pytest
from isic_builder import HEADER, bias_rows, write_csv, write_folder

from spurspec.artefacts.dataset import Dataset
from spurspec.artefacts.layout import RunLayout

pytestmark = pytest.mark.e2e
IDS = [f"ISIC_{n:07d}" for n in range(40)]
FAST = ["--epochs", "1", "--batch-size", "8", "--workers", "0", "--device", "cpu", "--model", "small"]


@pytest.fixture(scope="module")
def isic(tmp_path_factory):
    """40 images, every one with a lesion mask, half malignant; splits drawn by image."""
    from typer.testing import CliRunner

    from spurspec.cli.main import app

    root = tmp_path_factory.mktemp("isic")
    write_folder(root / "in", IDS)
    write_csv(root / "bias.csv", HEADER, bias_rows(IDS), ";")
    res = CliRunner().invoke(app, ["ingest", "isic", str(root / "in"), "--out", str(root / "ds"),
                                   "--artefacts", str(root / "bias.csv"), "--size", "32", "--seed", "0"])
    assert res.exit_code == 0, res.output
    return root / "ds"


def _train_images(ds) -> tuple[int, int]:
    m = Dataset.open(ds).manifest.to_pydict()
    train = [label for split, label in zip(m["split"], m["label"], strict=True) if split == "train"]
    return len(train), sum(train)


def test_a_three_class_budget_counts_benign_lesion_masks(cli, isic, tmp_path):
    """The bug of issue 24: a budget of 3 used to keep 3 malignant masks and every benign one."""
    run = RunLayout(tmp_path / "seg")
    cli(["train", isic, "--granularity", "seg", "--out", run.root, *FAST, "--mask-budget", "3"])
    table = pq.read_table(run.mask_budget).to_pydict()
    n_train, n_malignant = _train_images(isic)
    assert len(table["row"]) == n_train  # every training lesion, benign (label 0) ones too
    assert 0 < n_malignant < n_train and set(table["label"]) == {0, 1}
    assert sum(table["kept"]) == 3
    assert run.done.exists()


def test_region_methods_count_the_positives_masks_only(cli, isic, tmp_path):
    """rrr reads a positive's region only (negatives are never penalised), so its budget is over
    the malignant lesions."""
    run = RunLayout(tmp_path / "rrr")
    cli(["train", isic, "--granularity", "binary", "--method", "rrr", "--out", run.root, *FAST, "--mask-budget", "3"])
    table = pq.read_table(run.mask_budget).to_pydict()
    assert set(table["label"]) == {1} and len(table["row"]) == _train_images(isic)[1] and sum(table["kept"]) == 3


def test_train_fraction_keeps_images_with_their_masks(cli, isic, tmp_path):
    run = RunLayout(tmp_path / "frac")
    cli(["train", isic, "--granularity", "seg", "--out", run.root, *FAST, "--train-fraction", "0.5", "--seed", "2"])
    table = pq.read_table(run.mask_budget).to_pydict()
    assert len(table["row"]) == _train_images(isic)[0]
    assert 0 < sum(table["kept"]) < len(table["row"])
    assert "train_fraction = 0.5" in run.config.read_text()
    # the report keeps the study's fewer images apart from the model with every mask
    from spurspec.artefacts.run import RunRecord
    from spurspec.report.runs import Run

    assert Run(RunRecord.open(run.root)).group == "seg images=0.5"
    again = RunLayout(tmp_path / "again")
    cli(["train", isic, "--granularity", "seg", "--out", again.root, *FAST, "--train-fraction", "0.5", "--seed", "2"])
    assert pq.read_table(again.mask_budget).equals(pq.read_table(run.mask_budget))  # seeded


@pytest.mark.parametrize("extra,message", [
    (["--granularity", "seg", "--train-fraction", "0.5", "--mask-budget", "3"],
     "error: --train-fraction and --mask-budget are two ways to train on fewer masks"),
    (["--granularity", "seg", "--train-fraction", "1.5"], "error: train fraction 1.5: must be in (0, 1]"),
    (["--granularity", "binary", "--method", "rrr", "--train-fraction", "0.5"],
     "error: --train-fraction does not apply to rrr, which reads regions: give it --mask-budget"),
])
def test_train_fraction_refusals(cli, isic, tmp_path, extra, message):
    res = cli(["train", isic, "--out", tmp_path / "run", *FAST, *extra], expect=2)
    assert res.stderr.strip().startswith(message) and len(res.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "run").exists()
