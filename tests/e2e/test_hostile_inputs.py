"""Hostile inputs of issue 25 through the real CLI: outside predictions with columns of the wrong
type or unknown columns (CSV and Parquet), symbolic link loops and unreadable entries inside the
input folders of `ingest folder`, `siim` and `isic`, and table paths that escape `--root`. A
refused case must end with exit 2, exactly one stderr line `error: ...` naming the column and
row or the path, and nothing written or changed (every path compared by lstat before and after);
an accepted one (an unknown column, `--allow-outside-root`) exits 0 and leaves its inputs as
they were."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
from PIL import Image

pytestmark = pytest.mark.e2e
FOLDER = ["--image-col", "file", "--label-col", "abnormal", "--spurious-cols", "tube", "--size", "16"]
ROWS = [("a.png", "1", "0"), ("b.png", "0", "1"), ("c.png", "1", "1"), ("d.png", "0", "0")]


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> Path:
    """ds/ (a tiny dataset), folder/ (four PNGs), outside.png beside it, siim/ and isic/."""
    from isic_builder import HEADER, bias_rows, write_csv
    from isic_builder import write_folder as write_isic
    from siim_builder import write_folder as write_siim
    from tiny_dataset import make

    b = tmp_path_factory.mktemp("hostile")
    make(b / "ds", n=40)
    (b / "folder").mkdir()
    rng = np.random.default_rng(0)
    for name in [r[0] for r in ROWS] + ["../outside.png"]:
        Image.fromarray(rng.integers(0, 255, (20, 20), dtype=np.uint8)).save(b / "folder" / name)
    write_siim(b / "siim", [("1.2.1", "-1"), ("1.2.2", "10 5 20 5"), ("1.2.3", "-1"), ("1.2.4", "3 4")], size=32)
    ids = [f"ISIC_{n:07d}" for n in range(4)]
    write_isic(b / "isic", ids)
    write_csv(b / "isic" / "bias.csv", HEADER, bias_rows(ids), ";")
    return b


def _snapshot(*roots: Path) -> dict[str, tuple]:
    """Every path under `roots`, links not followed (a loop stays a link): folders by mode (a
    lock file beside an output comes and goes), files and links by mode, size and mtime."""
    seen: dict[str, tuple] = {}
    for root in roots:
        for folder, dirs, files in os.walk(root):
            for p in [Path(folder), *(Path(folder) / n for n in dirs + files)]:
                st = p.lstat()
                seen[str(p)] = (st.st_mode,) if p.is_dir() and not p.is_symlink() else (st.st_mode, st.st_size, st.st_mtime_ns)
    return seen


def _permissions_enforced(t: Path) -> bool:
    """False for root (or any process that may read a mode-000 file): such a case cannot fail."""
    probe = t / "probe"
    probe.write_text("x")
    probe.chmod(0)
    try:
        probe.read_text()
    except PermissionError:
        return True
    finally:
        probe.chmod(0o600)
        probe.unlink()
    return False


# ---- outside predictions ---------------------------------------------------------------------


def _predictions(b: Path, t: Path, name: str, **extra: list) -> list:
    """`evaluate --predictions` on the dataset's ids with a score, its split and `extra` columns."""
    m = pq.read_table(b / "ds" / "manifest.parquet")
    n = m.num_rows
    table = pa.table({"image_id": m.column("image_id"), "score": np.linspace(0, 1, n), "split": m.column("split"),
                      **{k: (v * n)[:n] if len(v) < n else v for k, v in extra.items()}})
    path = t / name
    if name.endswith(".csv"):
        pacsv.write_csv(table, path)
    else:
        pq.write_table(table, path)
    return ["evaluate", "--predictions", path, "--dataset", b / "ds", "--out", t / "ev", "--bootstrap", 0]


def _text_at(row: int, text: str, good: object = 1) -> list:
    """A column of `good` values with `text` at 1-based data row `row` (40 rows)."""
    values: list = [good] * 40
    values[row - 1] = text
    return [str(v) for v in values]


# ---- folders with loops, unreadable entries and escapes ----------------------------------------


def _folder(b: Path, t: Path, extra_rows=(), make: Callable[[Path], object] = lambda f: None, *flags: object) -> list:
    """A copy of folder/ (as t/data/folder, so its parent holds outside.png), damaged by `make`,
    with t.csv listing its four images and `extra_rows`."""
    data = t / "data"
    folder = Path(shutil.copytree(b / "folder", data / "folder"))
    shutil.copy(b / "outside.png", data / "outside.png")
    make(folder)
    rows = [*ROWS, *extra_rows]
    (folder / "t.csv").write_text("file,abnormal,tube\n" + "".join(",".join(r) + "\n" for r in rows))
    return ["ingest", "folder", folder / "t.csv", "--out", t / "out", *FOLDER, *flags]


def _loop(folder: Path, name: str = "loop.png") -> None:
    (folder / name).symlink_to(name)


def _unreadable(p: Path) -> None:
    p.chmod(0)


def _in_sub(folder: Path) -> None:
    """sub/e.png, in a folder nobody may enter."""
    (folder / "sub").mkdir()
    shutil.copy(folder / "a.png", folder / "sub" / "e.png")
    (folder / "sub").chmod(0)


def _siim(b: Path, t: Path, make: Callable[[Path], object]) -> list:
    root = Path(shutil.copytree(b / "siim", t / "siim"))
    make(root / "dicom-images-train")
    return ["ingest", "siim", root, "--out", t / "out", "--size", 16, "--workers", 1]


def _isic(b: Path, t: Path, make: Callable[[Path], object]) -> list:
    root = Path(shutil.copytree(b / "isic", t / "isic"))
    make(root)
    return ["ingest", "isic", root, "--out", t / "out", "--size", 16, "--artefacts", root / "bias.csv"]


def _first_subfolder(folder: Path) -> Path:
    return sorted(p for p in folder.iterdir() if p.is_dir())[0]


PERMISSIONS = "needs permissions"  # cases that only fail where mode bits are enforced (not root)

REFUSED: list[tuple[str, tuple[str, ...], str | None, Callable[[Path, Path], list]]] = [
    # (case, what the one stderr line must hold, PERMISSIONS or None, setup)
    ("evaluate csv: text in seed", ("p.csv: column seed is not a whole number: row 1 holds 'abc'",), None,
     lambda b, t: _predictions(b, t, "p.csv", seed=["abc"])),
    ("evaluate parquet: text in seed", ("p.parquet: column seed is not a whole number: row 1 holds 'abc'",), None,
     lambda b, t: _predictions(b, t, "p.parquet", seed=["abc"])),
    ("evaluate csv: one bad seed", ("p.csv: column seed is not a whole number: row 7 holds 'x'",), None,
     lambda b, t: _predictions(b, t, "p.csv", seed=_text_at(7, "x"))),
    ("evaluate parquet: a fraction in seed", ("p.parquet: column seed is not a whole number: row 3 holds 1.5",), None,
     lambda b, t: _predictions(b, t, "p.parquet", seed=pa.array([1.0, 2.0, 1.5] + [0.0] * 37))),
    ("evaluate csv: text in score", ("p.csv: column score is not numeric: row 5 holds 'high'",), None,
     lambda b, t: _predictions(b, t, "p.csv", score=_text_at(5, "high", 0.5))),
    ("evaluate parquet: text in score", ("p.parquet: column score is not numeric: row 5 holds 'high'",), None,
     lambda b, t: _predictions(b, t, "p.parquet", score=_text_at(5, "high", 0.5))),
    ("evaluate parquet: a list in split", ("p.parquet: column split is not text: row 1 holds ['test']",), None,
     lambda b, t: _predictions(b, t, "p.parquet", split=pa.array([["test"]] * 40))),
    ("evaluate csv: an unknown split", ("p.csv: row 2: split 'testing' is not one of train, val, test",), None,
     lambda b, t: _predictions(b, t, "p.csv", split=_text_at(2, "testing", "test"))),
    # symbolic link loops
    ("folder: a row names a symbolic link loop", ("t.csv row 5 (loop.png): ", "symbolic link loop"), None,
     lambda b, t: _folder(b, t, [("loop.png", "1", "0")], _loop)),
    ("folder --root: a row names a symbolic link loop", ("t.csv row 5: ", "loop.png: symbolic link loop"), None,
     lambda b, t: _folder(b, t, [("loop.png", "1", "0")], _loop, "--root", t / "data" / "folder")),
    ("siim: a .dcm that is a symbolic link loop", ("9.9.9.dcm: symbolic link loop",), None,
     lambda b, t: _siim(b, t, lambda d: _loop(d, "9.9.9.dcm"))),
    ("isic: an image that is a symbolic link loop", ("ISIC_0000009.jpg: symbolic link loop",), None,
     lambda b, t: _isic(b, t, lambda r: _loop(r / "ISIC2018_Task1-2_Training_Input", "ISIC_0000009.jpg"))),
    # unreadable entries
    ("folder: an unreadable image", ("t.csv row 2 (b.png): ", "permission denied"), PERMISSIONS,
     lambda b, t: _folder(b, t, (), lambda f: _unreadable(f / "b.png"))),
    ("folder: an image in an unreadable folder", ("t.csv row 5 (sub/e.png): ", "permission denied"), PERMISSIONS,
     lambda b, t: _folder(b, t, [("sub/e.png", "1", "0")], _in_sub)),
    ("siim: an unreadable DICOM folder", (": permission denied",), PERMISSIONS,
     lambda b, t: _siim(b, t, lambda d: _unreadable(_first_subfolder(d)))),
    ("isic: an unreadable mask folder", ("ISIC2018_Task1_Training_GroundTruth: permission denied",), PERMISSIONS,
     lambda b, t: _isic(b, t, lambda r: _unreadable(r / "ISIC2018_Task1_Training_GroundTruth"))),
    # --root escapes
    ("folder --root: ../ out of it", ("t.csv row 5: ", "outside --root", "pass --allow-outside-root"), None,
     lambda b, t: _folder(b, t, [("../outside.png", "1", "0")], lambda f: None, "--root", t / "data" / "folder")),
    ("folder --root: a symbolic link out of it", ("t.csv row 5: ", "outside --root", "pass --allow-outside-root"), None,
     lambda b, t: _folder(b, t, [("link.png", "1", "0")], lambda f: (f / "link.png").symlink_to("../outside.png"),
                          "--root", t / "data" / "folder")),
    ("folder --root: an absolute path out of it", ("t.csv row 5: ", "outside --root", "pass --allow-outside-root"), None,
     lambda b, t: _folder(b, t, [(str(t / "data" / "outside.png"), "1", "0")], lambda f: None,
                          "--root", t / "data" / "folder")),
]


def _restore(t: Path) -> None:
    """Give back the permissions a case took away, so the temporary folder can be removed."""
    for folder, dirs, files in os.walk(t):
        for name in dirs + files:
            p = Path(folder) / name
            if not p.is_symlink():
                p.chmod(0o700)  # before os.walk enters it


@pytest.mark.parametrize(("case", "needles", "needs", "setup"), REFUSED, ids=[c[0] for c in REFUSED])
def test_refused_with_one_line_and_nothing_written(cli, base, tmp_path, case, needles, needs, setup):
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    if needs == PERMISSIONS and not _permissions_enforced(scratch):
        pytest.skip("this process reads files whatever their mode (root): no permission to deny")
    argv = setup(base, tmp_path)
    before = _snapshot(base, tmp_path)
    try:
        res = cli(argv, expect=None)
        after = _snapshot(base, tmp_path)
    finally:
        _restore(tmp_path)
    lines = res.stderr.strip().splitlines()
    assert (res.exit_code, len(lines)) == (2, 1), (
        f"{case}: spurspec {' '.join(map(str, argv))}\nexit {res.exit_code}; stderr:\n{res.stderr}\n{res.exception!r}")
    assert lines[0].startswith("error: ") and all(n in lines[0] for n in needles), (lines[0], needles)
    assert "Traceback" not in res.output
    assert after == before, f"{case}: files were written or changed"
    assert not (tmp_path / "out").exists() and not (tmp_path / "ev").exists()


@pytest.mark.parametrize("suffix", ["csv", "parquet"])
def test_unknown_columns_are_named_in_a_note_and_known_ones_kept(cli, base, tmp_path, suffix):
    argv = _predictions(base, tmp_path, f"p.{suffix}", note=["x"], Score=["0.3"], seed=["3"] if suffix == "csv" else [3])
    before = _snapshot(base, tmp_path)
    res = cli(argv)
    assert f"note: p.{suffix}: ignored column(s) note, Score (evaluate reads image_id, " in res.stdout
    assert "error:" not in res.stderr
    assert {k: v for k, v in _snapshot(base, tmp_path).items() if not k.startswith(str(tmp_path / "ev"))} == before
    written = pq.read_table(tmp_path / "ev" / "predictions.parquet")
    assert "note" not in written.column_names and set(written.column("seed").to_pylist()) == {3}


@pytest.mark.parametrize("row", [("../outside.png", "1", "0"), ("link.png", "1", "0")], ids=["dotdot", "link"])
def test_allow_outside_root_reads_the_path(cli, base, tmp_path, row):
    link = (lambda f: (f / "link.png").symlink_to("../outside.png")) if row[0] == "link.png" else (lambda f: None)
    argv = _folder(base, tmp_path, [row], link, "--root", tmp_path / "data" / "folder", "--allow-outside-root")
    before = _snapshot(base, tmp_path / "data")
    res = cli(argv)
    assert "error:" not in res.stderr and "out: 5 images" in res.stdout
    assert _snapshot(base, tmp_path / "data") == before


def test_without_root_the_tables_paths_are_read_as_before(cli, base, tmp_path):
    """No --root: paths resolve against the table's folder, wherever they lead (docs/data.md)."""
    res = cli(_folder(base, tmp_path, [("../outside.png", "1", "0")]))
    assert "out: 5 images" in res.stdout
