"""Chest-tube labels: CSV and the authors' pickle agree on the real files; the restricted
unpickler loads plain data only and refuses a crafted pickle without running it."""

from __future__ import annotations

import collections
import os
import pickle

import pytest

from spurspec.datasets.tubes import load_restricted_pickle, load_tube_labels
from spurspec.errors import InputError


class _RunsCommand:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


class _Evals:
    def __reduce__(self):
        return (eval, ("__import__('os').getcwd()",))


def test_real_pickle_and_csv_agree(real_data):
    from_pickle = load_tube_labels(real_data / "siim" / "cxr_tube_dict.pkl")
    from_csv = load_tube_labels(real_data / "siim" / "chest_tube_labels.csv")
    assert from_pickle == from_csv
    assert len(from_pickle) == 1951 and sum(from_pickle.values()) == 525


def test_malicious_pickle_is_refused_and_never_runs(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps({"1.2.3": _RunsCommand(marker)}))
    with pytest.raises(InputError, match=r"evil\.pkl: unsafe or invalid pickle: refused to load global (posix|os|nt)\.system"):
        load_tube_labels(path)
    assert not marker.exists()


@pytest.mark.parametrize("protocol", [0, 2, 5])
def test_any_global_is_refused(tmp_path, protocol):
    for obj in (_Evals(), collections.OrderedDict(a=True), {"a": {1, 2}.__class__}):
        path = tmp_path / "g.pkl"
        path.write_bytes(pickle.dumps(obj, protocol=protocol))
        with pytest.raises(InputError, match="refused to load global"):
            load_restricted_pickle(path)


@pytest.mark.parametrize("protocol", [0, 2, 4])
def test_plain_data_loads(tmp_path, protocol):
    data = {"1.2.3": True, "1.2.4": False, "1.2.5": 1}
    path = tmp_path / "ok.pkl"
    path.write_bytes(pickle.dumps(data, protocol=protocol))
    assert load_tube_labels(path) == {"1.2.3": 1, "1.2.4": 0, "1.2.5": 1}


@pytest.mark.parametrize(
    ("obj", "why"),
    [([("1.2.3", True)], "expected a pickled dict"), ({"1.2.3": "maybe"}, "not 0/1"), ({"1.2.3": 2}, "not 0/1"), ({3: True}, "not an image id")],
)
def test_pickle_with_wrong_content(tmp_path, obj, why):
    path = tmp_path / "bad.pkl"
    path.write_bytes(pickle.dumps(obj))
    with pytest.raises(InputError, match=why):
        load_tube_labels(path)


def test_truncated_pickle(tmp_path):
    path = tmp_path / "cut.pkl"
    path.write_bytes(pickle.dumps({f"1.2.{i}": True for i in range(50)})[:100])
    with pytest.raises(InputError, match=r"cut\.pkl: (unsafe or invalid|not a readable) pickle"):
        load_tube_labels(path)


def test_csv_is_stripped_and_accepts_true_false(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text(" ImageId , chest_tube \n 1.2.3 , 1\n1.2.4,false\n1.2.3,1\n\n")
    assert load_tube_labels(path) == {"1.2.3": 1, "1.2.4": 0}


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("ImageId,tube\n1.2.3,1\n", "expected columns ImageId,chest_tube"),
        ("ImageId,chest_tube\n1.2.3,1\n1.2.3,0\n", r"t\.csv:3: 1\.2\.3 has chest_tube=0 but line 2 says 1"),
        ("ImageId,chest_tube\n1.2.3,yes please\n", r"t\.csv:2: .*not 0/1"),
        ("ImageId,chest_tube\n1.2.3\n", r"t\.csv:2: expected 2 columns"),
        ("ImageId,chest_tube\n", "holds no chest-tube labels"),
    ],
)
def test_bad_csv(tmp_path, text, why):
    path = tmp_path / "t.csv"
    path.write_text(text)
    with pytest.raises(InputError, match=why):
        load_tube_labels(path)


def test_missing_file(tmp_path):
    with pytest.raises(InputError, match="not found"):
        load_tube_labels(tmp_path / "none.csv")
