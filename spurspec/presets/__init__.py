"""Named settings presets shipped with the package (`spurspec/presets/<name>.toml`): a stage's
settings as one named protocol, layered as defaults < preset < --config TOML < flags. A stage
whose settings dataclass has a `preset` field takes `preset = "study"` in a TOML file, a pipeline
or on the command line; `spurspec.config.build` applies it, so every caller gets the same
result, and the preset's name is recorded with the resolved settings. `protocol.toml` is not a
preset: it sets each study.toml value beside the study's code and spurspec's default, and
`spurspec.presets.protocol` renders it into docs/training.md."""

from __future__ import annotations

import tomllib
from importlib import resources
from typing import Any

from spurspec.errors import ConfigError

# TOML files here that are not presets: protocol.toml annotates the study preset row by row
# (spurspec.presets.protocol renders it into docs/training.md).
NOT_PRESETS = ("protocol",)


def names() -> list[str]:
    files = resources.files("spurspec.presets")
    found = (p.name[:-5] for p in files.iterdir() if p.name.endswith(".toml"))
    return sorted(n for n in found if n not in NOT_PRESETS)


def load(name: str) -> dict[str, Any]:
    """The settings of preset `name` (a ConfigError lists the shipped presets)."""
    if name not in names():
        raise ConfigError(f"unknown preset {name!r}; valid: {', '.join(names())}")
    text = resources.files("spurspec.presets").joinpath(f"{name}.toml").read_text(encoding="utf-8")
    values = tomllib.loads(text)
    if "preset" in values:
        raise ConfigError(f"preset {name!r} may not name another preset")
    return values
