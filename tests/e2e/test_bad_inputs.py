"""The bad-input corpus: hostile or broken inputs and settings for every stage, generated here,
each through the real CLI. Every case must end with README's promise: its exit code (2 bad input
or settings, 3 missing or stale artefact, 4 an output that is not ours to write), exactly one
stderr line `error: ...` naming the offending file, row or setting, and nothing written or
changed anywhere (files compared by path, size and mtime before and after).

The inputs come from one module-scoped fixture (a tiny synthetic dataset, a one-epoch run,
evaluated, a folder table, a SIIM folder and an ISIC folder); each case builds its damage in its
own temporary folder, copying what it breaks."""

from __future__ import annotations

import gzip
import json
import os
import pickle
import shutil
import socket
import struct
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from spurspec.artefacts.layout import DatasetLayout, RunLayout

pytestmark = pytest.mark.e2e
FAST = ["--epochs", "1", "--batch-size", "8", "--workers", "0", "--device", "cpu"]
FOLDER = ["--image-col", "file", "--label-col", "abnormal", "--mask-col", "mask", "--spurious-cols", "tube", "--size", "16"]
FOLDER_ROWS = [("a.png", "1", "a_mask.png", "1"), ("b.png", "0", "", "0"), ("c.png", "1", "c_mask.png", "0"),
               ("d.png", "0", "", "1")]


def _csv(path: Path, header: list[str], rows: list[tuple]) -> Path:
    path.write_text("\n".join(",".join(map(str, r)) for r in [header, *rows]) + "\n")
    return path


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> Path:
    """ds (synthetic), run (trained one epoch, evaluated), folder/ (PNGs + t.csv), siim/, isic/."""
    from isic_builder import HEADER, bias_rows, write_csv
    from isic_builder import write_folder as write_isic
    from siim_builder import write_folder as write_siim
    from typer.testing import CliRunner

    from spurspec.cli.main import app

    b = tmp_path_factory.mktemp("corpus")
    runner = CliRunner()

    def ok(*args: object) -> None:
        res = runner.invoke(app, [str(a) for a in args])
        assert res.exit_code == 0, f"spurspec {' '.join(map(str, args))}: {res.output}{res.exception!r}"

    ok("ingest", "synthetic", "--out", b / "ds", "--n", 64, "--size", 32)
    ok("train", b / "ds", "--out", b / "run", *FAST)
    ok("evaluate", b / "run", "--bootstrap", 0, "--device", "cpu")
    folder = b / "folder"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for name, _, mask, _ in FOLDER_ROWS:
        Image.fromarray(rng.integers(0, 255, (20, 20), dtype=np.uint8)).save(folder / name)
        if mask:
            m = np.zeros((20, 20), np.uint8)
            m[4:12, 5:15] = 255
            Image.fromarray(m).save(folder / mask)
    _csv(folder / "t.csv", ["file", "abnormal", "mask", "tube"], FOLDER_ROWS)
    write_siim(b / "siim", [("1.2.1", "-1"), ("1.2.2", "10 5 20 5"), ("1.2.3", "-1"), ("1.2.4", "3 4")], size=32)
    ids = [f"ISIC_{n:07d}" for n in range(4)]
    write_isic(b / "isic", ids)
    write_csv(b / "isic" / "bias.csv", HEADER, bias_rows(ids), ";")
    return b


def _snapshot(*roots: Path) -> dict[str, tuple]:
    """Every path under `roots`: directories by name, files by size and mtime."""
    seen = {}
    for root in roots:
        for p in [root, *root.rglob("*")] if root.exists() else []:
            st = p.lstat()
            seen[str(p)] = ("dir",) if p.is_dir() else (st.st_size, st.st_mtime_ns)
    return seen


def _copy(src: Path, t: Path, name: str | None = None) -> Path:
    return Path(shutil.copytree(src, t / (name or src.name)))


def _own_lock(out: Path, stage: str) -> None:
    """A lock file beside `out` held by a live process (this one) on this host."""
    from spurspec.artefacts.locks import _proc_start

    record = {"pid": os.getpid(), "host": socket.gethostname(), "started": "2030-01-01T00:00:00+00:00",
              "stage": stage, "token": "corpus", "proc_start": _proc_start(os.getpid())}
    out.parent.mkdir(parents=True, exist_ok=True)
    (out.parent / f".{out.name}.lock").write_text(json.dumps(record))


# ---- damaged and hostile files --------------------------------------------------------------


def _png_claiming(path: Path, width: int, height: int) -> Path:
    """A 1x1 PNG whose header says width x height: a decompression bomb's header, 70 bytes."""
    Image.fromarray(np.zeros((1, 1), np.uint8)).save(path)
    data = bytearray(path.read_bytes())
    data[16:24] = struct.pack(">II", width, height)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    path.write_bytes(bytes(data))
    return path


def _jpeg_claiming(path: Path, side: int) -> Path:
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(path, format="JPEG")
    data = bytearray(path.read_bytes())
    sof = data.index(b"\xff\xc0")
    data[sof + 5 : sof + 9] = struct.pack(">HH", side, side)
    path.write_bytes(bytes(data))
    return path


def _nifti_claiming(path: Path, side: int) -> Path:
    import nibabel as nib

    nib.save(nib.Nifti1Image(np.zeros((2, 2), np.uint8), np.eye(4)), str(path))
    data = bytearray(path.read_bytes())
    data[42:46] = struct.pack("<hh", side, side)  # dim[1], dim[2] of the NIfTI-1 header
    path.write_bytes(bytes(data))
    return path


def _dicom_claiming(path: Path, rows: int) -> Path:
    import pydicom

    ds = pydicom.dcmread(path)
    ds.Rows = ds.Columns = rows
    ds.save_as(path)
    return path


def _truncate(path: Path, keep: int) -> None:
    path.write_bytes(path.read_bytes()[:keep])


def _edit_manifest(ds: Path, column: str, values: list, type_: pa.DataType | None = None) -> None:
    path = DatasetLayout(ds).manifest
    table = pq.read_table(path)
    i = table.column_names.index(column)
    new = pa.array(values, type_ or table.schema.field(column).type)
    table = table.set_column(i, pa.field(column, new.type), new).replace_schema_metadata(table.schema.metadata)
    pq.write_table(table, path)


def _evil_pickle_file(path: Path, wrap_torch: bool) -> Path:
    class RunsCode:
        def __reduce__(self):
            return (os.system, (f"touch {path.parent / 'pwned'}",))

    if wrap_torch:
        import torch

        torch.save({"format": 1, "model": RunsCode()}, path)
    else:
        path.write_bytes(pickle.dumps({"1.2.1": RunsCode()}))
    return path


# ---- the cases: (name, exit code, text the error line must hold, setup(base, tmp) -> argv) --


def _ingest_syn(t: Path, *extra: object) -> list:
    return ["ingest", "synthetic", "--out", t / "new", "--n", 16, "--size", 32, *extra]


def _folder(b: Path, t: Path, rows=FOLDER_ROWS, header=("file", "abnormal", "mask", "tube"), *extra) -> list:
    folder = _copy(b / "folder", t)
    table = _csv(folder / "t.csv", list(header), rows)
    return ["ingest", "folder", table, "--out", t / "out", *FOLDER, *extra]


def _folder_file(b: Path, t: Path, make: Callable[[Path], object], name: str) -> list:
    folder = _copy(b / "folder", t)
    make(folder / name)
    table = _csv(folder / "t.csv", ["file", "abnormal", "mask", "tube"], [*FOLDER_ROWS, (name, "1", "", "0")])
    return ["ingest", "folder", table, "--out", t / "out", *FOLDER]


def _siim(b: Path, t: Path, *extra: object) -> list:
    return ["ingest", "siim", t / "siim" if (t / "siim").exists() else b / "siim", "--out", t / "out", "--size", 16,
            "--workers", 1, *extra]


def _siim_labels(b: Path, t: Path, text: bytes, gz: bool = False) -> list:
    root = _copy(b / "siim", t)
    (root / "train-rle.csv").unlink()
    (root / ("train-rle.csv.gz" if gz else "train-rle.csv")).write_bytes(text)
    return _siim(b, t)


def _siim_tubes(b: Path, t: Path, text: str) -> list:
    return _siim(b, t, "--tube-labels", _csv(t / "tubes.csv", ["ImageId", "chest_tube"], [tuple(r.split(",")) for r in text.split()]))


def _isic(b: Path, t: Path, header_extra=(), edit_row=None) -> list:
    from isic_builder import HEADER, bias_rows, write_csv

    root = _copy(b / "isic", t)
    rows = bias_rows([f"ISIC_{n:07d}" for n in range(4)])
    if edit_row:
        edit_row(rows)
    write_csv(root / "bias.csv", [*HEADER, *header_extra], [[*r, *([1] * len(header_extra))] for r in rows], ";")
    return ["ingest", "isic", root, "--out", t / "out", "--artefacts", root / "bias.csv", "--size", 8]


def _damaged_ds(b: Path, t: Path, damage: Callable[[Path], object]) -> Path:
    ds = _copy(b / "ds", t)
    damage(ds)
    return ds


def _train(ds: Path, t: Path, *extra: object) -> list:
    return ["train", ds, "--out", t / "run", *FAST, *extra]


def _train_on_damaged(damage: Callable[[Path], object]) -> Callable[[Path, Path], list]:
    return lambda b, t: _train(_damaged_ds(b, t, damage), t)


def _boxes_on_damaged(damage: Callable[[Path], object]) -> Callable[[Path, Path], list]:
    return lambda b, t: ["derive-boxes", _damaged_ds(b, t, damage)]


def _object_images(ds: Path) -> None:
    np.save(DatasetLayout(ds).images, np.array([{"a": 1}] * 64, dtype=object), allow_pickle=True)


def _run_copy(b: Path, t: Path, damage: Callable[[RunLayout], object] | None = None) -> Path:
    run = _copy(b / "run", t)
    # The copied config names the dataset by the path train was given, which still exists.
    if damage:
        damage(RunLayout(run))
    return run


def _evaluate(run: Path, *extra: object) -> list:
    return ["evaluate", run, "--bootstrap", 0, "--device", "cpu", "--force", *extra]


def _predictions(b: Path, t: Path, write: Callable[[Path], Path]) -> list:
    return ["evaluate", "--predictions", write(t), "--dataset", b / "ds", "--out", t / "ev"]


def _pipeline(t: Path, train: str, extra: str = "") -> Path:
    path = t / "p.toml"
    path.write_text(f'[study]\nname = "s"\nout = "{t / "study"}"\n\n[datasets.syn]\nsource = "synthetic"\nn = 32\n'
                    f'size = 32\n{extra}\n[train]\n{train}\nepochs = 1\n')
    return path


def _foreign_lock(out: Path, age: float = 0.0) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    lock = out.parent / f".{out.name}.lock"
    lock.write_text(json.dumps({"pid": 1, "host": "node17.cluster", "started": "2030-01-01T00:00:00+00:00",
                                "stage": "train", "token": "far"}))


NON_UTF8 = b"abnormal = \xff\xfe\n"

CASES: list[tuple[str, int, str, Callable[[Path, Path], list]]] = [
    # ingest synthetic: settings
    ("synthetic --size beyond the limit", 2, "size=100000: must be between 32 and 4096", lambda b, t: _ingest_syn(t, "--size", 100000)),
    ("synthetic --seed -1", 2, "seed must be between 0 and", lambda b, t: _ingest_syn(t, "--seed", -1)),
    ("synthetic --correlation nan", 2, "correlation: expected a finite number", lambda b, t: _ingest_syn(t, "--correlation", "nan")),
    ("synthetic --correlation inf", 2, "correlation: expected a finite number", lambda b, t: _ingest_syn(t, "--correlation", "inf")),
    ("synthetic --spurious-name chest-tube", 2, "'chest-tube': not a valid attribute name", lambda b, t: _ingest_syn(t, "--spurious-name", "chest-tube")),
    ("synthetic --spurious-name Label", 2, "'Label': clashes with a manifest column", lambda b, t: _ingest_syn(t, "--spurious-name", "Label")),
    ("synthetic --workers -1", 2, "workers must be 0 or more", lambda b, t: _ingest_syn(t, "--workers", -1)),
    ("synthetic --n abc (usage)", 2, "ingest synthetic: Invalid value for '--n'", lambda b, t: _ingest_syn(t, "--n", "abc")),
    ("synthetic --no-such-flag (usage)", 2, "No such option: --no-such-flag", lambda b, t: _ingest_syn(t, "--no-such-flag")),
    ("synthetic --config not UTF-8", 2, "cfg.toml: not UTF-8 text", lambda b, t: (t.joinpath("cfg.toml").write_bytes(NON_UTF8), _ingest_syn(t, "--config", t / "cfg.toml"))[1]),
    ("synthetic --config bad TOML", 2, "cfg.toml: not valid TOML", lambda b, t: (t.joinpath("cfg.toml").write_text("n = = 3"), _ingest_syn(t, "--config", t / "cfg.toml"))[1]),
    ("synthetic --config unknown key", 2, "cfg.toml: unknown key 'bogus'; valid: ", lambda b, t: (t.joinpath("cfg.toml").write_text("bogus = 3"), _ingest_syn(t, "--config", t / "cfg.toml"))[1]),
    ("synthetic --out is a file", 2, "afile: is a file; an output must be a directory", lambda b, t: (t.joinpath("afile").write_text("x"), ["ingest", "synthetic", "--out", t / "afile", "--n", 16, "--size", 32])[1]),
    ("synthetic --out under a file", 2, "afile is a file, not a directory", lambda b, t: (t.joinpath("afile").write_text("x"), ["ingest", "synthetic", "--out", t / "afile" / "ds", "--n", 16, "--size", 32])[1]),
    ("synthetic into a foreign directory", 4, "exists and is not a spurspec dataset", lambda b, t: (t.joinpath("new").mkdir(), t.joinpath("new", "notes.txt").write_text("mine"), _ingest_syn(t))[2]),
    ("synthetic over a dataset of other settings", 4, "already holds a dataset made with other settings", lambda b, t: ["ingest", "synthetic", "--out", _copy(b / "ds", t), "--n", 64, "--size", 32, "--seed", 3]),
    ("synthetic into an output a live process holds", 4, "in use by spurspec ingest (pid", lambda b, t: (_own_lock(t / "new", "ingest"), _ingest_syn(t))[1]),
    ("synthetic into an output another host holds", 4, "on node17.cluster", lambda b, t: (_foreign_lock(t / "new"), _ingest_syn(t))[1]),
    # ingest folder: tables
    ("folder table names a column twice", 2, "column 'abnormal' appears more than once", lambda b, t: _folder(b, t, [(*r, "0") for r in FOLDER_ROWS], ("file", "abnormal", "mask", "tube", "abnormal"))),
    ("folder label 'yes'", 2, "t.csv row 2: abnormal must be 0 or 1, found 'yes'", lambda b, t: _folder(b, t, [FOLDER_ROWS[0], ("b.png", "yes", "", "0")])),
    ("folder label 7", 2, "t.csv row 1: abnormal must be 0 or 1, found '7'", lambda b, t: _folder(b, t, [("a.png", "7", "", "0")])),
    ("folder tube 't'", 2, "t.csv row 1: tube must be 0 or 1, found 't'", lambda b, t: _folder(b, t, [("a.png", "1", "", "t")])),
    ("folder --spurious-cols chest-tube", 2, "--spurious-cols 'chest-tube': not a valid attribute name", lambda b, t: _folder(b, t, FOLDER_ROWS, ("file", "abnormal", "mask", "chest-tube")) + ["--spurious-cols", "chest-tube"]),
    ("folder unknown column", 2, "unknown column 'tubes' for --spurious-cols tubes", lambda b, t: _folder(b, t) + ["--spurious-cols", "tubes"]),
    ("folder table not UTF-8", 2, "t.csv: table is not UTF-8 text", lambda b, t: (lambda a: ((t / "folder" / "t.csv").write_bytes(b"file,abnormal,mask,tube\n\xe9.png,1,,0\n"), a)[1])(_folder(b, t))),
    ("folder table not found", 2, "none.csv: table not found", lambda b, t: ["ingest", "folder", t / "none.csv", "--out", t / "out", *FOLDER]),
    ("folder image file missing", 2, "gone.png: file not found", lambda b, t: _folder(b, t, [*FOLDER_ROWS, ("gone.png", "1", "", "0")])),
    ("folder PNG claiming 30000x30000", 2, "image of 30000 x 30000 pixels is over spurspec's limit", lambda b, t: _folder_file(b, t, lambda p: _png_claiming(p, 30000, 30000), "bomb.png")),
    ("folder JPEG claiming 65000x65000", 2, "image of 65000 x 65000 pixels is over spurspec's limit", lambda b, t: _folder_file(b, t, lambda p: _jpeg_claiming(p, 65000), "bomb.jpg")),
    ("folder NIfTI claiming 30000x30000", 2, "image of 30000 x 30000 pixels is over spurspec's limit", lambda b, t: _folder_file(b, t, lambda p: _nifti_claiming(p, 30000), "bomb.nii")),
    ("folder corrupt NIfTI", 2, "junk.nii: unreadable NIfTI", lambda b, t: _folder_file(b, t, lambda p: p.write_bytes(b"\x5c\x01" + b"\x00" * 400), "junk.nii")),
    ("folder truncated PNG", 2, "cut.png: unreadable image", lambda b, t: _folder_file(b, t, lambda p: (Image.fromarray(np.random.default_rng(1).integers(0, 255, (20, 20), dtype=np.uint8)).save(p), _truncate(p, 200)), "cut.png")),
    ("folder mask values {0, 7}", 2, "mask values must be {0,1} or {0,255}, found {0, 7}", lambda b, t: (lambda a: (Image.fromarray((np.full((20, 20), 7) * (np.arange(20) % 2)).astype(np.uint8)).save(t / "folder" / "a_mask.png"), a)[1])(_folder(b, t))),
    ("folder --channels 2", 2, "channels must be 1 or 3", lambda b, t: _folder(b, t) + ["--channels", 2]),
    ("folder --size 5000", 2, "size=5000: must be between 8 and 4096", lambda b, t: _folder(b, t) + ["--size", 5000]),
    ("folder parquet names a column twice", 2, "column 'abnormal' appears more than once", lambda b, t: (pq.write_table(pa.Table.from_arrays([pa.array(["a.png"]), pa.array(["1"]), pa.array(["0"])], names=["file", "abnormal", "abnormal"]), t / "t.parquet"), ["ingest", "folder", t / "t.parquet", "--out", t / "out", "--image-col", "file", "--label-col", "abnormal", "--root", b / "folder"])[1]),
    ("folder bad split value", 2, "t.csv row 1: part must be one of train, val, test", lambda b, t: _folder(b, t, [(*FOLDER_ROWS[0], "training")], ("file", "abnormal", "mask", "tube", "part")) + ["--split-col", "part"]),
    # ingest siim: label files, tube labels, DICOMs
    ("siim gzip bomb as train-rle.csv.gz", 2, "train-rle.csv.gz: label CSV decompresses to over", lambda b, t: _siim_labels(b, t, gzip.compress(b"ImageId, EncodedPixels\n" + b"0" * (3 << 20)), gz=True)),
    ("siim corrupt gzip", 2, "train-rle.csv.gz: corrupt gzip data", lambda b, t: _siim_labels(b, t, b"\x1f\x8b\x08\x00garbage-not-deflate", gz=True)),
    ("siim label CSV not UTF-8", 2, "train-rle.csv: label CSV is not UTF-8 text", lambda b, t: _siim_labels(b, t, b"ImageId, EncodedPixels\n1.2.\xff,-1\n")),
    ("siim label CSV names a column twice", 2, "column 'ImageId' appears more than once", lambda b, t: _siim_labels(b, t, b"ImageId, EncodedPixels, ImageId\n1.2.1,-1,1.2.1\n")),
    ("siim RLE field over the CSV field limit", 2, "train-rle.csv:2: unreadable CSV (field larger than field limit", lambda b, t: _siim_labels(b, t, b"ImageId, EncodedPixels\n1.2.1," + b"1 1 " * 500 + b"\n")),
    ("siim tube label 'yes'", 2, "tubes.csv:2: chest-tube label 'yes' is not 0/1", lambda b, t: _siim_tubes(b, t, "1.2.1,yes")),
    ("siim tube label 't'", 2, "tubes.csv:2: chest-tube label 't' is not 0/1", lambda b, t: _siim_tubes(b, t, "1.2.1,t")),
    ("siim tube pickle that runs code", 2, "refused to load global", lambda b, t: _siim(b, t, "--tube-labels", _evil_pickle_file(t / "tubes.pkl", wrap_torch=False))),
    ("siim DICOM claiming 60000x60000", 2, "image of 60000 x 60000 pixels is over spurspec's limit", lambda b, t: (_copy(b / "siim", t), _dicom_claiming(next((t / "siim").rglob("1.2.2.dcm")), 60000), _siim(b, t))[2]),
    ("siim --test-fraction 1.5", 2, "test_fraction must be between 0 and 1", lambda b, t: _siim(b, t, "--test-fraction", 1.5)),
    ("siim --limit 0", 2, "limit must be a positive number", lambda b, t: _siim(b, t, "--limit", 0)),
    ("siim --seed -1", 2, "seed must be between 0 and", lambda b, t: _siim(b, t, "--seed", -1)),
    ("siim --out is a file", 2, "is a file; an output must be a directory", lambda b, t: (t.joinpath("out").write_text("x"), _siim(b, t))[1]),
    # ingest isic
    ("isic annotations name a column twice", 2, "column 'hair' appears more than once", lambda b, t: _isic(b, t, header_extra=("hair",))),
    ("isic annotation label 'yes'", 2, "bias.csv line 3: label must be 0 or 1, found 'yes'", lambda b, t: _isic(b, t, edit_row=lambda rows: rows[1].__setitem__(9, "yes"))),
    ("isic root without images", 2, "no ISIC2018_Task1-2_Training_Input/ folder", lambda b, t: ["ingest", "isic", t, "--out", t / "out", "--artefacts", b / "isic" / "bias.csv"]),
    # derive-boxes on damaged datasets
    ("derive-boxes on a missing dataset", 3, "nothing: does not exist", lambda b, t: ["derive-boxes", t / "nothing"]),
    ("derive-boxes --grid 0", 2, "grid sizes must be between 1 and", lambda b, t: ["derive-boxes", b / "ds", "--grid", 0]),
    ("derive-boxes --margin -1", 2, "margin must be >= 0", lambda b, t: ["derive-boxes", b / "ds", "--margin", -1]),
    ("derive-boxes --mode bogus (usage)", 2, "Invalid value for '--mode'", lambda b, t: ["derive-boxes", b / "ds", "--mode", "bogus"]),
    ("derive-boxes with truncated images.npy", 3, "images.npy: images array is truncated", _boxes_on_damaged(lambda ds: _truncate(DatasetLayout(ds).images, 2000))),
    ("derive-boxes with object-dtype images.npy", 3, "images array is object", _boxes_on_damaged(_object_images)),
    ("derive-boxes without masks.npy", 3, "masks.npy: masks array not found", _boxes_on_damaged(lambda ds: DatasetLayout(ds).masks.unlink())),
    ("derive-boxes with label 'yes' in the manifest", 3, "column label is string, expected int8", _boxes_on_damaged(lambda ds: _edit_manifest(ds, "label", ["yes"] * 64, pa.string()))),
    ("derive-boxes with label 7 in the manifest", 3, "row 0: label 7 is not 0 or 1", _boxes_on_damaged(lambda ds: _edit_manifest(ds, "label", [7] * 64))),
    ("derive-boxes with rows not numbering the arrays", 3, "row 0: row 5 does not number the arrays", _boxes_on_damaged(lambda ds: _edit_manifest(ds, "row", [5] * 64))),
    ("derive-boxes with an attribute value 2", 3, "chest_tube 2 is not 0, 1 or empty", _boxes_on_damaged(lambda ds: _edit_manifest(ds, "chest_tube", [2] * 64))),
    ("derive-boxes with a repeated image_id", 3, "image_id 'dup' appears more than once", _boxes_on_damaged(lambda ds: _edit_manifest(ds, "image_id", ["dup"] * 64))),
    ("derive-boxes into a dataset a live process holds", 4, "in use by spurspec ingest", lambda b, t: (lambda ds: (_own_lock(ds, "ingest"), ["derive-boxes", ds])[1])(_copy(b / "ds", t))),
    # train
    ("train --lr nan", 2, "lr: expected a finite number, got nan", lambda b, t: _train(b / "ds", t, "--lr", "nan")),
    ("train --lr inf", 2, "lr: expected a finite number, got inf", lambda b, t: _train(b / "ds", t, "--lr", "inf")),
    ("train --lr -1", 2, "lr must be > 0", lambda b, t: _train(b / "ds", t, "--lr", -1)),
    ("train --seed -1", 2, "seed must be between 0 and 4294967295, got -1", lambda b, t: _train(b / "ds", t, "--seed", -1)),
    ("train --epochs 0", 2, "epochs must be at least 1", lambda b, t: _train(b / "ds", t, "--epochs", 0)),
    ("train --workers -1", 2, "workers must be >= 0", lambda b, t: _train(b / "ds", t, "--workers", -1)),
    ("train --batch-size abc (usage)", 2, "train: Invalid value for '--batch-size'", lambda b, t: _train(b / "ds", t, "--batch-size", "abc")),
    ("train without --out (usage)", 2, "train: Missing option '--out'", lambda b, t: ["train", b / "ds"]),
    ("train --mask-budget abc", 2, "--mask-budget 'abc'", lambda b, t: _train(b / "ds", t, "--granularity", "seg", "--mask-budget", "abc")),
    ("train --out is a file", 2, "is a file; an output must be a directory", lambda b, t: (t.joinpath("run").write_text("x"), _train(b / "ds", t))[1]),
    ("train --out under a file", 2, "is a file, not a directory", lambda b, t: (t.joinpath("f").write_text("x"), ["train", b / "ds", "--out", t / "f" / "run", *FAST])[1]),
    ("train --config not UTF-8", 2, "cfg.toml: not UTF-8 text", lambda b, t: (t.joinpath("cfg.toml").write_bytes(NON_UTF8), _train(b / "ds", t, "--config", t / "cfg.toml"))[1]),
    ("train --pretrained pickle that runs code", 2, "refused: the pretrained weights file holds objects other than tensors", lambda b, t: _train(b / "ds", t, "--pretrained", _evil_pickle_file(t / "w.pt", wrap_torch=True))),
    ("train --pretrained missing file", 2, "gone.pt: pretrained weights file not found", lambda b, t: _train(b / "ds", t, "--pretrained", t / "gone.pt")),
    ("train on truncated images.npy", 3, "images array is truncated", _train_on_damaged(lambda ds: _truncate(DatasetLayout(ds).images, 5000))),
    ("train without masks.npy", 3, "masks array not found", _train_on_damaged(lambda ds: DatasetLayout(ds).masks.unlink())),
    ("train on a manifest with label 'yes'", 3, "column label is string", _train_on_damaged(lambda ds: _edit_manifest(ds, "label", ["yes"] * 64, pa.string()))),
    ("train into a run a live process holds", 4, "in use by spurspec train (pid", lambda b, t: (_own_lock(t / "run", "train"), _train(b / "ds", t))[1]),
    ("train --resume with other settings", 2, "lr: 0.0005 -> 0.1); use a new --out or --force", lambda b, t: ["train", b / "ds", "--out", _copy(b / "run", t), *FAST, "--lr", "0.1", "--resume"]),
    # evaluate
    ("evaluate a run whose checkpoint runs code", 3, "best.pt: refused: the checkpoint holds objects other than tensors", lambda b, t: _evaluate(_run_copy(b, t, lambda r: _evil_pickle_file(r.checkpoint("best"), wrap_torch=True)))),
    ("evaluate a truncated checkpoint", 3, "best.pt: unreadable checkpoint", lambda b, t: _evaluate(_run_copy(b, t, lambda r: _truncate(r.checkpoint("best"), 300)))),
    ("evaluate --seed -1", 2, "seed must be between 0 and", lambda b, t: _evaluate(b / "run", "--seed", -1)),
    ("evaluate --bootstrap -1", 2, "bootstrap must be >= 0", lambda b, t: _evaluate(b / "run", "--bootstrap", -1)),
    ("evaluate a run a live process holds", 4, "in use by spurspec train (pid", lambda b, t: (lambda r: (_own_lock(r, "train"), _evaluate(r))[1])(_run_copy(b, t))),
    ("evaluate predictions naming a column twice", 2, "p.csv: column 'score' appears more than once", lambda b, t: _predictions(b, t, lambda d: _csv(d / "p.csv", ["image_id", "score", "score"], [("syn000000", 0.1, 0.2)]))),
    ("evaluate predictions not UTF-8", 2, "p.csv: predictions is not UTF-8 text", lambda b, t: _predictions(b, t, lambda d: (d.joinpath("p.csv").write_bytes(b"image_id,score\nsyn\xff,0.1\n"), d / "p.csv")[1])),
    ("evaluate predictions gzip bomb", 2, "p.csv.gz: predictions decompresses to over", lambda b, t: _predictions(b, t, lambda d: (d.joinpath("p.csv.gz").write_bytes(gzip.compress(b"image_id,score\n" + b"0" * (3 << 20))), d / "p.csv.gz")[1])),
    ("evaluate predictions with a text score", 2, "p.csv: column score is not numeric", lambda b, t: _predictions(b, t, lambda d: _csv(d / "p.csv", ["image_id", "score"], [("syn000000", "high")]))),
    ("evaluate predictions into --out that is a file", 2, "ev: is a file", lambda b, t: (t.joinpath("ev").write_text("x"), _predictions(b, t, lambda d: _csv(d / "p.csv", ["image_id", "score"], [("syn000000", 0.5)])))[1]),
    # report
    ("report --out is a file", 2, "rep: is a file", lambda b, t: (t.joinpath("rep").write_text("x"), ["report", b / "run", "--out", t / "rep"])[1]),
    ("report a run with truncated metrics", 3, "metrics.parquet: unreadable metrics", lambda b, t: ["report", _run_copy(b, t, lambda r: _truncate(r.metrics, 40)), "--out", t / "rep"]),
    ("report --summary bogus", 2, "bogus", lambda b, t: ["report", b / "run", "--out", t / "rep", "--summary", "bogus"]),
    ("report into a directory a live process holds", 4, "in use by spurspec report (pid", lambda b, t: (_own_lock(t / "rep", "report"), ["report", b / "run", "--out", t / "rep"])[1]),
    # run (pipelines)
    ("run a pipeline that is not UTF-8", 2, "p.toml: not UTF-8 text", lambda b, t: (t.joinpath("p.toml").write_bytes(NON_UTF8), ["run", t / "p.toml"])[1]),
    ("run a pipeline with seed -1", 2, "seed must be between 0 and 4294967295, got -1", lambda b, t: ["run", _pipeline(t, "granularities = [\"binary\"]\nseeds = [-1]")]),
    ("run a pipeline with grid:0", 2, "grid:0", lambda b, t: ["run", _pipeline(t, "granularities = [\"grid:0\"]\nseeds = [0]")]),
    ("run a pipeline with lr nan", 2, "expected a finite number", lambda b, t: ["run", _pipeline(t, "granularities = [\"binary\"]\nseeds = [0]\nlr = nan")]),
    ("run --workers 0 (usage)", 2, "run: Invalid value for '--workers'", lambda b, t: ["run", _pipeline(t, "granularities = [\"binary\"]"), "--workers", 0]),
    ("run a study a live process holds", 4, "in use by spurspec run (pid", lambda b, t: (_own_lock(t / "study", "run"), ["run", _pipeline(t, "granularities = [\"binary\"]\nseeds = [0]")])[1]),
    # theory
    ("theory --seed -1", 2, "seed must be between 0 and", lambda b, t: ["theory", "--out", t / "th", "--seed", -1]),
    ("theory --n 1000", 2, "n=1000: must be the number of pixels of a square grid", lambda b, t: ["theory", "--out", t / "th", "--n", 1000, "--samples", 10]),
    ("theory --out is a file", 2, "th: is a file", lambda b, t: (t.joinpath("th").write_text("x"), ["theory", "--out", t / "th"])[1]),
    ("theory --r abc", 2, "--r 'abc': expected comma-separated integers", lambda b, t: ["theory", "--out", t / "th", "--r", "abc"]),
]


def _limits(monkeypatch) -> None:
    """Small limits so the bombs stay small: 1 MiB of text, 1,000-character CSV fields."""
    from spurspec.datasets import tables

    monkeypatch.setattr(tables, "MAX_TEXT_BYTES", 1 << 20)
    monkeypatch.setattr(tables, "MAX_FIELD_CHARS", 1000)


@pytest.mark.parametrize(("case", "code", "needle", "setup"), CASES, ids=[c[0] for c in CASES])
def test_refused_by_name_with_nothing_written(cli, base, tmp_path, monkeypatch, case, code, needle, setup):
    _limits(monkeypatch)
    argv = setup(base, tmp_path)
    before = _snapshot(base, tmp_path)
    res = cli(argv, expect=None)
    lines = res.stderr.strip().splitlines()
    assert (res.exit_code, len(lines)) == (code, 1), (
        f"{case}: spurspec {' '.join(map(str, argv))}\nexit {res.exit_code} (want {code}); stderr:\n{res.stderr}"
        f"\nexception: {res.exception!r}")
    assert lines[0].startswith("error: ") and needle in lines[0], f"{case}: {lines[0]!r} lacks {needle!r}"
    assert "weights_only" not in lines[0] and "Traceback" not in res.output
    assert _snapshot(base, tmp_path) == before, f"{case}: files were written or changed"
    assert not (tmp_path / "pwned").exists()


def test_corpus_covers_every_stage_with_sixty_cases():
    stages = {c[0].split()[0] for c in CASES}
    assert len(CASES) >= 60
    assert {"synthetic", "folder", "siim", "isic", "derive-boxes", "train", "evaluate", "report", "run", "theory"} <= stages


def test_skip_bad_skips_a_decompression_bomb(cli, base, tmp_path):
    """The size limit is a bad input like any other: --skip-bad leaves the bomb out and says why."""
    argv = _folder_file(base, tmp_path, lambda p: _png_claiming(p, 30000, 30000), "bomb.png")
    cli([*argv, "--skip-bad"])
    rejects = pq.read_table(DatasetLayout(tmp_path / "out").rejects).to_pylist()
    assert [r["input"] for r in rejects] == ["t.csv row 5 (bomb.png)"]
    assert "over spurspec's limit" in rejects[0]["reason"]


def test_negative_images_keep_their_masks_as_regions_of_negatives(cli, base, tmp_path):
    """A mask on a negative image is kept (has_mask true), so the three-class head can learn it
    as a region of a negative image, not as background and not as a positive region."""
    rows = [("a.png", "1", "a_mask.png", "1"), ("b.png", "0", "c_mask.png", "0"), ("c.png", "1", "c_mask.png", "0"),
            ("d.png", "0", "", "1")]
    argv = _folder(base, tmp_path, rows)
    cli(argv)
    from spurspec.artefacts.dataset import Dataset

    ds = Dataset.open(tmp_path / "out")
    m = ds.manifest.to_pydict()
    negative_with_mask = m["image_id"].index("b")
    assert m["label"][negative_with_mask] == 0 and m["has_mask"][negative_with_mask]
    assert ds.masks()[negative_with_mask].sum() > 0


def test_resume_compares_resolved_paths(cli, base, tmp_path, monkeypatch):
    """`--resume` with the same run named another way (relative vs absolute) is the same run."""
    monkeypatch.chdir(base)  # the run was trained with absolute paths; resume it with relative ones
    res = cli(["train", "ds", "--out", "run", *FAST, "--resume"])
    assert "already finished" in res.stdout


def test_a_failed_train_leaves_nothing_that_blocks_the_corrected_rerun(cli, base, tmp_path):
    """Weights are loaded before the run directory is written: a bad --pretrained file leaves no
    config.toml behind, and the corrected command then runs without --force."""
    bad = tmp_path / "w.pt"
    bad.write_bytes(b"not a checkpoint")
    res = cli(_train(base / "ds", tmp_path, "--pretrained", bad), expect=None)
    assert res.exit_code == 2 and "w.pt: unreadable pretrained weights file" in res.stderr, res.stderr
    assert not (tmp_path / "run").exists()
    cli(_train(base / "ds", tmp_path))
    assert RunLayout(tmp_path / "run").done.exists()
