"""Config layering (defaults < TOML < CLI), type checks, unknown keys; the name registry."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path

import pytest

from spurspec.config import build, dumps_toml, resolve, to_dict
from spurspec.errors import ConfigError
from spurspec.registry import Registry


@dataclass(frozen=True)
class Demo:
    size: int = 128
    lr: float = 1e-3
    name: str = "x"
    grids: tuple[int, ...] = (4,)
    weights: Path | None = None
    amp: bool = True


def test_layers(tmp_path):
    toml = tmp_path / "c.toml"
    toml.write_text('size = 64\nname = "from-file"\ngrids = [2, 8]\n')
    cfg = resolve(Demo, toml, {"name": "from-cli", "lr": None})
    assert cfg == Demo(size=64, lr=1e-3, name="from-cli", grids=(2, 8))


def test_unknown_key_and_bad_type_are_named(tmp_path):
    with pytest.raises(ConfigError, match="unknown key 'sise'; did you mean 'size'\\?"):
        build(Demo, {"sise": 3})
    # the key as the user wrote it, after the file it came from; never the internal class's name
    with pytest.raises(ConfigError, match="^c.toml: size: expected an integer, got 'big'$"):
        build(Demo, {"size": "big"}, where="c.toml")
    with pytest.raises(ConfigError, match="^amp: expected true/false"):
        build(Demo, {"amp": 1})


def test_int_is_accepted_as_float_and_paths_round_trip():
    cfg = build(Demo, {"lr": 1, "weights": "w.pt"})
    assert cfg.lr == 1.0 and cfg.weights == Path("w.pt")
    text = dumps_toml(to_dict(cfg))
    assert build(Demo, tomllib.loads(text)) == cfg


def test_registry_lists_valid_names():
    reg: Registry[int] = Registry("model")
    reg.add("small", 1)
    reg.add("big", 2)
    assert reg.get("small") == 1
    assert reg.names() == ["big", "small"]
    with pytest.raises(ConfigError, match="unknown model 'huge'; valid names: big, small"):
        reg.get("huge")
    with pytest.raises(ValueError):
        reg.add("small", 3)
