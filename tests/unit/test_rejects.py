"""The one collector of bad inputs every ingest uses: without --skip-bad it stops naming the
first bad input (counting the others when a source checks many at once); with it, every bad
input is kept for rejects.parquet."""

from __future__ import annotations

import pytest

from spurspec.datasets.common import Rejects
from spurspec.errors import InputError


def test_without_skip_bad_a_reject_stops_at_once_naming_it():
    rejects = Rejects(skip_bad=False)
    with pytest.raises(InputError, match=r"^a.csv row 2: label is empty \(use --skip-bad to leave it out\)$"):
        rejects.reject("a.csv row 2", "label is empty")


def test_rows_checked_together_stop_naming_the_first_and_counting_the_rest():
    rejects = Rejects(skip_bad=False)
    rejects.add("x.dcm", "no pixels")
    rejects.add("y.dcm", "not a DICOM")
    with pytest.raises(InputError, match=r"^x.dcm: no pixels \(and 1 more problem\(s\)\); use --skip-bad"):
        rejects.stop()


def test_with_skip_bad_every_reject_is_kept_for_the_table():
    rejects = Rejects(skip_bad=True)
    assert rejects.table() is None
    rejects.reject("x.dcm", "no pixels")
    rejects.add("y.dcm", "not a DICOM")
    rejects.stop()
    assert rejects.table().to_pylist() == [{"input": "x.dcm", "reason": "no pixels"}, {"input": "y.dcm", "reason": "not a DICOM"}]
