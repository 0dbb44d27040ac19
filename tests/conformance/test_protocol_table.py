"""The protocol table in docs/training.md is generated from spurspec/presets/protocol.toml and
cannot drift: the page's table is the rendered source, every row names a conformance test that
exists, a cell says "the same" (or the like) only where the row declares that the code does what
the study did, every study.toml key sits in exactly one row, and a row's default cell shows
TrainConfig's default of each of its keys."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

from spurspec import presets
from spurspec.presets import protocol
from spurspec.training.config import TrainConfig

ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / "docs" / "training.md"
HERE = Path(__file__).resolve().parent
ROWS = protocol.rows()
PRESET = presets.load(protocol.PRESET)
DEFAULTS = {f.name: f.default for f in dataclasses.fields(TrainConfig)}
# Words by which a cell says it does what the study did.
SAME = re.compile(r"\b(the same|same as|identical|as the study|as in the study|ditto|likewise|unchanged|as above)\b", re.I)


def test_the_page_shows_the_generated_table():
    page = PAGE.read_text(encoding="utf-8")
    assert protocol.replace_table(page, protocol.render(), str(PAGE)) == page, (
        "docs/training.md's protocol table is not spurspec/presets/protocol.toml's: run "
        "python -m spurspec.presets.protocol --write docs/training.md")


def test_the_check_command_agrees():
    assert protocol.main(["--check", str(PAGE)]) == 0


@pytest.mark.parametrize("row", ROWS, ids=[r.setting for r in ROWS])
def test_every_row_names_an_existing_conformance_test(row):
    assert re.fullmatch(r"test_[a-z0-9_]+\.py", row.test), f"{row.setting}: test {row.test!r} is not a test file name"
    assert (HERE / row.test).is_file(), f"{row.setting}: tests/conformance/{row.test} does not exist"


@pytest.mark.parametrize("row", ROWS, ids=[r.setting for r in ROWS])
def test_every_row_states_study_preset_default_and_why(row):
    for name in ("setting", "study", "default", "why"):
        assert getattr(row, name).strip() not in ("", "—", "-"), f"{row.setting}: empty {name}"
    assert row.keys or row.preset.strip(), f"{row.setting}: the preset cell would be empty"


@pytest.mark.parametrize("row", ROWS, ids=[r.setting for r in ROWS])
def test_a_row_says_the_same_only_where_the_code_matches(row):
    if not row.preset_matches:
        assert not SAME.search(row.preset), f"{row.setting}: the preset differs from the study but its cell says {row.preset!r}"
    if not row.default_matches:
        assert not SAME.search(row.default), f"{row.setting}: the default differs from the study but its cell says {row.default!r}"
    if row.keys and row.preset_matches and row.default_matches:
        differ = {k: (PRESET[k], DEFAULTS[k]) for k in row.keys if PRESET[k] != DEFAULTS[k]}
        assert not differ, f"{row.setting}: both match the study, yet preset and default differ: {differ}"


def test_the_preset_keys_and_the_rows_agree():
    keyed = [k for r in ROWS for k in r.keys]
    twice = sorted({k for k in keyed if keyed.count(k) > 1})
    assert not twice, f"keys in more than one row: {twice}"
    assert sorted(set(PRESET) - set(keyed)) == [], "study.toml keys without a row in protocol.toml"
    assert sorted(set(keyed) - set(PRESET)) == [], "protocol.toml rows name keys study.toml does not set"
    assert len({r.setting for r in ROWS}) == len(ROWS), "two rows share a setting name"


@pytest.mark.parametrize("row", [r for r in ROWS if r.keys], ids=[r.setting for r in ROWS if r.keys])
def test_the_default_cell_shows_trainconfigs_default(row):
    for key in row.keys:
        shown = (protocol.value_text(DEFAULTS[key]), f"`{key} = {protocol.value_text(DEFAULTS[key]).strip('`')}`")
        assert any(s in row.default for s in shown), f"{row.setting}: default cell {row.default!r} does not show {key} = {DEFAULTS[key]!r}"


def test_the_preset_cell_shows_the_preset_values():
    row = next(r for r in ROWS if r.keys == ("schedule",))
    assert protocol.preset_cell(row, PRESET).startswith("`constant`")
    changed = protocol.render(values={**PRESET, "schedule": "cosine"})
    assert "| schedule | constant rate | `cosine`" in changed


def test_the_generator_refuses_a_page_without_markers(tmp_path, capsys):
    page = tmp_path / "page.md"
    page.write_text("# a page\n", encoding="utf-8")
    assert protocol.main(["--write", str(page)]) == 2
    assert capsys.readouterr().err.startswith(f"error: {page}: needs one protocol-table start marker")
    stale = tmp_path / "stale.md"
    stale.write_text(f"text\n{protocol.START}\n| old |\n{protocol.END}\nmore\n", encoding="utf-8")
    assert protocol.main(["--check", str(stale)]) == 1
    assert protocol.main(["--write", str(stale)]) == 0
    assert protocol.main(["--check", str(stale)]) == 0
    assert stale.read_text(encoding="utf-8").endswith(f"{protocol.END}\nmore\n")
