"""Binary heads end to end on tiny generated data through the real CLI: the study's two-logit head
ranked by its class-1 logit trains under every method that acts on the image logit (rrr, cam-loss,
groupdro, jtt, dfr), resumes exactly, and is scored by that logit in evaluate, Grad-CAM and
integrated gradients; and a one-logit run recorded before the setting existed, under
`preset = "study"` (whose binary head is now two logits), still loads, resumes and evaluates as
the one-logit run it is."""

from __future__ import annotations

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
from tiny_dataset import make

from spurspec.artefacts.layout import RunLayout
from spurspec.artefacts.run import RunRecord
from spurspec.training import predict
from spurspec.training.config import TrainConfig
from spurspec.training.data import rows as data

pytestmark = pytest.mark.e2e
FAST = ["--epochs", "2", "--batch-size", "64", "--workers", "0", "--device", "cpu", "--granularity", "binary"]
TWO_LOGIT = 'binary_head = "two-logit"\nbinary_score = "logit"\n'
NEW_KEYS = ("binary_head", "binary_score", "normalisation")


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    torch.set_num_threads(1)
    return make(tmp_path_factory.mktemp("binary") / "ds", n=100)


@pytest.fixture
def two_logit(tmp_path):
    path = tmp_path / "two-logit.toml"
    path.write_text(TWO_LOGIT)
    return path


@pytest.mark.slow
@pytest.mark.parametrize("method", ["rrr", "cam-loss", "groupdro", "jtt", "dfr"])
def test_methods_train_the_two_logit_head(cli, dataset, tmp_path, two_logit, method):
    run = RunLayout(tmp_path / "run")
    cli(["train", dataset, "--out", run.root, "--config", two_logit, "--method", method, *FAST])
    head = torch.load(run.checkpoint("best"), weights_only=True)["model"]["head.weight"]
    assert head.shape[0] == 2
    if method == "dfr":  # the refit log-odds sit on class 1's logit, class 0's is 0
        assert not head[0].any() and head[1].any()


def test_two_logit_run_is_scored_by_its_class_one_logit_and_resumes_exactly(cli, dataset, tmp_path, two_logit):
    whole, paused = RunLayout(tmp_path / "whole"), RunLayout(tmp_path / "paused")
    cli(["train", dataset, "--out", whole.root, "--config", two_logit, *FAST])
    cli(["train", dataset, "--out", paused.root, "--config", two_logit, *FAST, "--epochs-this-run", "1"])
    cli(["train", dataset, "--out", paused.root, "--resume"])
    a, b = (torch.load(r.checkpoint("last"), weights_only=True)["model"] for r in (whole, paused))
    assert all(torch.equal(a[k], b[k]) for k in a)

    res = cli(["evaluate", whole.root, "--bootstrap", "0"])
    assert "scored by the raw class-1 logit" in res.stdout
    preds = pq.read_table(whole.predictions).to_pydict()
    run = predict._load(whole.root, "test", "best", "cpu")
    ids = run.ds.manifest.column("image_id").to_pylist()
    rows = [ids.index(i) for i, s in zip(preds["image_id"], preds["split"], strict=True) if s == "test"]
    images = torch.stack([data.RowsDataset(run.ds.root, np.zeros(len(ids)), None, "none", 0)[r]["image"] for r in rows])
    with torch.no_grad():
        logits = run.model(images)
    assert logits.shape == (len(rows), 2)
    test_scores = [s for s, sp in zip(preds["score"], preds["split"], strict=True) if sp == "test"]
    np.testing.assert_allclose(test_scores, logits[:, 1].double().numpy(), rtol=1e-5, atol=1e-6)

    from spurspec.probes.scoring import Scorer

    scorer = Scorer.load(whole.root, "best", "image", "cpu")
    np.testing.assert_allclose(scorer.scores(scorer.dataset_rows(), np.asarray(rows)), test_scores, rtol=1e-5, atol=1e-6)
    uint8 = np.stack([np.asarray(run.ds.images()[r]) for r in rows[:2]])
    for kind in scorer.map_kinds:  # Grad-CAM and integrated gradients of the class-1 logit
        maps = scorer.maps(kind, uint8, ig_steps=4)
        assert maps.shape == (2, *uint8.shape[-2:]) and np.isfinite(maps).all()


def test_a_one_logit_run_recorded_before_the_setting_still_loads_resumes_and_evaluates(cli, dataset, tmp_path):
    run = RunLayout(tmp_path / "old")
    before = tmp_path / "before.toml"  # the preset as it was: one logit, scored by its probability
    before.write_text('preset = "study"\nbinary_head = "one-logit"\nbinary_score = "probability"\n'
                      'normalisation = "imagenet"\n')
    cli(["train", dataset, "--out", run.root, "--config", before, "--model", "small", "--pretrained", "none",
         *FAST, "--epochs-this-run", "1"])
    # What a run written before the setting looks like: preset = "study", and no binary_head key.
    text = run.config.read_text()
    run.config.write_text("".join(line for line in text.splitlines(keepends=True) if line.split(" =")[0] not in NEW_KEYS))
    torch_state = torch.load(run.checkpoint("last"), weights_only=True)["model"]
    cfg = RunRecord.open(run.root).settings(TrainConfig)
    assert (cfg.preset, cfg.binary_head, cfg.binary_score) == ("study", "one-logit", "probability")
    assert torch_state["head.weight"].shape[0] == 1

    cli(["train", dataset, "--out", run.root, "--resume"])
    assert run.done.exists()
    cli(["evaluate", run.root, "--bootstrap", "0"])
    scores = pq.read_table(run.predictions).column("score").to_numpy()
    assert ((scores >= 0) & (scores <= 1)).all()  # probabilities, as the run was trained to give
