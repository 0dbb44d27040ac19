"""Option help that states a default writes `{default:FIELD}`, and the command fills it in from
its stage's settings dataclass when --help is shown, so each default is written once, in the
dataclass. The stage modules import NumPy, SciPy, Matplotlib and DuckDB (seconds, though never
torch), so a command imports its settings module only to show its own help, never at start-up.
Reads and writes nothing."""

from __future__ import annotations

import dataclasses
import functools
import importlib
import re
from typing import Any

from typer.core import TyperCommand

_PLACEHOLDER = re.compile(r"\{default:(\w+)\}")


def shown(value: Any) -> str:
    """A default as help writes it: strings and paths bare, tuples comma-separated, floats short."""
    if isinstance(value, tuple):
        return ", ".join(shown(v) for v in value)
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def settings_class(where: str) -> type:
    """The dataclass named by "module:Class", e.g. "spurspec.training.config:TrainConfig"."""
    module, name = where.split(":")
    return getattr(importlib.import_module(module), name)


def fill(text: str, where: str) -> str:
    """`text` with each {default:FIELD} replaced by that field's default in the dataclass `where`."""
    fields = {f.name: f.default for f in dataclasses.fields(settings_class(where))}

    def one(match: re.Match[str]) -> str:
        value = fields.get(match.group(1), dataclasses.MISSING)
        if value is dataclasses.MISSING or value is None:  # a bug in a help text, not a user error
            raise LookupError(f"{where} has no default for {match.group(1)!r} to state in help")
        return shown(value)

    return _PLACEHOLDER.sub(one, text)


@functools.cache
def command_class(where: str) -> type[TyperCommand]:
    """A Typer command class whose help fills {default:FIELD} from the dataclass `where`."""

    class StatedDefaults(TyperCommand):
        def format_help(self, ctx: Any, formatter: Any) -> None:
            for param in self.params:
                if getattr(param, "help", None):
                    param.help = fill(param.help, where)  # type: ignore[attr-defined]
            super().format_help(ctx, formatter)

    return StatedDefaults
