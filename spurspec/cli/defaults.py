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


def plain_metavars(params: list[Any], ctx: Any) -> None:
    """Help shows what a value is, not how the program types it: `--epochs INT` rather than
    `<int>`, choices as `[a|b|c]`, an argument by its name (DATASET, not {dataset}), a flag with
    nothing after it."""
    for param in params:
        if param.metavar is not None:
            continue
        if param.param_type_name == "argument":
            param.metavar = param.name.upper()
            # Typer adds the type after an argument's name (`DATASET <path>`); the name says it.
            param.display_type_rich = lambda ctx: None
            continue
        if getattr(param, "is_flag", False):
            param.metavar = ""
            continue
        label = str(param.display_type(ctx) or "").strip("<>")
        param.metavar = f"[{label}]" if "|" in label else label.upper()


class PlainCommand(TyperCommand):
    def format_help(self, ctx: Any, formatter: Any) -> None:
        plain_metavars(self.params, ctx)
        super().format_help(ctx, formatter)

    def collect_usage_pieces(self, ctx: Any) -> list[str]:
        """`spurspec train [OPTIONS] DATASET`: arguments by name, optional ones in brackets
        (Typer writes required ones as {DATASET})."""
        pieces = [self.options_metavar] if self.options_metavar else []
        for param in self.get_params(ctx):
            if param.param_type_name == "argument":
                name = (param.metavar or param.name.upper()) + ("..." if param.nargs != 1 else "")
                pieces.append(name if param.required else f"[{name}]")
        return pieces


@functools.cache
def command_class(where: str) -> type[TyperCommand]:
    """A Typer command class whose help fills {default:FIELD} from the dataclass `where`."""

    class StatedDefaults(PlainCommand):
        def format_help(self, ctx: Any, formatter: Any) -> None:
            for param in self.params:
                if getattr(param, "help", None):
                    param.help = fill(param.help, where)  # type: ignore[attr-defined]
            super().format_help(ctx, formatter)

    return StatedDefaults
