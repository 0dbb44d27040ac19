"""What report and compare count (spurspec.report.runs.select): duplicates of one group and
replicate are found, refused or narrowed by --keep; unfinished runs are left out (or counted with
include_unfinished), each with the note that says so."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pytest

from spurspec.artefacts.run import Completion
from spurspec.errors import ArtefactError, InputError
from spurspec.report.runs import duplicates, keep_one, select

DONE = Completion(True, 5, 5)


@dataclass
class _Record:
    completion: Completion


@dataclass
class _Run:
    """The part of report.runs.Run that selection reads."""

    root: Path
    group: str
    replicate: str
    completion: Completion = DONE
    record: _Record = field(init=False)

    def __post_init__(self):
        self.record = _Record(self.completion)


def test_duplicates_are_runs_sharing_group_and_replicate(tmp_path):
    a, b = _Run(tmp_path / "a", "binary", "seed 0"), _Run(tmp_path / "b", "binary", "seed 0")
    others = [_Run(tmp_path / "c", "binary", "seed 1"), _Run(tmp_path / "d", "seg", "seed 0"),
              _Run(tmp_path / "e", "binary", "trap set 2 seed 0")]
    assert duplicates([a, *others, b]) == [[a, b]]
    assert duplicates(others) == []


def test_duplicates_are_refused_naming_both_unless_one_is_kept(tmp_path):
    a, b, c = (_Run(tmp_path / n, "seg masks=50", "seed 3") for n in "abc")
    with pytest.raises(InputError) as exc:
        keep_one([a, b])
    assert f"{a.root} and {b.root} are both seg masks=50 seed 3" in str(exc.value) and "--keep" in str(exc.value)
    kept, notes = keep_one([a, b, c], (tmp_path / "b",))
    assert kept == [b] and len(notes) == 1 and str(a.root) in notes[0] and str(c.root) in notes[0]
    with pytest.raises(InputError, match="are all"):  # keeping two of one set keeps a duplicate
        keep_one([a, b, c], (a.root, c.root))
    with pytest.raises(InputError, match="not one of the evaluated runs"):
        keep_one([a, b], (tmp_path / "z",))


def test_unfinished_runs_are_left_out_unless_included(tmp_path):
    done = _Run(tmp_path / "done", "binary", "seed 0")
    paused = _Run(tmp_path / "paused", "binary", "seed 1", Completion(False, 1, 5))
    lonely = _Run(tmp_path / "lonely", "seg", "seed 0", Completion(False, 2, 5))
    chosen = select([done, paused, lonely])
    assert chosen.runs == [done] and chosen.left_out == [paused, lonely]
    assert any(f"{paused.root} (unfinished: 1 of 5 epochs)" in n and "--include-unfinished" in n for n in chosen.notes)
    assert "seg has no finished run, so it appears only in the table of every run" in chosen.notes
    included = select([done, paused], include_unfinished=True)
    assert included.runs == [done, paused] and not included.left_out
    with pytest.raises(ArtefactError, match="no finished runs"):
        select([paused])
    assert select([done]).notes == []


def test_a_run_trained_on_since_its_evaluation_is_noted(tmp_path):
    run = _Run(tmp_path / "r", "binary", "seed 0", Completion(False, 1, 5))
    run.record = _Record(DONE)  # trained to the end after evaluate scored epoch 1
    notes = select([run], include_unfinished=True).notes
    assert any("was evaluated at unfinished: 1 of 5 epochs and is now finished: 5 of 5 epochs" in n for n in notes)
