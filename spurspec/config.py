"""Configs are data: each stage declares one frozen dataclass of defaults (in its own module);
a TOML file overrides them and CLI flags override that. This module resolves the layers,
checks keys and types, and writes the resolved config beside a stage's output."""

from __future__ import annotations

import dataclasses
import difflib
import math
import tomllib
import types
import typing
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, TypeVar

from spurspec.errors import ConfigError

C = TypeVar("C")


def _check_type(where: str, key: str, value: Any, hint: Any) -> Any:
    """Coerce TOML/CLI values to the field's declared type; reject what does not fit, naming the
    key as the user wrote it, after `where` (a file, a table) when given."""
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _check_type(where, key, value, arg)
            except ConfigError:
                continue  # try the union's next type; the error below names the whole hint
        raise ConfigError(f"{where}{key}: {value!r} does not fit {hint}")
    if origin in (tuple, list):
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{where}{key}: expected a list, got {value!r}")
        inner = args[0] if args else Any
        items = [_check_type(where, key, v, inner) for v in value]
        return tuple(items)
    if hint is Any:
        return value
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}{key}: expected true/false, got {value!r}")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where}{key}: expected an integer, got {value!r}")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{where}{key}: expected a number, got {value!r}")
        # No setting means anything at nan or inf; they would only fail later, deep in a stage.
        if not math.isfinite(value):
            raise ConfigError(f"{where}{key}: expected a finite number, got {value!r}")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}{key}: expected a string, got {value!r}")
        return value
    if hint is Path:
        if not isinstance(value, str | Path):
            raise ConfigError(f"{where}{key}: expected a path, got {value!r}")
        return Path(value)
    return value


def unknown_names(what: str, unknown: Iterable[str], valid: Iterable[str], show: Callable[[str], str] = repr,
                  always_list: bool = False, listed_as: str = "valid") -> str:
    """The one wording of names the user wrote that do not exist (settings keys, pipeline sections,
    commands): each with the closest valid name where one is close (difflib), else the valid
    names: `unknown key 'spurious_col'; did you mean 'spurious_cols'?`. `always_list` lists the
    valid names even then (a short list, e.g. ingest's sources)."""
    unknown, valid = list(unknown), list(valid)
    guesses = {name: close[0] for name in unknown if (close := difflib.get_close_matches(name, valid, n=1))}
    text = f"unknown {what}{'s' if len(unknown) > 1 else ''} {', '.join(show(n) for n in unknown)}"
    if guesses:
        if len(unknown) == 1:
            text += f"; did you mean {show(guesses[unknown[0]])}?"
        else:
            text += "; did you mean " + ", ".join(f"{show(g)} for {show(n)}" for n, g in guesses.items()) + "?"
    if always_list or len(guesses) < len(unknown):
        text += (" " if guesses else "; ") + f"{listed_as}: {', '.join(valid)}"
    return text


def build(cls: type[C], values: dict[str, Any], where: str = "") -> C:
    """Make `cls` from defaults overlaid with `values`; an unknown key is an error naming it (and
    the closest valid key), after `where` (a file) when given. A class with a `preset` field
    layers the named preset (spurspec.presets) under `values`."""
    names = {f.name for f in dataclasses.fields(cls)}
    if "preset" in names and values.get("preset") is not None:
        from spurspec import presets

        preset = presets.load(str(values["preset"]))
        build(cls, preset, where=f"preset {values['preset']!r}")  # its keys and types, named as the preset's
        values = {**preset, **values}
    unknown = sorted(set(values) - names)
    if unknown:
        raise ConfigError((f"{where}: " if where else "") + unknown_names("key", unknown, sorted(names)))
    hints = typing.get_type_hints(cls)
    prefix = f"{where}: " if where else ""
    checked = {k: _check_type(prefix, k, v, hints[k]) for k, v in values.items()}
    return cls(**checked)


# Settings files are a few kB; a larger one is not a settings file and is not read into memory.
MAX_TOML_BYTES = 1 << 20
# Seeds go to numpy's legacy generator (np.random.seed) among others, which takes 0 .. 2**32 - 1.
MAX_SEED = 2**32 - 1


def read_toml(path: Path) -> dict[str, Any]:
    """A settings file: UTF-8 TOML of at most MAX_TOML_BYTES (ConfigError naming it otherwise)."""
    try:
        with open(path, "rb") as fh:
            data = fh.read(MAX_TOML_BYTES + 1)
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the config file ({exc.strerror or exc})") from None
    if len(data) > MAX_TOML_BYTES:
        raise ConfigError(f"{path}: over {MAX_TOML_BYTES} bytes; not a settings file")
    try:
        return tomllib.loads(data.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text (byte {exc.start}); TOML files are UTF-8") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None


def check_seed(seed: int, name: str = "seed") -> None:
    """The one rule for every stage's seed: an integer from 0 to MAX_SEED."""
    if not 0 <= seed <= MAX_SEED:
        raise ConfigError(f"{name} must be between 0 and {MAX_SEED}, got {seed}")


def resolve(
    cls: type[C],
    toml_path: Path | None = None,
    overrides: dict[str, Any] | None = None,
    section: str | None = None,
) -> C:
    """Defaults < TOML file (optionally one [section] of it) < CLI overrides (None = not given)."""
    values: dict[str, Any] = {}
    if toml_path is not None:
        data = read_toml(toml_path)
        if section is not None:
            data = data.get(section, {})
        values.update(data)
    for key, value in (overrides or {}).items():
        if value is not None:
            values[key] = value
    return build(cls, values, where=str(toml_path) if toml_path else "")


def to_dict(cfg: Any) -> dict[str, Any]:
    """A plain, TOML/JSON-ready dict of a config dataclass (paths as strings, tuples as lists)."""

    def plain(v: Any) -> Any:
        if isinstance(v, Path):
            return str(v)
        if isinstance(v, tuple | list):
            return [plain(x) for x in v]
        if isinstance(v, dict):
            return {k: plain(x) for k, x in v.items()}
        return v

    return {f.name: plain(getattr(cfg, f.name)) for f in dataclasses.fields(cfg)}


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | float):
        return repr(v)
    if isinstance(v, str):
        escaped = v.replace("\\", "\\\\").replace('"', '\\"')
        return f'"{escaped}"'
    if isinstance(v, list):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    raise TypeError(f"cannot write {v!r} as TOML")


def dumps_toml(data: dict[str, Any]) -> str:
    """Write a flat-or-one-level-nested dict as TOML; None values are left out (TOML has no null)."""
    lines: list[str] = []
    tables = {k: v for k, v in data.items() if isinstance(v, dict)}
    for key, value in data.items():
        if value is None or isinstance(value, dict):
            continue
        lines.append(f"{key} = {_toml_value(value)}")
    for name, table in tables.items():
        lines.append("")
        lines.append(f"[{name}]")
        for key, value in table.items():
            if value is not None:
                lines.append(f"{key} = {_toml_value(value)}")
    return "\n".join(lines) + "\n"
