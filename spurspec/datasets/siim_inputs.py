"""Find and check the inputs of a SIIM-ACR folder before any pixel is decoded: the label CSV
(stage 1 `train-rle.csv`, stage 2 `stage_2_train.csv`), the DICOMs (stage 1 nested under
`dicom-images-train/`, stage 2 flat in `stage_2_images/`) and optional chest-tube labels; pair
them up and report every mismatch as a reject naming the file or CSV row."""

from __future__ import annotations

import functools
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from spurspec.datasets import tables
from spurspec.datasets.common import Rejects
from spurspec.errors import ConfigError, InputError
from spurspec.imaging import rle
from spurspec.imaging.rle import EMPTY

LABEL_FILES = ("train-rle.csv", "stage_2_train.csv", "train-rle.csv.gz", "stage_2_train.csv.gz")
# Image folders of the Kaggle layouts; stage 2 labels also cover stage 1's test images.
IMAGE_DIRS = {"stage1": ("dicom-images-train",), "stage2": ("stage_2_images", "dicom-images-train", "dicom-images-test")}


@dataclass(frozen=True)
class RleRow:
    line: int
    text: str


@dataclass(frozen=True)
class SiimItem:
    """One image ready to decode: its DICOM, its RLE rows (OR-ed), label and tube label."""

    image_id: str
    path: Path
    rows: tuple[RleRow, ...]
    label: int
    tube: int | None


def find_labels(root: Path, labels: Path | None) -> Path:
    """The given label file, else the one Kaggle label file found at the top of `root`."""
    if labels is not None:
        if not Path(labels).is_file():
            raise InputError(f"{labels}: label file not found")
        return Path(labels)
    found = [root / name for name in LABEL_FILES if (root / name).is_file()]
    if not found:
        raise InputError(f"{root}: no label file ({' or '.join(LABEL_FILES[:2])}); pass --labels FILE")
    if len(found) > 1:
        raise ConfigError(f"{root}: several label files ({', '.join(p.name for p in found)}); choose one with --labels")
    return found[0]


def find_dicoms(root: Path, labels: Path) -> list[Path]:
    """DICOMs under the layout's image folders (all of `root` when none of them exists), in
    path order (component by component, as pathlib sorts)."""
    stage = "stage2" if labels.name.startswith("stage_2") else "stage1"
    dirs = [root / d for d in IMAGE_DIRS[stage] if (root / d).is_dir()] or [root]
    found = {path for d in dirs for path in _dcm_files(str(d))}
    return [Path(path) for path in sorted(found, key=lambda path: path.split(os.sep))]


def _dcm_files(folder: str) -> Iterator[str]:
    """Files named *.dcm under `folder`, as rglob finds them (symlinked folders are not entered),
    but from the directory entries' types: no stat per file, which 12,000 DICOMs would pay before
    any is decoded. A folder this user cannot read, or a *.dcm that is a symbolic link loop, is
    not skipped, which would silently leave its images out: the OSError is the caller's
    (siim's `reading_inputs`: bad input, named)."""
    with os.scandir(folder) as it:
        entries = list(it)
    for entry in entries:
        if entry.is_dir(follow_symlinks=False):
            yield from _dcm_files(entry.path)
        elif len(entry.name) > 4 and entry.name[-4:].lower() == ".dcm" and entry.is_file():  # not a bare ".dcm"
            yield entry.path


def real_path(path: str) -> str:
    """`os.path.realpath(path)` of a file `find_dicoms` listed (absolute, no `.` or `..`), with
    each folder resolved once: one `lstat` an image where `realpath` takes one per path component
    (2.6 against 10.8 us a path in a tight loop: tests/benchmarks/profile_ingest.py). `forget_folders`
    empties the cache, which each ingest does first, so a link changed between two ingests is seen."""
    if os.path.islink(path):
        return os.path.realpath(path)
    folder, name = os.path.split(path)
    return os.path.join(_real_folder(folder), name)


@functools.lru_cache(maxsize=4096)
def _real_folder(folder: str) -> str:
    parent, name = os.path.split(folder)
    if not name or os.path.islink(folder):
        return os.path.realpath(folder)
    return os.path.join(_real_folder(parent), name)  # stage 1 nests a folder or two per image


def forget_folders() -> None:
    _real_folder.cache_clear()


def read_rle_csv(path: Path, problems: Rejects) -> dict[str, list[RleRow]]:
    """ImageId -> its RLE rows. Column names and values are stripped (the Kaggle header has a
    leading space). Identical duplicate rows are kept once; an image with both '-1' and a mask
    is a conflict and is left out (reported)."""
    header, lines = tables.parse_csv(path, tables.read_text(path, "label CSV"))
    if "ImageId" not in header or "EncodedPixels" not in header:
        raise InputError(f"{path}: expected columns ImageId, EncodedPixels; found {', '.join(header) or 'nothing'}")
    id_col, rle_col = header.index("ImageId"), header.index("EncodedPixels")
    rows: dict[str, list[RleRow]] = {}
    poisoned: set[str] = set()
    name, width = str(path), max(id_col, rle_col) + 1  # a row is named f"{name}:{line}" only if bad
    for line, row in lines:
        if len(row) < width:
            problems.add(f"{name}:{line}", f"expected {len(header)} columns, got {len(row)}")
            continue
        image_id, text = row[id_col].strip(), " ".join(row[rle_col].split())
        if not image_id:
            problems.add(f"{name}:{line}", "empty ImageId")
            continue
        bad = None if text == EMPTY else (rle.syntax_error(text) if text else f"empty EncodedPixels (write {EMPTY} for no pneumothorax)")
        if bad is not None:
            problems.add(f"{name}:{line}", f"{image_id}: {bad}")
            poisoned.add(image_id)
        elif all(r.text != text for r in rows.get(image_id, [])):
            rows.setdefault(image_id, []).append(RleRow(line, text))
    # An image with a bad row is left out whole (a partial mask would be a wrong label); it
    # stays known, so its DICOM and tube label are not reported again.
    for image_id in poisoned:
        rows[image_id] = []
    for image_id in list(rows):
        texts = [r.text for r in rows[image_id]]
        if EMPTY in texts and len(texts) > 1:  # '-1' beside a mask: which one is right is unknowable
            neg = next(r.line for r in rows[image_id] if r.text == EMPTY)
            pos = next(r.line for r in rows[image_id] if r.text != EMPTY)
            problems.add(f"{path}:{neg}", f"{image_id}: conflicting rows: {EMPTY} (no pneumothorax) here but a mask on line {pos}")
            rows[image_id] = []
    return rows


def pair(
    labels_path: Path,
    rows: dict[str, list[RleRow]],
    dicoms: list[Path],
    tubes: dict[str, int] | None,
    tubes_path: Path | None,
    problems: Rejects,
) -> list[SiimItem]:
    """Match CSV images to DICOM files (by file stem = SOPInstanceUID) and attach tube labels.
    Every unmatched CSV row, DICOM and tube label is a problem naming it."""
    by_id: dict[str, Path] = {}
    for path in dicoms:
        image_id = path.stem
        if image_id in by_id:
            problems.add(str(path), f"second DICOM for image {image_id} (first: {by_id[image_id]})")
            continue
        by_id[image_id] = path
        if image_id not in rows:
            problems.add(str(path), f"DICOM has no row in {labels_path}")
    for image_id, image_rows in rows.items():
        if image_rows and image_id not in by_id:
            problems.add(f"{labels_path}:{image_rows[0].line}", f"ImageId {image_id} has no DICOM file")
    if tubes is not None:
        for image_id in tubes:
            if image_id not in rows:
                problems.add(f"{tubes_path}: {image_id}", f"chest-tube label for an image not in {labels_path}")
    items = []
    for image_id in sorted(rows):
        image_rows = rows[image_id]
        if not image_rows or image_id not in by_id:
            continue
        label = int(any(r.text != EMPTY for r in image_rows))
        tube = tubes.get(image_id) if tubes is not None else None
        items.append(SiimItem(image_id, by_id[image_id], tuple(image_rows), label, tube))
    return items
