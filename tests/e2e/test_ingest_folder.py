"""`spurspec ingest folder` end to end: a CSV/Parquet table of PNG, JPEG, NIfTI and DICOM images
with PNG/NIfTI masks and an RLE column -> manifest, arrays, full-resolution mask RLE; bad rows
and files fail naming the row, or are rejected with --skip-bad."""

from __future__ import annotations

import csv

import nibabel as nib
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pydicom
import pytest
from PIL import Image
from pydicom.dataset import FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid

from spurspec.artefacts.dataset import Dataset
from spurspec.artefacts.layout import DatasetLayout
from spurspec.imaging import rle
from spurspec.imaging.resize import resize_mask

H, W, S = 24, 20, 16


def _image(seed):
    return np.random.default_rng(seed).integers(0, 255, (H, W), dtype=np.uint8)


def _mask(x0, y0, x1, y1, h=H, w=W):
    m = np.zeros((h, w), np.uint8)
    m[y0:y1, x0:x1] = 1
    return m


def _dicom(path, pixels):
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = pydicom.Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = SecondaryCaptureImageStorage
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.PatientID = "p9"
    ds.Modality = "CR"
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = ds.BitsStored = 8
    ds.HighBit = 7
    ds.PixelRepresentation = 0
    ds.PixelData = pixels.tobytes()
    ds.save_as(path, enforce_file_format=True)


def _nifti(path, arr):
    nib.save(nib.Nifti1Image(arr, np.eye(4)), str(path))


@pytest.fixture
def folder(tmp_path):
    d = tmp_path / "data"
    (d / "img").mkdir(parents=True)
    masks = {
        "png": _mask(2, 3, 8, 9),
        "nii": _mask(10, 10, 18, 20),
        "dcm": _mask(0, 0, 5, 4),
    }
    Image.fromarray(_image(1)).save(d / "img/a.png")
    Image.fromarray(masks["png"] * 255).save(d / "img/a_mask.png")
    _nifti(d / "img/b.nii.gz", _image(2).astype(np.int16))
    _nifti(d / "img/b_mask.nii.gz", masks["nii"])
    _dicom(d / "img/c.dcm", _image(3))
    rgb = np.stack([_image(4), _image(5), _image(6)], axis=2)
    Image.fromarray(rgb).save(d / "img/d.jpg", quality=95, subsampling=0)  # 4:4:4, so channels stay apart
    Image.fromarray(_image(7)).save(d / "img/e.png")
    rows = [
        {"path": "img/a.png", "y": "1", "mask": "img/a_mask.png", "enc": "", "tube": "1", "pid": "p1", "part": "train"},
        {"path": "img/b.nii.gz", "y": "1", "mask": "img/b_mask.nii.gz", "enc": "", "tube": "0", "pid": "p2", "part": "train"},
        {"path": "img/c.dcm", "y": "1", "mask": "", "enc": rle.encode(masks["dcm"]), "tube": "", "pid": "p3", "part": "val"},
        {"path": "img/d.jpg", "y": "0", "mask": "", "enc": "-1", "tube": "1", "pid": "p4", "part": "test"},
        {"path": "img/e.png", "y": "0", "mask": "", "enc": "", "tube": "0", "pid": "p4", "part": "test"},
    ]
    _write_csv(d / "table.csv", rows)
    return d, rows, masks


def _write_csv(path, rows):
    with open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)


BASE = ["--image-col", "path", "--label-col", "y", "--mask-col", "mask", "--rle-col", "enc", "--spurious-cols", "tube", "--size", S]


def test_mixed_formats_with_masks_and_rle(folder, tmp_path, cli):
    d, rows, masks = folder
    out = tmp_path / "ds"
    res = cli(["ingest", "folder", d / "table.csv", "--out", out, *BASE, "--patient-col", "pid", "--split-col", "part"])
    assert "5 images" in res.stdout
    ds = Dataset.open(out)
    m = ds.manifest.to_pydict()
    assert m["image_id"] == ["img/a", "img/b", "img/c", "img/d", "img/e"]
    assert m["split"] == ["train", "train", "val", "test", "test"]
    assert m["label"] == [1, 1, 1, 0, 0]
    assert m["tube"] == [1, 0, None, 1, 0]
    assert m["has_mask"] == [True, True, True, True, False]  # "-1" is a known-empty mask
    assert m["orig_height"] == [H] * 5 and m["orig_width"] == [W] * 5
    assert m["patient_id"] == ["p1", "p2", "p3", "p4", "p4"]
    assert ds.images().shape == (5, 1, S, S) and ds.channels == 1
    # the grey DICOM and PNG come through pixel-faithfully (only resized); NIfTI keeps its
    # orientation (noise images: a transpose or flip would leave no correlation)
    assert np.abs(ds.images()[2, 0].astype(int) - resize_img(_image(3))).max() <= 1
    assert np.abs(ds.images()[0, 0].astype(int) - resize_img(_image(1))).max() <= 1
    assert _corr(ds.images()[1, 0], resize_img(_image(2))) > 0.99
    train_masks = ds.masks()
    for i, key in enumerate(["png", "nii", "dcm"]):
        assert np.array_equal(train_masks[i], resize_mask(masks[key], S)), key
    assert train_masks[3].sum() == 0
    full = pq.read_table(DatasetLayout(out).mask_rle).to_pydict()
    assert full["image_id"] == ["img/a", "img/b", "img/c", "img/d"]
    assert rle.decode(full["rle"][1], H, W).astype(np.uint8).tolist() == masks["nii"].tolist()
    assert full["rle"][3] == "-1"

    again = cli(["ingest", "folder", d / "table.csv", "--out", out, *BASE, "--patient-col", "pid", "--split-col", "part"])
    assert "up to date" in again.stdout


def test_mask_resize_max_is_recorded_and_datasets_made_before_it_stay_up_to_date(folder, tmp_path, cli):
    """--mask-resize max max-pools the masks (24 x 20 -> 16: the general path) and says so in
    dataset.json and provenance; a default ingest records no setting, as one made before the
    option did, so such a dataset (its dataset.json without the key) still opens and re-runs
    as up to date; changing the rule later is a stale dataset (exit 4); a bad rule is exit 2."""
    import json

    from spurspec.datasets.common import decode_file
    from spurspec.imaging.resize import max_pool

    d, _, masks = folder
    args = ["ingest", "folder", d / "table.csv", *BASE, "--patient-col", "pid", "--split-col", "part"]
    cli([*args, "--out", tmp_path / "max", "--mask-resize", "max"])
    ds = Dataset.open(tmp_path / "max")
    for i, key in enumerate(["png", "nii", "dcm"]):
        assert np.array_equal(ds.masks()[i], max_pool(masks[key], S)), key
    two = np.zeros((H, W), np.uint8)
    two[1, 1] = two[20, 15] = 1  # two specks: area keeps only the strongest cell, max both
    payload = (str(d / "img/a.png"), None, rle.encode(two), S, 1, "max")
    assert np.array_equal(decode_file(payload).mask, max_pool(two, S)) and max_pool(two, S).sum() == 2
    assert decode_file((*payload[:5], "area")).mask.sum() == 1
    layout = DatasetLayout(tmp_path / "max")
    assert ds.info["mask_resize"] == "max" and json.loads(layout.provenance("ingest").read_text())["settings"]["mask_resize"] == "max"

    out = tmp_path / "area"
    cli([*args, "--out", out])
    layout = DatasetLayout(out)
    assert "mask_resize" not in json.loads(layout.provenance("ingest").read_text())["settings"]
    info = json.loads(layout.info.read_text())
    assert info.pop("mask_resize") == "area"
    layout.info.write_text(json.dumps(info))  # as written before the option existed
    assert "up to date" in cli([*args, "--out", out]).stdout
    assert "mask_resize" not in Dataset.open(out).info
    res = cli([*args, "--out", out, "--mask-resize", "max"], expect=4)
    assert "setting mask_resize: absent -> \"max\"" in res.output
    res = cli([*args, "--out", tmp_path / "x", "--mask-resize", "nearest"], expect=2)
    assert "nearest" in res.output


def _corr(a, b) -> float:
    return float(np.corrcoef(np.asarray(a, float).ravel(), np.asarray(b, float).ravel())[0, 1])


def resize_img(a):
    from spurspec.imaging.resize import resize_image

    return resize_image(a, S)[0].astype(int)


def test_parquet_rgb_and_drawn_splits_keep_patients_together(folder, tmp_path, cli):
    d, rows, _ = folder
    pq.write_table(pa.Table.from_pylist(rows), d / "table.parquet")
    out = tmp_path / "rgb"
    res = cli(["ingest", "folder", d / "table.parquet", "--out", out, *BASE, "--patient-col", "pid", "--channels", 3, "--seed", 3])
    assert "splits drawn by pid" in res.stdout
    ds = Dataset.open(out)
    assert ds.images().shape == (5, 3, S, S)
    for channel, seed in enumerate((4, 5, 6)):  # RGB order kept through decode and resize
        assert _corr(ds.images()[3, channel], resize_img(_image(seed))) > 0.9
    m = ds.manifest.to_pydict()
    assert m["split"][3] == m["split"][4]  # p4's two images share a split
    assert set(m["split"]) <= {"train", "val", "test"}


@pytest.mark.parametrize(
    "edit,needle",
    [
        (lambda d, rows: rows[0].update(path="img/missing.png"), "row 1 (img/missing.png): " ),
        (lambda d, rows: Image.fromarray(np.zeros((5, 5), np.uint8)).save(d / "img/a_mask.png"), "is 5x5 but its image is 24x20"),
        (lambda d, rows: Image.fromarray((_mask(1, 1, 3, 3) * 7).astype(np.uint8)).save(d / "img/a_mask.png"), "found {0, 7}"),
        (lambda d, rows: rows[2].update(y="2"), "row 3: y must be 0 or 1, found '2'"),
        (lambda d, rows: rows[2].update(enc="5 10 3"), "odd number of tokens"),
        (lambda d, rows: (d / "img/e.png").write_bytes(b"not a png"), "row 5 (img/e.png): "),
    ],
)
def test_bad_input_names_the_row_and_writes_nothing(folder, tmp_path, cli, edit, needle):
    d, rows, _ = folder
    edit(d, rows)
    _write_csv(d / "table.csv", rows)
    out = tmp_path / "bad"
    res = cli(["ingest", "folder", d / "table.csv", "--out", out, *BASE], expect=2)
    assert needle in res.output
    assert not out.exists()


def test_skip_bad_writes_good_rows_and_rejects(folder, tmp_path, cli):
    d, rows, _ = folder
    rows[1]["path"] = "img/gone.nii.gz"
    rows[3]["y"] = "maybe"
    _write_csv(d / "table.csv", rows)
    out = tmp_path / "skip"
    res = cli(["ingest", "folder", d / "table.csv", "--out", out, *BASE, "--skip-bad"])
    assert "3 images" in res.stdout and "rejected 2" in res.stdout
    rej = pq.read_table(DatasetLayout(out).rejects).to_pydict()
    assert len(rej["input"]) == 2
    assert any("gone.nii.gz" in r for r in rej["input"] + rej["reason"])
    assert Dataset.open(out).manifest.column("image_id").to_pylist() == ["img/a", "img/c", "img/e"]


def test_column_names_are_checked(folder, tmp_path, cli):
    d, _, _ = folder
    res = cli(["ingest", "folder", d / "table.csv", "--out", tmp_path / "x", "--image-col", "path", "--label-col", "nope"], expect=2)
    assert "unknown column 'nope'" in res.output and "columns: path, y, mask" in res.output
    res = cli(["ingest", "folder", d / "table.csv", "--out", tmp_path / "x", "--image-col", "path", "--label-col", 'y"; DROP TABLE t;--'], expect=2)
    assert "not a valid column name" in res.output


def test_readers_cover_16bit_png_nifti_volumes_and_dicom_masks(tmp_path):
    from spurspec.errors import InputError
    from spurspec.imaging import readers

    a16 = (np.arange(H * W, dtype=np.uint16).reshape(H, W) * 100).astype(np.uint16)
    Image.fromarray(a16).save(tmp_path / "deep.png")
    arr, shape = readers.read_image(tmp_path / "deep.png")
    assert shape == (H, W) and arr.dtype == np.uint16 and arr.max() == a16.max()
    vol = np.zeros((H, W, 5), np.float32)
    vol[:, :, 2] = 1.0  # the middle slice is the one read, for images and masks alike
    _nifti(tmp_path / "vol.nii.gz", vol)
    assert readers.read_mask(tmp_path / "vol.nii.gz").all()
    _dicom(tmp_path / "m.dcm", _mask(1, 1, 4, 4))
    assert readers.read_mask(tmp_path / "m.dcm").sum() == 9
    _dicom(tmp_path / "noext", _image(1))
    assert readers.read_image(tmp_path / "noext")[1] == (H, W)  # sniffed by the DICM preamble
    (tmp_path / "fake.dcm").write_bytes(b"\0" * 200)
    with pytest.raises(InputError, match="fake.dcm"):
        readers.read_image(tmp_path / "fake.dcm")
    rgb = np.zeros((2, 2, 3), np.uint8)
    rgb[..., 1] = 200
    assert readers.to_channels(rgb, 1).tolist() == [[117, 117], [117, 117]]  # 0.587 * 200
    assert readers.to_channels(rgb[..., 1], 3).shape == (2, 2, 3)


def test_the_old_spurious_col_flag_still_works_with_one_warning(folder, tmp_path, cli):
    """--spurious-cols took the name of the settings key (spurious_cols, as a pipeline's
    [datasets.NAME] writes it); the flag's old name gives the same dataset and one line naming
    the new one."""
    d, _, _ = folder
    old = [w if w != "--spurious-cols" else "--spurious-col" for w in BASE]
    res = cli(["ingest", "folder", d / "table.csv", "--out", tmp_path / "old", *old])
    warnings = [line for line in res.stderr.splitlines() if "warning" in line]
    assert warnings == ["warning: --spurious-col is now --spurious-cols (the old name still works)"]
    new = cli(["ingest", "folder", d / "table.csv", "--out", tmp_path / "new", *BASE])
    assert "warning" not in new.stderr
    assert Dataset.open(tmp_path / "old").manifest.column("tube").to_pylist() == \
        Dataset.open(tmp_path / "new").manifest.column("tube").to_pylist() == [1, 0, None, 1, 0]
