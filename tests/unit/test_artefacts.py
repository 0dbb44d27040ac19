"""The artefact contract: atomic writes, schema checks, the dataset writer's staging and
compaction, a dataset's up-to-date check (the freshness check itself: test_freshness.py)."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from spurspec.artefacts import io, provenance, schemas
from spurspec.artefacts.dataset import Dataset, DatasetWriter, up_to_date
from spurspec.errors import ArtefactError, ExistsError


def _manifest(n: int) -> pa.Table:
    return pa.table({
        "image_id": [f"img{i}" for i in range(n)],
        "patient_id": [f"p{i // 2}" for i in range(n)],
        "split": ["train"] * n,
        "label": [i % 2 for i in range(n)],
        "has_mask": [True] * n,
        "source": [f"src{i}" for i in range(n)],
        "orig_height": [8] * n,
        "orig_width": [8] * n,
        "chest_tube": [1 if i % 3 == 0 else (None if i % 3 == 1 else 0) for i in range(n)],
    })


def _write(out, n=4, keep=None, force=False):
    with DatasetWriter(out, n=n, size=8, channels=1, force=force) as w:
        for i in range(n):
            w.put(i, np.full((1, 8, 8), i, np.uint8), np.eye(8, dtype=np.uint8) * (i % 2))
        w.finish(_manifest(n), ["chest_tube"], {"name": "t"}, {"k": 1}, {"in": "x"}, keep=keep)


def test_atomic_path_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "t.txt"
    with pytest.raises(RuntimeError):
        with io.atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("killed")
    assert not target.exists()
    assert list(tmp_path.iterdir()) == []


def test_write_table_keeps_schema_version_and_is_byte_stable(tmp_path):
    table = pa.table({"input": ["a"], "reason": ["b"]})
    io.write_table(tmp_path / "a.parquet", table, schemas.REJECTS)
    io.write_table(tmp_path / "b.parquet", table, schemas.REJECTS)
    assert (tmp_path / "a.parquet").read_bytes() == (tmp_path / "b.parquet").read_bytes()
    back = io.read_table(tmp_path / "a.parquet")
    schemas.check(back, schemas.REJECTS)
    with pytest.raises(ArtefactError, match="not a spurspec boxes table"):
        schemas.check(back, schemas.BOXES)


def test_dataset_writer_round_trip_and_compaction(tmp_path):
    out = tmp_path / "ds"
    _write(out, n=5, keep=[0, 2, 4])
    ds = Dataset.open(out)
    assert ds.manifest.column("image_id").to_pylist() == ["img0", "img2", "img4"]
    assert ds.manifest.column("row").to_pylist() == [0, 1, 2]
    assert ds.images()[:, 0, 0, 0].tolist() == [0, 2, 4]
    assert ds.spurious == ["chest_tube"]
    assert ds.manifest.column("chest_tube").to_pylist() == [1, 0, None]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_dataset_writer_failure_writes_nothing(tmp_path):
    out = tmp_path / "ds"
    with pytest.raises(ValueError):
        with DatasetWriter(out, n=2, size=8, channels=1) as w:
            w.put(0, np.zeros((1, 8, 8), np.uint8), None)
            raise ValueError("bad row")
    assert not out.exists()
    assert list(tmp_path.iterdir()) == []


def test_existing_dataset_needs_force_and_old_one_survives_failure(tmp_path):
    out = tmp_path / "ds"
    _write(out)
    with pytest.raises(ExistsError):
        _write(out)
    with pytest.raises(ValueError):
        with DatasetWriter(out, n=2, size=8, channels=1, force=True):
            raise ValueError("killed mid-way")
    assert Dataset.open(out).manifest.num_rows == 4


def test_up_to_date_matches_recorded_settings(tmp_path):
    out = tmp_path / "ds"
    _write(out)
    assert up_to_date(out, "ingest", {"k": 1}, {"in": "x"}, force=False)
    assert not up_to_date(out, "ingest", {"k": 1}, {"in": "x"}, force=True)
    with pytest.raises(ExistsError, match=r"ds: already holds a dataset made with other settings or inputs "
                                          r"\(setting k: 1 -> 2; input in changed\); pass --force to replace it"):
        up_to_date(out, "ingest", {"k": 2}, {"in": "y"}, force=False)
    rec = io.read_json(out / "provenance" / "ingest.json")
    assert rec["versions"]["numpy"] == np.__version__
    (out / "provenance" / "ingest.json").unlink()  # a dataset without its record: refused, saying so
    with pytest.raises(ExistsError, match="without a readable record of its settings and inputs"):
        up_to_date(out, "ingest", {"k": 1}, {"in": "x"}, force=False)
    (out / "manifest.parquet").unlink()
    with pytest.raises(ExistsError, match="exists and is not a spurspec dataset"):
        up_to_date(out, "ingest", {"k": 1}, {"in": "x"}, force=False)


def test_digests(tmp_path):
    a = tmp_path / "a"
    a.write_text("x")
    assert provenance.file_digest(a).startswith("sha256:")
    d1 = provenance.tree_digest([a], tmp_path)
    a.write_text("xy")
    assert provenance.tree_digest([a], tmp_path) != d1
