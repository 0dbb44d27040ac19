"""The study's protocol table: reads `spurspec/presets/protocol.toml` (one annotated row per
setting) and `study.toml` (the preset's values), renders the Markdown table, and writes it
between the markers of a docs page (docs/training.md). Torch-free, so the table can be rebuilt
anywhere:

    python -m spurspec.presets.protocol --write docs/training.md   # rewrite the page's table
    python -m spurspec.presets.protocol --check docs/training.md   # exit 1 if it is not this one

tests/conformance/test_protocol_table.py checks the rows against the preset, the defaults and
the conformance tests they name."""

from __future__ import annotations

import argparse
import sys
import tomllib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from spurspec import presets
from spurspec.errors import ConfigError

START = "<!-- protocol table: generated from spurspec/presets/protocol.toml; edit that file, then run python -m spurspec.presets.protocol --write docs/training.md -->"
END = "<!-- end of the protocol table -->"
PRESET = "study"
FIELDS = ("setting", "study", "keys", "preset", "preset_matches", "default", "default_matches", "why", "test")
HEADER = ("setting", "the study's code", "`--preset study`", "spurspec's default", "why", "conformance test")


@dataclass(frozen=True)
class Row:
    setting: str
    study: str
    keys: tuple[str, ...]
    preset: str  # what the preset does beyond its values of `keys`
    preset_matches: bool  # the preset does what the study's code did
    default: str
    default_matches: bool  # spurspec's default does what the study's code did
    why: str
    test: str  # a file name under tests/conformance/


def rows() -> list[Row]:
    """The rows of protocol.toml in table order (ConfigError naming a row that lacks a field)."""
    text = resources.files("spurspec.presets").joinpath("protocol.toml").read_text(encoding="utf-8")
    out = []
    for i, raw in enumerate(tomllib.loads(text).get("row", []), start=1):
        missing = [f for f in FIELDS if f not in raw]
        extra = sorted(set(raw) - set(FIELDS))
        if missing or extra:
            raise ConfigError(f"protocol.toml: row {i} ({raw.get('setting', '?')}): "
                              f"missing {', '.join(missing) or 'nothing'}, unknown {', '.join(extra) or 'nothing'}")
        out.append(Row(**{**raw, "keys": tuple(raw["keys"])}))
    return out


def value_text(value: Any) -> str:
    """A setting's value as the table shows it: `study`, `0.0005`, `false`, `unset`."""
    if value is None:
        return "`unset`"
    if isinstance(value, bool):
        return f"`{'true' if value else 'false'}`"
    return f"`{value}`"


def preset_cell(row: Row, values: dict[str, Any]) -> str:
    """The preset's own values of the row's keys (a lone name like `study` as itself; numbers,
    true/false and several keys as `key = value`), then the row's note."""
    if len(row.keys) == 1 and isinstance(values[row.keys[0]], str):
        shown = [value_text(values[row.keys[0]])]
    else:
        shown = [f"`{k} = {value_text(values[k]).strip('`')}`" for k in row.keys]
    parts = [", ".join(shown)] if shown else []
    if row.preset:
        parts.append(row.preset)
    return " ".join(parts) if row.preset.startswith("(") else ": ".join(parts)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").strip() or "—"


def render(table: list[Row] | None = None, values: dict[str, Any] | None = None) -> str:
    """The Markdown table (no markers), one line per row."""
    table = rows() if table is None else table
    values = presets.load(PRESET) if values is None else values
    lines = ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    for r in table:
        cells = (r.setting, r.study, preset_cell(r, values), r.default, r.why, f"`{r.test}`")
        lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    return "\n".join(lines)


def replace_table(page: str, table: str, where: str) -> str:
    """`page` with the text between START and END replaced by `table`."""
    if page.count(START) != 1 or page.count(END) != 1 or page.index(START) > page.index(END):
        raise ConfigError(f"{where}: needs one protocol-table start marker before one end marker")
    head, rest = page.split(START)
    _, tail = rest.split(END)
    return f"{head}{START}\n{table}\n{END}{tail}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m spurspec.presets.protocol", description=__doc__.splitlines()[0])
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--write", type=Path, metavar="PAGE", help="rewrite PAGE's table between its markers")
    group.add_argument("--check", type=Path, metavar="PAGE", help="exit 1 if PAGE's table is not the generated one")
    args = parser.parse_args(argv)
    try:
        table = render()
        page = args.write or args.check
        if page is None:
            print(table)
            return 0
        old = page.read_text(encoding="utf-8")
        new = replace_table(old, table, str(page))
    except OSError as exc:
        print(f"error: {page}: cannot read ({exc.strerror or exc})", file=sys.stderr)
        return 3
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.check:
        if new != old:
            print(f"error: {page}: the protocol table differs from spurspec/presets/protocol.toml; "
                  f"run python -m spurspec.presets.protocol --write {page}", file=sys.stderr)
            return 1
        return 0
    if new != old:
        page.write_text(new, encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
