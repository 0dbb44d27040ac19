"""Turn a registry's names, or a library module's tuple of valid values (LOSSES, MODES, ...), into
an Enum so Typer lists the valid choices in --help and rejects others; the library stays the one
place that knows the names."""

from __future__ import annotations

from collections.abc import Iterable
from enum import Enum


def choices(name: str, names: Iterable[str]) -> type[Enum]:
    return Enum(name, {n: n for n in names}, type=str)  # type: ignore[return-value]
