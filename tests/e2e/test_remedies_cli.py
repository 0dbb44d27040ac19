"""The remedies of issue 13 end to end on tiny generated data through the real CLI, beyond what
every method keeps (tests/e2e/test_method_contract.py): the methods that read regions (rrr,
cam-loss: every card that needs "regions") take the mask budget on a binary classifier and other
binary methods refuse it; dfr refits only the last layer, on validation images only, and records
both halves."""

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


@pytest.mark.parametrize("method", [name for name in METHODS.names() if "regions" in METHODS.get(name).needs])
def test_region_methods_take_the_mask_budget(cli, dataset, tmp_path, method):
    run = RunLayout(tmp_path / "run")
    cli(["train", dataset, "--method", method, "--out", run.root, *FAST, "--mask-budget", "10"])
    (row,) = pq.read_table(run.train_log).to_pylist()
    assert all(row[c.name] is not None for c in METHODS.get(method).columns), row
    settings = json.loads(run.provenance("train").read_text())["settings"]
    kept = pq.read_table(run.mask_budget).column("kept").to_pylist()
    assert settings["method"] == method
    assert sum(kept) == 10 and settings["unlabelled_train_images"] == len(kept) - 10


def test_dfr_refits_only_the_last_layer_on_validation_images(cli, dataset, tmp_path, monkeypatch):
    from spurspec.training.methods.base import Stage

    seen: list[np.ndarray] = []
    features = Stage.features

    def spy(self, model, rows):
        seen.append(np.asarray(rows))
        return features(self, model, rows)

    monkeypatch.setattr(Stage, "features", spy)
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


def test_a_mask_budget_on_binary_is_refused_but_for_methods_that_read_regions(cli, dataset, tmp_path):
    res = cli(["train", dataset, "--method", "erm", "--mask-budget", "5", "--out", tmp_path / "run", *FAST], expect=2)
    readers = ", ".join(name for name in METHODS.names() if "regions" in METHODS.get(name).needs)
    assert res.stderr.strip() == ("error: --mask-budget applies to pixel granularities (bbox, seg, grid:K) and to the "
                                  f"methods that read regions ({readers}), not to binary erm")
    assert not (tmp_path / "run").exists()
