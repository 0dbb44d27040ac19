"""The remedies of issue 13 end to end on tiny generated data through the real CLI: each trains
a binary classifier (its terms in train_log.parquet, its choices recorded); rrr and cam-loss take
the mask budget; dfr refits only the last layer, on validation images only, and records both
halves; a remedy the data cannot serve is refused before anything is written."""

from __future__ import annotations

import json

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
from tiny_dataset import make

from spurspec.artefacts.layout import RunLayout
from spurspec.training.methods import METHODS

pytestmark = pytest.mark.e2e
FAST = ["--epochs", "1", "--batch-size", "16", "--workers", "0", "--device", "cpu", "--granularity", "binary"]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    torch.set_num_threads(1)
    return make(tmp_path_factory.mktemp("remedies") / "ds", n=200)


@pytest.mark.parametrize("method", ["rrr", "cam-loss", "groupdro", "jtt"])
def test_remedy_trains_and_logs_its_terms(cli, dataset, tmp_path, method):
    run = RunLayout(tmp_path / "run")
    budget = ["--mask-budget", "10"] if method in ("rrr", "cam-loss") else []
    res = cli(["train", dataset, "--method", method, "--out", run.root, *FAST, *budget])
    (row,) = pq.read_table(run.train_log).to_pylist()
    assert all(row[c] is not None for c in METHODS.get(method).columns), row
    settings = json.loads(run.provenance("train").read_text())["settings"]
    assert settings["method"] == method
    if budget:
        kept = pq.read_table(run.mask_budget).column("kept").to_pylist()
        assert sum(kept) == 10 and settings["unlabelled_train_images"] == len(kept) - 10
    if method == "jtt":
        assert "jtt: the identification model got" in res.stdout
    if method == "groupdro":
        assert row["dro_max_weight_group"].startswith("label=")


def test_dfr_refits_only_the_last_layer_on_validation_images(cli, dataset, tmp_path, monkeypatch):
    from spurspec.training import trainer

    seen: list[np.ndarray] = []
    features = trainer.Stage.features

    def spy(self, model, rows):
        seen.append(np.asarray(rows))
        return features(self, model, rows)

    monkeypatch.setattr(trainer.Stage, "features", spy)
    run = RunLayout(tmp_path / "run")
    cli(["train", dataset, "--method", "dfr", "--out", run.root, *FAST])
    best = torch.load(run.checkpoint("best"), weights_only=True)["model"]
    last = torch.load(run.checkpoint("last"), weights_only=True)["model"]  # one epoch: the ERM model
    changed = {k for k in best if not torch.equal(best[k], last[k])}
    assert changed == {"head.weight", "head.bias"}
    split = np.asarray(pq.read_table(dataset / "manifest.parquet").column("split").to_pylist())
    (rows,) = seen
    assert set(split[rows]) == {"val"} and len(rows) == (split == "val").sum()
    halves = pq.read_table(run.root / "dfr.parquet").to_pylist()
    assert {h["half"] for h in halves} == {"fit", "select"} and sorted(h["row"] for h in halves) == sorted(rows.tolist())
    chosen = json.loads(run.provenance("train").read_text())["settings"]["dfr"]
    assert chosen["C"] > 0 and chosen["fit_images"] % 4 == 0


def test_remedies_the_data_cannot_serve_are_refused_before_writing(cli, tmp_path):
    no_train_tubes = make(tmp_path / "siimlike", n=200, train_tubes=False)
    res = cli(["train", no_train_tubes, "--method", "groupdro", "--out", tmp_path / "a", *FAST], expect=2)
    assert "known on every training image" in res.stderr and "jtt" in res.stderr
    no_masks = make(tmp_path / "nomasks", n=40, masks=False)
    res = cli(["train", no_masks, "--method", "rrr", "--out", tmp_path / "b", *FAST], expect=2)
    assert "masks on training positives" in res.stderr
    res = cli(["train", no_train_tubes, "--method", "rrr", "--granularity", "seg", "--out", tmp_path / "c",
               "--epochs", "1"], expect=2)
    assert "image-label granularity" in res.stderr
    res = cli(["train", no_train_tubes, "--method", "erm", "--mask-budget", "5", "--out", tmp_path / "d", *FAST], expect=2)
    assert "not to binary erm" in res.stderr
    assert not any((tmp_path / d).exists() for d in "abcd")
