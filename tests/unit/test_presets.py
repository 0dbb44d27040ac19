"""Presets layer under a config file and flags, wherever the settings come from, and only the
shipped presets are names. What the study preset's values are is not checked here against a copy
of themselves: tests/conformance/ checks each row of the protocol table (protocol.toml) against
the study's definition, and test_protocol_table.py that every preset key has its row."""

import pytest

from spurspec import presets
from spurspec.config import build, resolve
from spurspec.errors import ConfigError
from spurspec.training.config import TrainConfig


@pytest.mark.parametrize("name", presets.names())
def test_every_shipped_preset_builds_and_is_recorded(name):
    cfg = build(TrainConfig, {"preset": name})
    assert cfg.preset == name
    assert all(getattr(cfg, key) == value for key, value in presets.load(name).items())


def test_the_protocol_annotations_are_not_a_preset():
    assert presets.names() == ["study"]
    with pytest.raises(ConfigError, match="unknown preset 'protocol'; valid: study"):
        presets.load("protocol")


def test_preset_layers_under_toml_and_flags(tmp_path):
    toml = tmp_path / "c.toml"
    toml.write_text('preset = "study"\nbatch_size = 8\n')
    cfg = resolve(TrainConfig, toml, {"epochs": 3})
    assert (cfg.preset, cfg.batch_size, cfg.epochs, cfg.schedule, cfg.augment) == ("study", 8, 3, "constant", "study")
    assert resolve(TrainConfig, None, {"preset": "study"}).epochs == 100


def test_unknown_preset_lists_the_valid_ones():
    with pytest.raises(ConfigError, match="unknown preset 'nope'; valid: study"):
        build(TrainConfig, {"preset": "nope"})
