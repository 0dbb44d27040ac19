"""Row "normalisation": the mean and std the network's input is normalised with, on chest films and
on ISIC, at training and at test time.

The study (fact sheet): 3-channel 512 px inputs. Chest films: mean 0.485, std 0.229 in training
(its augmentation config); its evaluation notebook loaded test images with 0.48865 / 0.24621, a
train/test mismatch spurspec does not copy (the documented difference: the training values at
both times). ISIC: the loader normalises with ISIC's own per-channel mean 0.6046 / 0.6081 /
0.6079 and std 0.1858 / 0.1864 / 0.1963, not ImageNet's. Compared here with what spurspec's input
stem does under `--preset study` to fixed uint8 images, in a model as training builds it and as
evaluate (predict, probes) loads it from the run, and with what the run records."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pytest
import torch

from spurspec.artefacts.dataset import DatasetWriter
from spurspec.config import build
from spurspec.training import predict, train, trainer
from spurspec.training.config import TrainConfig
from spurspec.training.data import granularity
from spurspec.training.data import rows as data
from spurspec.training.distributed import Dist
from spurspec.training.models import pretrained

CHEST_MEAN, CHEST_STD = 0.485, 0.229  # the study's training values for chest films
CHEST_EVAL_MEAN, CHEST_EVAL_STD = 0.48865, 0.24621  # its evaluation notebook's (not copied)
ISIC_MEAN, ISIC_STD = (0.6046, 0.6081, 0.6079), (0.1858, 0.1864, 0.1963)
SIZE, N = 32, 16


def study_normalise(image: np.ndarray, mean, std) -> np.ndarray:
    """(3, S, S): the uint8 image on [0, 1], grey replicated to 3 channels, minus mean over std."""
    x = np.asarray(image, np.float64) / 255.0
    x = np.repeat(x, 3, 0) if x.shape[0] == 1 else x
    return (x - np.asarray(mean, np.float64).reshape(-1, 1, 1)) / np.asarray(std, np.float64).reshape(-1, 1, 1)


def tiny(root, source: str, channels: int):
    """N random images of one ingest source (dataset.json's name), both labels in every split."""
    rng = np.random.default_rng(0)
    split = ["train"] * 8 + ["val"] * 4 + ["test"] * 4
    with DatasetWriter(root, n=N, size=SIZE, channels=channels) as w:
        for i in range(N):
            w.put(i, rng.integers(0, 256, (channels, SIZE, SIZE), dtype=np.uint8), None)
        manifest = pa.table({
            "image_id": [f"i{i}" for i in range(N)], "patient_id": [f"p{i}" for i in range(N)], "split": split,
            "label": pa.array([i % 2 for i in range(N)], pa.int8()), "has_mask": [False] * N,
            "source": [source] * N, "orig_height": pa.array([SIZE] * N, pa.int32()),
            "orig_width": pa.array([SIZE] * N, pa.int32())})
        w.finish(manifest, spurious=[], info={"name": source}, settings={}, inputs={})
    return root


def expected(source: str) -> tuple:
    return (ISIC_MEAN, ISIC_STD) if source == "isic" else ((CHEST_MEAN,) * 3, (CHEST_STD,) * 3)


def test_the_constants_are_the_studys():
    assert pretrained.ISIC_MEAN == ISIC_MEAN and pretrained.ISIC_STD == ISIC_STD
    assert pretrained.GREY_MEAN == (CHEST_MEAN,) * 3 and pretrained.GREY_STD == (CHEST_STD,) * 3
    study = build(TrainConfig, {"preset": "study"}).normalisation
    assert pretrained.input_stats(study, "isic", 3) == (ISIC_MEAN, ISIC_STD)
    assert pretrained.input_stats(study, "siim", 1) == ((CHEST_MEAN,) * 3, (CHEST_STD,) * 3)
    # spurspec's default: ImageNet's statistics on ISIC too (a documented difference).
    assert pretrained.input_stats(TrainConfig().normalisation, "isic", 3) == (pretrained.RGB_MEAN, pretrained.RGB_STD)


@pytest.mark.slow
@pytest.mark.parametrize("source,channels", [("siim", 1), ("isic", 3)])
def test_train_and_test_normalise_alike_as_the_study_trained(tmp_path, source, channels):
    ds = tiny(tmp_path / "ds", source, channels)
    cfg = build(TrainConfig, {"preset": "study", "dataset": str(ds), "out": str(tmp_path / "run"),
                              "model": "resnet18", "pretrained": "none", "epochs": 1, "batch_size": 8, "balance": "none",
                              "device": "cpu", "workers": 0, "threads": 1})
    train(cfg)
    gran = granularity.parse(cfg.granularity)
    run_data, _ = trainer._prepare_data(cfg, gran, Dist(), lambda text: None)
    at_training = trainer._model(cfg, gran, run_data, Dist(), None, fresh=False).eval()
    at_test = predict._load(tmp_path / "run", "test", "best", "cpu").model
    item = data.RowsDataset(ds, np.zeros(N), None, "none", 0)[12]
    image = np.asarray(run_data.ds.images()[12])
    mean, std = expected(source)
    want = study_normalise(image, mean, std)
    with torch.no_grad():
        for model in (at_training, at_test):
            got = model.stem(item["image"][None].double())[0].numpy()
            np.testing.assert_allclose(got, want, atol=1e-5)
    if source == "siim":  # the study's evaluation-time values are not spurspec's (a documented difference)
        assert not np.allclose(want, study_normalise(image, (CHEST_EVAL_MEAN,) * 3, (CHEST_EVAL_STD,) * 3), atol=1e-3)
    recorded = json.loads((tmp_path / "run" / "provenance" / "train.json").read_text())["settings"]
    assert recorded["normalisation"] == "study"
    np.testing.assert_allclose(recorded["normalisation_in_effect"]["mean"], mean)
    np.testing.assert_allclose(recorded["normalisation_in_effect"]["std"], std)
