"""The one freshness check every stage uses (spurspec.artefacts.freshness): a record written by
provenance.write is fresh for the same settings and inputs, stale naming each setting and input
that changed (an input's file where the stage names it, added or removed inputs too), missing
without a readable record; a refusal is one line and exit 4."""

from __future__ import annotations

from pathlib import Path

import pytest

from spurspec.artefacts import freshness, provenance
from spurspec.errors import ExistsError

SETTINGS = {"seed": 0, "grids": (2, 4), "out": Path("runs/a")}
INPUTS = {"checkpoint": "sha256:aaa", "dataset": "sha256:bbb"}


@pytest.fixture
def record(tmp_path) -> Path:
    path = tmp_path / "run" / "provenance" / "evaluate.json"
    provenance.write(path, "evaluate", SETTINGS, INPUTS)
    return path


def _check(record: Path, settings=SETTINGS, inputs=INPUTS, **kw) -> freshness.Freshness:
    return freshness.check(record, settings, inputs, where="runs/a", what="metrics", **kw)


def test_same_settings_and_inputs_are_fresh(record):
    """Tuples and paths compare equal to the lists and strings the JSON record holds."""
    state = _check(record)
    assert state.fresh and not state.stale and not state.missing and state.changes == ()
    assert state.message == freshness.up_to_date("runs/a", "metrics")
    assert state.message.startswith("runs/a: up to date (metrics made with the same settings and inputs)")


def test_a_changed_input_is_named_with_its_file(record):
    state = _check(record, inputs={**INPUTS, "checkpoint": "sha256:ccc"}, paths={"checkpoint": Path("runs/a/best.pt")})
    assert state.stale and state.changes == ("input checkpoint (runs/a/best.pt) changed",)
    error = state.error()
    assert isinstance(error, ExistsError) and error.exit_code == 4
    assert str(error) == ("runs/a: already holds metrics made with other settings or inputs "
                          "(input checkpoint (runs/a/best.pt) changed); pass --force to replace it")


def test_a_changed_setting_shows_both_values(record):
    state = _check(record, settings={**SETTINGS, "seed": 3})
    assert state.stale and state.changes == ("setting seed: 0 -> 3",)


@pytest.mark.parametrize(("inputs", "change"), [
    ({**INPUTS, "overlay": "sha256:ddd"}, "input overlay (x.png) added"),
    ({"checkpoint": "sha256:aaa"}, "input dataset removed"),
])
def test_an_added_or_removed_input_is_stale(record, inputs, change):
    state = _check(record, inputs=inputs, paths={"overlay": Path("x.png")})
    assert state.stale and state.changes == (change,)


def test_many_changes_list_three_then_count(record):
    state = _check(record, settings={"seed": 1, "grids": [8], "out": "b", "n": 5}, inputs={})
    assert len(state.changes) == 6
    assert state.listed().count("; ") == 3 and state.listed().endswith("; and 3 more")
    assert "setting grids: [2, 4] -> [8]" in state.message


def test_no_record_or_an_unreadable_one_is_missing(tmp_path, record):
    absent = _check(tmp_path / "nowhere.json")
    assert absent.missing and absent.changes == (f"{tmp_path / 'nowhere.json'} not found",)
    assert str(absent.error()) == (f"runs/a: already holds metrics without a readable record of its settings and "
                                   f"inputs ({tmp_path / 'nowhere.json'} not found); pass --force to replace it")
    record.write_text("{half")
    assert _check(record).changes == (f"{record} unreadable",)
    record.write_text("[1, 2]")
    assert _check(record).missing


def test_a_stage_redoing_its_own_stale_output_says_what_changed(record):
    state = _check(record, settings={**SETTINGS, "seed": 2})
    assert state.redone == "runs/a: held metrics made with other settings or inputs (setting seed: 0 -> 2); redone"
