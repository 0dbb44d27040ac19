"""The study preset must say what the study's code did (issue 11's list of facts), so it cannot
drift; and presets layer under a config file and flags, wherever the settings come from."""

import pytest

from spurspec import presets
from spurspec.config import build, resolve
from spurspec.errors import ConfigError
from spurspec.training.config import KEEP_NEGATIVES, TrainConfig

# The study's protocol as its code ran it (see ../shared/reference/spatial-specificity.md).
STUDY = {
    "model": "study",  # ResNet-50 (image labels), smp Unet on SE-ResNeXt-50 (pixel targets)
    "pretrained": "imagenet",
    "loss": "ce",  # unweighted per-pixel cross-entropy
    "head": "auto",  # three classes on ISIC (benign lesions have masks), two on chest films
    "summary": "mean",
    "lr": 0.0005,
    "weight_decay": 0.0,
    "schedule": "constant",
    "batch_size": 16,
    "epochs": 100,
    "patience": 0,  # no early stopping
    "dice": "study",  # averaged over every validation image
    "balance": "study",  # negatives kept once with p = 0.33 on chest films, none on ISIC
    "augment": "study",
    "box_mode": "union",
}


def test_study_preset_matches_the_study():
    assert presets.load("study") == STUDY
    assert KEEP_NEGATIVES == 0.33
    cfg = build(TrainConfig, {"preset": "study"})
    assert cfg.select_metric is None  # AUROC for image labels and boxes, Dice for masks and grids


def test_selection_follows_the_study_per_granularity():
    from spurspec.training.data.granularity import parse

    assert [parse(g).default_select for g in ("binary", "bbox", "seg", "grid:8")] == ["auroc", "auroc", "dice", "dice"]


def test_preset_layers_under_toml_and_flags(tmp_path):
    toml = tmp_path / "c.toml"
    toml.write_text('preset = "study"\nbatch_size = 8\n')
    cfg = resolve(TrainConfig, toml, {"epochs": 3})
    assert (cfg.preset, cfg.batch_size, cfg.epochs, cfg.schedule, cfg.augment) == ("study", 8, 3, "constant", "study")
    assert resolve(TrainConfig, None, {"preset": "study"}).epochs == 100


def test_unknown_preset_lists_the_valid_ones():
    with pytest.raises(ConfigError, match="unknown preset 'nope'; valid: study"):
        build(TrainConfig, {"preset": "nope"})
