"""`spurspec derive-boxes` end to end on a tiny dataset built with DatasetWriter: union and
component boxes in original and training pixels, filled box masks, exact grids from the
full-resolution RLE, the training-mask fallback, up-to-date re-runs and bad options."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from spurspec.artefacts.dataset import DatasetWriter
from spurspec.artefacts.layout import DatasetLayout
from spurspec.imaging import boxes as bx
from spurspec.imaging import rle
from spurspec.imaging.resize import resize_mask

H, W, S = 40, 32, 16


def _full_masks():
    a = np.zeros((H, W), np.uint8)
    a[2:6, 3:7] = 1
    a[30:35, 20:30] = 1
    b = np.zeros((H, W), np.uint8)  # known-empty mask: no boxes
    d = np.zeros((H, W), np.uint8)
    d[39, 31] = 1  # a single corner pixel: the last grid cell, whatever k is
    return {"a": a, "b": b, "c": None, "d": d}


def _build(root, with_rle=True):
    masks = _full_masks()
    ids = list(masks)
    with DatasetWriter(root, n=len(ids), size=S, channels=1) as w:
        for i, k in enumerate(ids):
            m = masks[k]
            w.put(i, np.full((1, S, S), 7 * i, np.uint8), None if m is None else resize_mask(m, S))
        manifest = pa.table(
            {
                "image_id": ids,
                "patient_id": ids,
                "split": ["train", "train", "val", "test"],
                "label": pa.array([1, 0, 0, 1], pa.int8()),
                "has_mask": [m is not None for m in masks.values()],
                "source": [f"{k}.png" for k in ids],
                "orig_height": pa.array([H] * 4, pa.int32()),
                "orig_width": pa.array([W] * 4, pa.int32()),
            }
        )
        rles = [(k, rle.encode(m)) for k, m in masks.items() if m is not None]
        mask_rle = pa.table({"image_id": [k for k, _ in rles], "height": [H] * 3, "width": [W] * 3, "rle": [r for _, r in rles]})
        w.finish(manifest, spurious=[], info={"name": "tiny"}, settings={}, inputs={}, mask_rle=mask_rle if with_rle else None)
    return masks


def test_union_boxes_grids_and_rerun(tmp_path, cli):
    root = tmp_path / "ds"
    masks = _build(root)
    res = cli(["derive-boxes", root, "--grid", "4", "--grid", "5"])
    assert "2 of 4 images have boxes" in res.stdout
    assert "grids written: 4x4, 5x5" in res.stdout
    lay = DatasetLayout(root)
    boxes = pq.read_table(lay.boxes).to_pylist()
    assert [(b["image_id"], b["box_index"]) for b in boxes] == [("a", 0), ("d", 0)]
    a = boxes[0]
    assert (a["x0"], a["y0"], a["x1"], a["y1"]) == (3, 2, 30, 35)
    assert a["area"] == 27 * 33
    assert (a["train_x0"], a["train_y0"], a["train_x1"], a["train_y1"]) == bx.to_training((3, 2, 30, 35), H, W, S)
    d = boxes[1]
    assert (d["x0"], d["y0"], d["x1"], d["y1"]) == (31, 39, 32, 40)
    filled = np.load(lay.box_masks)
    assert filled.shape == (4, S, S) and filled.dtype == np.uint8
    assert filled[1].sum() == 0 and filled[2].sum() == 0
    assert np.array_equal(filled[0], bx.fill_boxes([bx.to_training((3, 2, 30, 35), H, W, S)], S))
    # the box covers the training-size mask it was derived from
    train_masks = np.load(lay.masks)
    assert (train_masks[0] <= filled[0]).all() and (train_masks[3] <= filled[3]).all()
    g5 = np.load(lay.grid(5))
    assert g5.shape == (4, 5, 5)
    for i, m in enumerate(masks.values()):
        assert np.array_equal(g5[i], bx.grid_mask(m, 5) if m is not None else np.zeros((5, 5)))
    assert g5[3].sum() == 1 and g5[3, 4, 4] == 1

    again = cli(["derive-boxes", root, "--grid", "5", "--grid", "4"])
    assert "up to date" in again.stdout
    forced = cli(["derive-boxes", root, "--grid", "4", "--grid", "5", "--force"])
    assert "2 of 4 images have boxes" in forced.stdout
    # Derived data: other settings redo it without --force, saying what changed.
    wider = cli(["derive-boxes", root, "--grid", "4", "--grid", "5", "--margin", "1"])
    assert f"note: {root}: held boxes and grids made with other settings or inputs (setting margin: 0 -> 1); redone" in wider.stdout


def test_components_and_margin(tmp_path, cli):
    root = tmp_path / "ds"
    _build(root)
    cli(["derive-boxes", root, "--mode", "components", "--margin", "2", "--grid", "2"])
    boxes = pq.read_table(DatasetLayout(root).boxes).to_pylist()
    got = [(b["image_id"], b["x0"], b["y0"], b["x1"], b["y1"]) for b in boxes]
    assert got == [("a", 1, 0, 9, 8), ("a", 18, 28, 32, 37), ("d", 29, 37, 32, 40)]
    filled = np.load(DatasetLayout(root).box_masks)
    expect = bx.fill_boxes([bx.to_training(b[1:], H, W, S) for b in got[:2]], S)
    assert np.array_equal(filled[0], expect)


def test_fallback_to_training_masks_says_so(tmp_path, cli):
    root = tmp_path / "ds"
    _build(root, with_rle=False)
    res = cli(["derive-boxes", root, "--grid", "4"])
    assert "mask_rle.parquet absent" in res.stdout
    boxes = pq.read_table(DatasetLayout(root).boxes).to_pylist()
    a = boxes[0]
    # scaled back from 16x16: still covers the true box
    assert a["x0"] <= 3 and a["y0"] <= 2 and a["x1"] >= 30 and a["y1"] >= 35
    assert DatasetLayout(root).grid(4).exists()


@pytest.mark.parametrize(
    "args,needle",
    [(["--mode", "diagonal"], "'diagonal'"), (["--margin", "-1"], "margin"), (["--grid", "99"], "grid sizes")],
)
def test_bad_options_fail_clearly_and_write_nothing(tmp_path, cli, args, needle):
    root = tmp_path / "ds"
    _build(root)
    res = cli(["derive-boxes", root, *args], expect=2)
    assert needle in res.output
    assert not DatasetLayout(root).boxes.exists()


def test_not_a_dataset(tmp_path, cli):
    res = cli(["derive-boxes", tmp_path], expect=3)
    assert "not a spurspec dataset" in res.output


def test_training_derives_boxes_through_the_stage_and_says_what_it_wrote(tmp_path, cli):
    """A grid run on a dataset without grids runs the derive-boxes stage itself: the same files
    and provenance as the command with those grids, and the command's lines, marked as train's."""
    import json

    from spurspec.artefacts.dataset import Dataset
    from spurspec.training.data import granularity

    by_train, by_command = tmp_path / "by_train", tmp_path / "by_command"
    _build(by_train)
    _build(by_command)
    said: list[str] = []
    granularity.prepare(Dataset.open(by_train), granularity.parse("grid:4"), "union", said.append)
    res = cli(["derive-boxes", by_command, *(arg for k in (2, 4, 8, 16) for arg in ("--grid", k))])

    prefix = "derive-boxes (run by train, written into the dataset): "
    assert "deriving boxes" in said[0]
    assert said[1:] == [prefix + line.replace(str(by_command), str(by_train)) for line in res.stdout.splitlines()]
    a, b = DatasetLayout(by_train), DatasetLayout(by_command)
    assert pq.read_table(a.boxes).equals(pq.read_table(b.boxes))
    for k in (2, 4, 8, 16):
        assert np.array_equal(np.load(a.grid(k)), np.load(b.grid(k)))
    settings = [json.loads(lay.provenance("derive-boxes").read_text())["settings"] for lay in (a, b)]
    assert [{**s, "dataset": None} for s in settings] == [{**settings[1], "dataset": None}] * 2
