"""`ingest siim`: a Kaggle SIIM-ACR pneumothorax folder (stage 1 or 2) -> a dataset directory.

Reads the label CSV, the DICOMs and optional chest-tube labels; writes manifest.parquet (with
chest_tube, view_position, sex, age), images.npy / masks.npy at the training size, the union
masks at full resolution as RLE (mask_rle.parquet), rejects.parquet with --skip-bad, provenance."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from spurspec import config as config_mod
from spurspec.artefacts import io
from spurspec.artefacts.dataset import DatasetWriter, up_to_date
from spurspec.artefacts.layout import DatasetLayout
from spurspec.artefacts.provenance import file_digest, tree_digest
from spurspec.datasets import siim_inputs
from spurspec.datasets.common import (
    Decoded,
    IngestResult,
    Rejects,
    check_basics,
    check_mask_resize,
    count_table,
    decode_all,
    locked_ingest,
    reading_inputs,
    recorded_settings,
)
from spurspec.datasets.splits import split_groups, stratified_subset
from spurspec.datasets.tubes import load_tube_labels
from spurspec.errors import ConfigError, InputError
from spurspec.imaging import dicom, rle
from spurspec.imaging.resize import AREA, band_step, resize_mask_band

STAGE = "ingest"
SPURIOUS = ["chest_tube"]
# Bumped when this module's output for the same inputs changes, so old datasets are rebuilt.
INGEST_VERSION = 1
EXTRA_FIELDS = [
    pa.field("view_position", pa.string(), nullable=True),
    pa.field("sex", pa.string(), nullable=True),
    pa.field("age", pa.int16(), nullable=True),
]


@dataclass(frozen=True)
class Config:
    root: Path  # the SIIM folder: train-rle.csv + dicom-images-train/ or stage_2_train.csv + stage_2_images/
    out: Path  # the dataset directory to write
    labels: Path | None = None  # label CSV when it is not at the top of root under its Kaggle name
    tube_labels: Path | None = None  # chest-tube labels (CSV ImageId,chest_tube or the authors' .pkl)
    size: int = 256  # training size; the study used 512, 256 keeps a full ingest at ~0.8 GB
    # Masks to the training size: area (a cell is positive if half of it is) or max (if any of its
    # pixels is: the study's max-pooling, which siim-study.toml asks for).
    mask_resize: str = AREA
    workers: int = 0  # decode processes; 0 = one per CPU core, at most 8 (JPEG decode is CPU-bound)
    limit: int | None = None  # keep a stratified subset of this many images (label x chest_tube)
    seed: int = 0  # drives the subset and the patient splits
    skip_bad: bool = False  # leave bad inputs out (listed in rejects.parquet) instead of stopping
    # The study drew 1,000 test images of its 1,951 tube-labelled ones and validated on the rest.
    test_fraction: float = 1000 / 1951  # share of the tube-labelled pool that goes to test (rest: val)
    # Without tube labels no robust cells exist; val/test are then drawn from all patients.
    untubed_val_fraction: float = 0.1  # used only when no image has a tube label
    untubed_test_fraction: float = 0.2  # used only when no image has a tube label


def check(cfg: Config) -> None:
    """Refuse settings `ingest` cannot use (ConfigError), whoever calls it: CLI or pipeline."""
    check_basics(cfg.size, cfg.seed, cfg.workers)
    check_mask_resize(cfg.mask_resize)
    if not 0.0 < cfg.test_fraction < 1.0:
        raise ConfigError(f"test_fraction must be between 0 and 1, got {cfg.test_fraction}")
    if cfg.untubed_val_fraction <= 0 or cfg.untubed_test_fraction <= 0 or cfg.untubed_val_fraction + cfg.untubed_test_fraction >= 1:
        raise ConfigError("untubed_val_fraction and untubed_test_fraction must be positive and sum below 1")
    if cfg.limit is not None and cfg.limit < 1:
        raise ConfigError(f"limit must be a positive number of images, got {cfg.limit}")


def assign_splits(
    patients: Sequence[str],
    labels: Sequence[int],
    tubes: Sequence[int | None],
    test_fraction: float,
    seed: int,
    untubed: dict[str, float],
) -> list[str]:
    """Leak-free splits. A patient with any tube-labelled image belongs to the evaluation pool and
    all of their images go to one of val/test (stratified by label x tube); every other patient
    trains. So no patient spans two splits and val/test hold every tube-labelled image. With no
    tube labels at all, patients are split train/val/test by `untubed` fractions."""
    if not any(t is not None for t in tubes):
        return split_groups(patients, untubed, seed, strata=list(labels))
    pool = {p for p, t in zip(patients, tubes, strict=True) if t is not None}
    idx = [i for i, p in enumerate(patients) if p in pool]
    strata = [(labels[i], -1 if tubes[i] is None else tubes[i]) for i in idx]
    fractions = {"val": 1.0 - test_fraction, "test": test_fraction}
    eval_splits = split_groups([patients[i] for i in idx], fractions, seed, strata=strata)
    out = ["train"] * len(patients)
    for i, s in zip(idx, eval_splits, strict=True):
        out[i] = s
    return out


def parse_rows(rows: Sequence[tuple[str, str]], height: int, width: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """The runs (starts, lengths) of each non-empty SIIM RLE row of one image, validated against
    its size; errors name the CSV row `where`."""
    parsed = []
    for where, text in rows:
        if text.strip() in ("", rle.EMPTY):
            continue
        try:
            parsed.append(rle.parse_runs(text, height * width))
        except InputError as exc:
            raise InputError(f"{where}: {exc}") from None
    return parsed


def union_transposed(parsed: list[tuple[np.ndarray, np.ndarray]], height: int, width: int,
                     step: int = 1) -> tuple[np.ndarray, int] | None:
    """OR of parsed SIIM RLE rows in the RLE's own pixel order, the mask's C-ordered transpose
    (width, height), as (band, top): only the transposed rows [top, top + len(band)) that the runs
    touch, widened to multiples of `step` (a lesion covers a few percent of a film, so nothing is
    spent on the rest). None if no row has a run."""
    parsed = [(starts, runs) for starts, runs in parsed if len(runs)]
    if not parsed:
        return None
    first = min(int(starts[0]) for starts, _ in parsed) // height
    last = max(int(starts[-1] + runs[-1] - 1) for starts, runs in parsed) // height
    top, bottom = first // step * step, min(-(-(last + 1) // step) * step, width)
    flat = np.zeros((bottom - top) * height, dtype=bool)
    offset = top * height
    for starts, runs in parsed:
        for start, run in zip((starts - offset).tolist(), runs.tolist(), strict=True):
            flat[start : start + run] = True
    return flat.reshape(bottom - top, height), top


def decode_item(payload: tuple[str, int, str, tuple[tuple[str, str], ...]]) -> Decoded:
    """Worker: one DICOM -> image at the training size, union mask (training size, resized by
    `mask_resize`, and full-size RLE) and header facts. Top-level so worker processes can import it."""
    path, size, mask_resize, rows = payload
    try:
        pixels, facts = dicom.decode(Path(path), size)
    except InputError as exc:
        msg = str(exc)  # decode_all names the file; drop dicom's own copy of the name
        raise InputError(msg[len(path) + 2 :] if msg.startswith(f"{path}: ") else msg) from None
    # The manifest's `source` (symlinks resolved) is found here, in parallel, not by the parent.
    known = {**facts.as_dict(), "source": siim_inputs.real_path(path)}
    small, text = union_mask(rows, facts.rows, facts.cols, size, mask_resize)
    return Decoded(image=pixels[None], mask=small, facts={**known, "rle": text})


def union_mask(rows: Sequence[tuple[str, str]], height: int, width: int, size: int,
               mask_resize: str = AREA) -> tuple[np.ndarray | None, str]:
    """One image's SIIM RLE rows -> (their union at the training size, None if empty; the
    union's canonical full-size RLE). Resizing the transpose and transposing the small result
    equals resizing the mask (square target); the canonical RLE (what re-encoding the painted
    mask gives) comes from the rows' runs, without scanning the full-size mask."""
    shape_t = (width, height)  # the RLE's order: the transposed mask
    parsed = parse_rows(rows, height, width)
    found = union_transposed(parsed, height, width, band_step(shape_t, size) or 1)
    if found is None or not found[0].any():  # None for negatives (~78% of SIIM)
        return None, rle.EMPTY
    return resize_mask_band(*found, shape_t, size, transpose=True, mode=mask_resize), rle.canonical_runs(parsed)


def _inputs(root: Path, cfg: Config) -> tuple[Path, list[Path], dict[str, str]]:
    labels = siim_inputs.find_labels(root, cfg.labels)
    dicoms = siim_inputs.find_dicoms(root, labels)
    if not dicoms:
        raise InputError(f"{root}: no .dcm files found (expected dicom-images-train/ or stage_2_images/)")
    inputs = {"dicoms": tree_digest(dicoms, root), "labels": file_digest(labels)}
    if cfg.tube_labels is not None:
        if not Path(cfg.tube_labels).is_file():
            raise InputError(f"{cfg.tube_labels}: tube-label file not found")
        inputs["tube_labels"] = file_digest(cfg.tube_labels)
    return labels, dicoms, inputs


def _settings(cfg: Config, root: Path, labels: Path) -> dict[str, Any]:
    """What determines the output: everything but where it goes and how many processes made it."""
    settings = config_mod.to_dict(replace(cfg, root=root, labels=labels.resolve()))
    for key in ("out", "workers"):
        settings.pop(key)
    if cfg.tube_labels is not None:
        settings["tube_labels"] = str(Path(cfg.tube_labels).resolve())
    settings["ingest_version"] = INGEST_VERSION
    return recorded_settings(settings)


def _manifest(items: list[siim_inputs.SiimItem], facts: dict[int, dict[str, Any]], splits: dict[int, str]) -> pa.Table:
    """One row per item index; rejected items get placeholders (the writer drops them)."""
    cols: dict[str, list[Any]] = {k: [] for k in (
        "image_id", "patient_id", "split", "label", "has_mask", "source", "orig_height", "orig_width",
        "chest_tube", "view_position", "sex", "age")}
    for i, item in enumerate(items):
        f = facts.get(i, {})
        cols["image_id"].append(item.image_id)
        cols["patient_id"].append(f.get("patient_id") or item.image_id)
        cols["split"].append(splits.get(i, "train"))
        cols["label"].append(item.label)
        cols["has_mask"].append(True)  # SIIM annotates every image; negatives have an empty mask
        cols["source"].append(f.get("source", str(item.path)))  # rejected rows are dropped
        cols["orig_height"].append(f.get("rows", 0))
        cols["orig_width"].append(f.get("cols", 0))
        cols["chest_tube"].append(item.tube)
        cols["view_position"].append(f.get("view_position"))
        cols["sex"].append(f.get("sex"))
        cols["age"].append(f.get("age"))
    types = {"label": pa.int8(), "chest_tube": pa.int8(), "age": pa.int16(), "orig_height": pa.int32(),
             "orig_width": pa.int32(), "has_mask": pa.bool_()}
    return pa.table({k: pa.array(v, type=types.get(k, pa.string())) for k, v in cols.items()})


def ingest(cfg: Config, force: bool = False, progress: Callable[[int], None] | None = None) -> IngestResult:
    check(cfg)
    return locked_ingest(cfg.out, lambda: _ingest(cfg, force, progress))


def _ingest(cfg: Config, force: bool, progress: Callable[[int], None] | None) -> IngestResult:
    root = Path(cfg.root).resolve()
    if not root.is_dir():
        raise InputError(f"{cfg.root}: SIIM folder not found")
    siim_inputs.forget_folders()  # real_path's cache: workers fork after this, with it empty
    with reading_inputs():  # a symbolic link loop or an unreadable folder: bad input, named
        labels_path, dicoms, inputs = _inputs(root, cfg)
    settings = _settings(cfg, root, labels_path)
    if up_to_date(cfg.out, STAGE, settings, inputs, force):
        return IngestResult(out=Path(cfg.out), n_images=0, n_rejected=0, up_to_date=True, counts=[])

    rejects = Rejects(cfg.skip_bad)
    rows = siim_inputs.read_rle_csv(labels_path, rejects)
    tubes = load_tube_labels(Path(cfg.tube_labels)) if cfg.tube_labels is not None else None
    items = siim_inputs.pair(labels_path, rows, dicoms, tubes, cfg.tube_labels, rejects)
    rejects.stop()
    if not items:
        raise InputError(f"{root}: no image has both a DICOM and a label row")
    notes = []
    if cfg.limit is not None and cfg.limit < len(items):
        keep = stratified_subset([(it.label, it.tube) for it in items], cfg.limit, cfg.seed)
        notes.append(f"--limit: kept a stratified {len(keep)} of {len(items)} images (label x chest_tube)")
        items = [items[i] for i in keep]

    labels_name = str(labels_path)  # formatted once: one CSV row name per RLE row, 10,000s of them
    work = [(str(it.path), (str(it.path), cfg.size, cfg.mask_resize, tuple((f"{labels_name}:{r.line}", r.text) for r in it.rows)))
            for it in items]
    workers = min(cfg.workers or min(os.cpu_count() or 1, 8), len(items))
    with DatasetWriter(cfg.out, n=len(items), size=cfg.size, channels=1, force=force) as writer:
        kept, facts = decode_all(work, decode_item, writer, workers, rejects, progress)
        if not kept:
            raise InputError(f"{root}: every image was rejected; see the reasons with --skip-bad off")
        kept_patients = [facts[i].get("patient_id") or items[i].image_id for i in kept]
        split_list = assign_splits(
            kept_patients, [items[i].label for i in kept], [items[i].tube for i in kept], cfg.test_fraction, cfg.seed,
            {"train": 1 - cfg.untubed_val_fraction - cfg.untubed_test_fraction,
             "val": cfg.untubed_val_fraction, "test": cfg.untubed_test_fraction},
        )
        splits = dict(zip(kept, split_list, strict=True))
        manifest = _manifest(items, facts, splits)
        mask_rle = pa.table({
            "image_id": [items[i].image_id for i in sorted(kept)],
            "height": pa.array([facts[i]["rows"] for i in sorted(kept)], pa.int32()),
            "width": pa.array([facts[i]["cols"] for i in sorted(kept)], pa.int32()),
            "rle": [facts[i]["rle"] for i in sorted(kept)],
        })
        n_fast = sum(1 for i in kept if facts[i].get("fast_path"))
        info = {"name": "siim", "source": "siim", "root": str(root), "labels": str(labels_path.resolve()),
                "tube_labels": str(Path(cfg.tube_labels).resolve()) if cfg.tube_labels else None,
                "split_rule": "patients with any tube-labelled image -> val/test; all others -> train",
                "jpeg_fast_path": n_fast, "mask_resize": cfg.mask_resize}
        writer.finish(manifest, SPURIOUS, info, settings, inputs, keep=kept, mask_rle=mask_rle,
                      rejects=rejects.table(), extra_fields=EXTRA_FIELDS, stage=STAGE)
    final = io.read_table(DatasetLayout(Path(cfg.out)).manifest, "manifest")
    notes.append(f"decoded {n_fast} of {len(kept)} DICOMs on the JPEG-Baseline fast path, the rest with pydicom")
    if tubes is None:
        notes.append("no --tube-labels: chest_tube is null everywhere, so robust AUROC cannot be measured")
    return IngestResult(out=Path(cfg.out), n_images=len(kept), n_rejected=len(rejects.rows), up_to_date=False,
                        counts=count_table(final, SPURIOUS), notes=notes)
