"""`spurspec ingest synthetic` through the real CLI: contract, determinism, reversal, masks."""

from __future__ import annotations

import numpy as np
import pyarrow.parquet as pq
import pytest

from spurspec.artefacts.dataset import Dataset
from spurspec.artefacts.provenance import file_digest
from spurspec.imaging import rle

pytestmark = pytest.mark.e2e

ARGS = ["ingest", "synthetic", "--n", "60", "--size", "32", "--seed", "7"]


def test_dataset_contract_and_determinism(cli, tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    result = cli([*ARGS, "--out", a])
    assert "60 images" in result.stdout and "chest_tube" in result.stdout
    cli([*ARGS, "--out", b, "--workers", "2"])
    for name in ("images.npy", "masks.npy", "manifest.parquet", "mask_rle.parquet"):
        assert file_digest(a / name) == file_digest(b / name), name

    ds = Dataset.open(a)
    m = ds.manifest.to_pydict()
    assert ds.spurious == ["chest_tube"] and ds.size == 32 and ds.channels == 1
    assert [m["split"].count(s) for s in ("train", "val", "test")] == [36, 12, 12]
    assert m["image_id"] == m["patient_id"] and all(m["has_mask"])
    y, s, split = np.array(m["label"]), np.array(m["chest_tube"]), np.array(m["split"])
    agree = {k: float((y[split == k] == s[split == k]).mean()) for k in ("train", "val", "test")}
    assert agree["train"] >= 0.85 and agree["val"] >= 0.8 and agree["test"] <= 0.2  # reversed in test

    images, masks = ds.images(), ds.masks()
    assert images.dtype == np.uint8 and images.shape == (60, 1, 32, 32)
    area = masks.reshape(60, -1).sum(1)
    assert (area[y == 1] > 0).all() and (area[y == 0] == 0).all()
    table = pq.read_table(a / "mask_rle.parquet").to_pydict()
    for i in range(60):
        assert (rle.decode(table["rle"][i], 32, 32) == masks[i].astype(bool)).all()


def test_rerun_is_up_to_date_and_settings_change_needs_force(cli, tmp_path):
    out = tmp_path / "d"
    cli([*ARGS, "--out", out])
    assert "up to date" in cli([*ARGS, "--out", out]).stdout
    result = cli([*ARGS, "--out", out, "--correlation", "0.7"], expect=4)
    assert "--force" in result.output
    cli([*ARGS, "--out", out, "--correlation", "0.7", "--force"])


def test_toml_config_and_custom_attribute_name(cli, tmp_path):
    toml = tmp_path / "syn.toml"
    toml.write_text('n = 24\nsize = 32\nspurious_name = "ruler"\ncorrelation = 1.0\n')
    out = tmp_path / "d"
    cli(["ingest", "synthetic", "--config", toml, "--out", out])
    m = Dataset.open(out).manifest.to_pydict()
    assert "ruler" in m and len(m["label"]) == 24
    train = [(yy, ss) for yy, ss, sp in zip(m["label"], m["ruler"], m["split"], strict=True) if sp == "train"]
    assert all(yy == ss for yy, ss in train)


@pytest.mark.parametrize(
    ("extra", "message"),
    [(["--correlation", "1.5"], "agreement"), (["--size", "8"], "size=8"), (["--spurious-name", "a b"], "identifier")],
)
def test_bad_settings_fail_clearly_and_write_nothing(cli, tmp_path, extra, message):
    out = tmp_path / "d"
    result = cli([*ARGS, "--out", out, *extra], expect=2)
    assert message in result.output and "Traceback" not in result.output
    assert not out.exists()
