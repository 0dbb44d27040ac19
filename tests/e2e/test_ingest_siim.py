"""`spurspec ingest siim` end to end through the real CLI on generated SIIM-format folders:
JPEG-Baseline DICOMs (stage-1 nested and stage-2 flat layouts) around real label rows and real
chest-tube labels; manifest, masks, full-size RLE, splits, re-runs; every kind of bad input
stops with a message naming it and writes nothing, or with --skip-bad is listed in rejects."""

from __future__ import annotations

import pickle
import shutil
from collections import defaultdict
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from conftest import real_data_dir
from siim_builder import chest_like, pick_real, write_folder

from spurspec.artefacts.dataset import Dataset
from spurspec.imaging import rle
from spurspec.imaging.resize import resize_image, resize_mask

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def stage1(tmp_path_factory):
    """12 tube-labelled images (3 per label x tube cell), 2 multi-row positives, 4 untubed
    negatives, all with their real RLE rows; one row duplicated (identical duplicates are fine)."""
    real = real_data_dir()
    if not (real / "README.md").exists():
        pytest.skip(f"real label files not found at {real} (set SPURSPEC_REAL_DATA)")
    rows, tubes = pick_real(real, per_cell=3, untubed=6, multi_row=2)
    root = tmp_path_factory.mktemp("siim1")
    # Two images share a patient, to check that patients stay whole.
    patients = {rows[0][0]: "SHARED", rows[-1][0]: "SHARED"}
    paths = write_folder(root, rows + [rows[0]], "stage1", 1024, patients=patients)
    tube_csv = root / "tubes.csv"
    tube_csv.write_text("ImageId,chest_tube\n" + "".join(f"{k},{v}\n" for k, v in tubes.items()))
    real_by_id = defaultdict(list)
    for image_id, text in rows:
        real_by_id[image_id].append(text)
    return root, dict(real_by_id), tubes, tube_csv, list(paths)


def test_stage1_ingest_manifest_masks_splits_and_rerun(stage1, tmp_path, cli):
    root, real_by_id, tubes, tube_csv, order = stage1
    out = tmp_path / "ds"
    args = ["ingest", "siim", root, "--out", out, "--tube-labels", tube_csv, "--size", "64", "--workers", "2"]
    result = cli(args)
    assert "split" in result.stdout and "chest_tube" in result.stdout and f"{len(real_by_id)} images" in result.stdout

    ds = Dataset.open(out)
    m = ds.manifest.to_pydict()
    assert sorted(m["image_id"]) == sorted(real_by_id) and ds.spurious == ["chest_tube"]
    assert str(ds.manifest.schema.field("chest_tube").type) == "int8"
    assert {"view_position", "sex", "age"} <= set(ds.manifest.column_names)
    images, masks = ds.images(), ds.masks()
    assert images.shape == (len(real_by_id), 1, 64, 64) and masks.shape == (len(real_by_id), 64, 64)
    assert ds.info["negatives_with_regions"] == 0  # a film without pneumothorax has an empty mask
    full = {r["image_id"]: r for r in pq.read_table(out / "mask_rle.parquet").to_pylist()}
    for row, image_id in enumerate(m["image_id"]):
        assert m["row"][row] == row
        union = rle.union(real_by_id[image_id], 1024, 1024)
        assert m["label"][row] == int(union.any()) and m["has_mask"][row]
        assert m["chest_tube"][row] == tubes.get(image_id)
        assert np.array_equal(masks[row], resize_mask(union, 64))
        assert np.array_equal(rle.decode(full[image_id]["rle"], 1024, 1024), union)
        assert (m["orig_height"][row], m["orig_width"][row], m["view_position"][row]) == (1024, 1024, "PA")
        assert m["sex"][row] in ("M", "F") and 20 <= m["age"][row] < 60 and Path(m["source"][row]).is_file()
    # Image content: the fast path's output is the generated radiograph at 64 px.
    k = order.index(m["image_id"][0])  # write_folder seeds each image by its position
    reference = resize_image(chest_like(1024, 1024, k), 64)[0]
    assert np.abs(images[0, 0].astype(int) - reference).mean() < 2.0

    splits = dict(zip(m["image_id"], m["split"], strict=True))
    assert all(splits[i] in ("val", "test") for i in tubes) and {splits[i] for i in tubes} == {"val", "test"}
    assert all(s == "train" for i, s in splits.items() if i not in tubes and m["patient_id"][m["image_id"].index(i)] != "SHARED")
    by_patient = defaultdict(set)
    for p, s in zip(m["patient_id"], m["split"], strict=True):
        by_patient[p].add(s)
    assert all(len(v) == 1 for v in by_patient.values()) and len(by_patient["SHARED"]) == 1

    # Same settings and inputs: nothing to do; other settings need --force.
    assert "up to date" in cli(args).stdout
    other = cli([*args, "--seed", "5"], expect=4)
    assert "--force" in other.output
    cli([*args, "--seed", "5", "--force"])
    assert Dataset.open(out).manifest.num_rows == len(real_by_id)


def test_stage2_flat_layout_pickle_tubes_and_limit(stage1, tmp_path, cli):
    _, real_by_id, tubes, _, _ = stage1
    root = tmp_path / "siim2"
    rows = [(i, t) for i in sorted(real_by_id) for t in real_by_id[i]]
    write_folder(root, rows, "stage2", 1024)
    (root / "stage_2_images" / "notes.txt").write_text("not an image")
    pkl = tmp_path / "cxr_tube_dict.pkl"
    pkl.write_bytes(pickle.dumps({i: bool(v) for i, v in tubes.items()}))  # the authors' format
    out = tmp_path / "ds2"
    toml = tmp_path / "siim.toml"
    toml.write_text("size = 48\nlimit = 8\nseed = 2\n")
    result = cli(["ingest", "siim", root, "--out", out, "--tube-labels", pkl, "--size", "32", "--workers", "1", "--config", toml])
    assert "--limit" in result.stdout
    assert Dataset.open(out).size == 32  # the flag beats the TOML file
    m = Dataset.open(out).manifest.to_pydict()
    assert len(m["image_id"]) <= 8
    cells = {(y, t) for y, t in zip(m["label"], m["chest_tube"], strict=True)}
    assert {(0, 0), (0, 1), (1, 0), (1, 1)} <= cells
    toml.write_text("sizes = 48\n")
    assert "siim.toml: unknown key 'sizes'; did you mean 'size'?" in cli(["ingest", "siim", root, "--out", out, "--config", toml], expect=2).output


# ---- bad input: a tiny 64 px folder with small hand-written RLE rows ----------------------

TINY_ROWS = [("1.2.1", "100 5 59 5"), ("1.2.1", "300 10"), ("1.2.2", "-1"), ("1.2.3", "0 64"), ("1.2.4", "-1"), ("1.2.5", "-1")]
TINY_TUBES = {"1.2.1": 1, "1.2.2": 0, "1.2.3": 0, "1.2.4": 1}


def _tiny(root: Path, rows=TINY_ROWS, tubes=TINY_TUBES) -> tuple[dict[str, Path], Path]:
    paths = write_folder(root, rows, "stage1", 64)
    tube_csv = root / "tubes.csv"
    tube_csv.write_text("ImageId,chest_tube\n" + "".join(f"{k},{v}\n" for k, v in tubes.items()))
    return paths, tube_csv


def _truncate(paths, root):
    data = paths["1.2.2"].read_bytes()
    paths["1.2.2"].write_bytes(data[: len(data) // 2])
    return str(paths["1.2.2"]), "truncated DICOM"


def _not_dicom(paths, root):
    paths["1.2.2"].write_text("this is a text file named .dcm")
    return str(paths["1.2.2"]), "not a DICOM file"


def _no_pixels(paths, root):
    import pydicom

    ds = pydicom.dcmread(paths["1.2.2"])
    del ds.PixelData
    ds.save_as(paths["1.2.2"])
    return str(paths["1.2.2"]), "no pixel data"


def _edit_csv(root, old, new):
    csv = root / "train-rle.csv"
    csv.write_text(csv.read_text().replace(old, new))
    return f"{csv}:"


def _odd_rle(paths, root):
    return _edit_csv(root, "1.2.3,0 64", "1.2.3,0 64 7") + "5", "odd number of tokens"


def _huge_rle(paths, root):  # numpy raises OverflowError here, which once escaped as a traceback
    return _edit_csv(root, "1.2.3,0 64", "1.2.3,0 99999999999999999999") + "5", "number too large for any image"


def _past_image(paths, root):
    return _edit_csv(root, "1.2.3,0 64", "1.2.3,4090 64") + "5", "runs past the image: ends at pixel 4154 of 4096"


def _csv_without_dicom(paths, root):
    shutil.rmtree(paths["1.2.5"].parent.parent)
    return f"{root / 'train-rle.csv'}:7", "ImageId 1.2.5 has no DICOM"


def _dicom_without_row(paths, root):
    return str(paths["1.2.5"]), "DICOM has no row", _edit_csv(root, "1.2.5,-1\n", "")


def _conflict(paths, root):
    return _edit_csv(root, "1.2.4,-1\n", "1.2.4,-1\n1.2.4,5 3\n") + "6", "conflicting rows"


def _unknown_tube(paths, root):
    tube_csv = root / "tubes.csv"
    tube_csv.write_text(tube_csv.read_text() + "9.9.9,1\n")
    return f"{tube_csv}: 9.9.9", "chest-tube label for an image not in"


BAD = {
    "truncated": (_truncate, 4),
    "not_dicom": (_not_dicom, 4),
    "no_pixels": (_no_pixels, 4),
    "odd_rle": (_odd_rle, 4),
    "huge_rle": (_huge_rle, 4),
    "past_image": (_past_image, 4),
    "csv_without_dicom": (_csv_without_dicom, 4),
    "dicom_without_row": (_dicom_without_row, 4),
    "conflict": (_conflict, 4),
    "unknown_tube": (_unknown_tube, 5),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_input_stops_or_is_skipped(tmp_path, cli, case):
    make, n_good = BAD[case]
    root = tmp_path / "siim"
    paths, tube_csv = _tiny(root)
    where, why, *_ = make(paths, root)
    out = tmp_path / "ds"
    base = ["ingest", "siim", root, "--out", out, "--tube-labels", tube_csv, "--size", "16", "--workers", "1"]
    failed = cli(base, expect=2)
    error = [line for line in failed.output.splitlines() if line.startswith("error: ")]  # one line of its own
    assert len(error) == 1 and where in error[0] and why in error[0] and "--skip-bad" in error[0]
    assert not out.exists() and not list(tmp_path.glob(".ds*"))

    skipped = cli([*base, "--skip-bad"])
    assert "rejected 1 input(s)" in skipped.stdout
    manifest = Dataset.open(out).manifest
    assert manifest.num_rows == n_good
    rejects = pq.read_table(out / "rejects.parquet").to_pylist()
    assert len(rejects) == 1 and where in f"{rejects[0]['input']}: {rejects[0]['reason']}" and why in rejects[0]["reason"]
    masks = Dataset.open(out).masks()
    ids = manifest.column("image_id").to_pylist()
    if "1.2.1" in ids:  # two rows OR-ed, at full size and at training size
        full = rle.union(["100 5 59 5", "300 10"], 64, 64)
        assert np.array_equal(masks[ids.index("1.2.1")], resize_mask(full, 16))
