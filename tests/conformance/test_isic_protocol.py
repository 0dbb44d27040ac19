"""Row "ISIC": how the study trained on ISIC 2018's trap sets, beyond the rows every dataset shares.

The study (fact sheet): the ISIC loader has no augmentation at all; the ISIC binary checkpoint its
evaluation notebook reads was trained with weight decay 0.01 (every other run: none); the trap
sets' validation images are also inside its training set (a leak spurspec does not copy: the
documented difference). Compared here with `--preset study` resolved on an ISIC dataset, with
pipelines/isic-study.toml's training jobs, and with `spurspec ingest isic` on a made-up trap set
whose published val rows sit inside train, as the real ones do."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from spurspec.artefacts.dataset import Dataset
from spurspec.config import build
from spurspec.pipeline import plan, spec
from spurspec.training.config import TrainConfig
from spurspec.training.trainer import effective_augment

PIPELINE = Path(__file__).resolve().parents[2] / "pipelines" / "isic-study.toml"
STUDY_ISIC_AUGMENT = "none"  # the study's ISIC loader: no augmentation at all
STUDY_ISIC_BINARY_WEIGHT_DECAY = 0.01  # the checkpoint its evaluation read
STUDY_WEIGHT_DECAY = 0.0  # every other run


def dataset_of(source: str):
    """What effective_augment reads of a dataset: its dataset.json's name (the ingest source)."""
    return SimpleNamespace(info={"name": source})


def test_the_preset_does_not_augment_isic():
    cfg = build(TrainConfig, {"preset": "study"})
    assert effective_augment(cfg.augment, dataset_of("isic")) == STUDY_ISIC_AUGMENT
    assert effective_augment(cfg.augment, dataset_of("siim")) == "study"  # chest films keep the study's list
    assert effective_augment("standard", dataset_of("isic")) == "standard"  # a mode asked for by name is kept


def test_the_isic_pipeline_trains_as_the_study_did():
    jobs = [j for j in plan.plan(spec.load(PIPELINE)) if j.stage == "train"]
    assert {j.settings["granularity"] for j in jobs} == {"binary", "bbox", "seg"}
    for job in jobs:
        cfg = build(TrainConfig, job.settings, where=job.id)
        assert cfg.preset == "study"
        assert effective_augment(cfg.augment, dataset_of("isic")) == STUDY_ISIC_AUGMENT
        want = STUDY_ISIC_BINARY_WEIGHT_DECAY if cfg.granularity == "binary" else STUDY_WEIGHT_DECAY
        assert cfg.weight_decay == want, job.id
        assert (cfg.normalisation, cfg.binary_head, cfg.binary_score) == ("study", "two-logit", "logit")


@pytest.mark.e2e
def test_the_val_train_leak_is_not_copied(tmp_path, cli):
    from isic_builder import HEADER, bias_rows, write_csv, write_folder, write_trap_set

    ids = [f"ISIC_{n:07d}" for n in range(8)]
    rows = bias_rows(ids)
    write_folder(tmp_path / "in", ids)
    write_csv(tmp_path / "bias.csv", HEADER, rows, ";")
    study = {"train": ids[:6], "val": ids[4:6], "test": ids[6:]}  # the published files: val inside train
    write_trap_set(tmp_path / "traps", 1, rows[:6], rows[4:6], rows[6:])
    cli(["ingest", "isic", tmp_path / "in", "--out", tmp_path / "ds", "--artefacts", tmp_path / "bias.csv",
         "--trap-sets", tmp_path / "traps", "--trap-seed", 1, "--size", 8])
    manifest = Dataset.open(tmp_path / "ds").manifest.to_pydict()
    split = dict(zip(manifest["image_id"], manifest["split"], strict=True))
    assert set(study["val"]) <= set(study["train"])  # the study's leak
    assert {i for i, s in split.items() if s == "val"} == set(study["val"])
    assert {i for i, s in split.items() if s == "train"} == set(study["train"]) - set(study["val"])
    assert {i for i, s in split.items() if s == "test"} == set(study["test"])
