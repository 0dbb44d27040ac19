"""`ingest folder`: a CSV or Parquet table listing images (PNG, JPEG, DICOM, NIfTI) with labels,
optional masks (a file column or a SIIM-style RLE column), spurious attributes, patients and
splits -> a dataset directory. Also holds the decode-and-write step `ingest isic` reuses."""

from __future__ import annotations

import csv
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa

from spurspec.artefacts import provenance
from spurspec.artefacts.dataset import DatasetWriter, up_to_date
from spurspec.artefacts.schemas import MANIFEST_FIELDS
from spurspec.config import to_dict
from spurspec.datasets.common import Decoded, IngestResult, decode_all, rejects_table
from spurspec.datasets.splits import split_groups
from spurspec.errors import ConfigError, InputError
from spurspec.imaging import readers, rle
from spurspec.imaging.resize import resize_image, resize_mask

# Column names are used as identifiers (never spliced into SQL, but also echoed and stored):
# letters, digits, underscore, space, dot and dash only.
IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_ .\-]{0,127}$")
SPLIT_NAMES = ("train", "val", "test")


@dataclass(frozen=True)
class Config:
    table: Path = Path("images.csv")  # CSV or Parquet, one row per image
    out: Path = Path("dataset")
    image_col: str = "image"  # path to the image file (relative to `root`)
    label_col: str = "label"  # 0/1 abnormality label
    mask_col: str | None = None  # path to a mask file (0/1 or 0/255); empty = no mask
    rle_col: str | None = None  # SIIM-style RLE at the image's size; "-1" = known-empty mask
    spurious_cols: tuple[str, ...] = ()  # 0/1 spurious attributes; empty = unknown
    patient_col: str | None = None  # keeps a patient's images in one split
    split_col: str | None = None  # train/val/test given by the table instead of drawn
    root: Path | None = None  # relative paths resolve here; default: the table's folder
    size: int = 256  # training size (square)
    channels: int = 1  # 1 = grey (RGB converted by luma), 3 = RGB (grey repeated)
    workers: int = 1
    seed: int = 0  # seeds the drawn split
    # Drawn splits when the table has none: 70/10/20 by patient, stratified by label x attributes.
    val_fraction: float = 0.1
    test_fraction: float = 0.2
    skip_bad: bool = False


@dataclass
class Item:
    """One image to decode and its manifest row (split may be filled in later)."""

    name: str  # how errors name it, e.g. "images.csv row 3"
    image_id: str
    patient_id: str
    label: int
    spurious: dict[str, int | None]
    image: Path
    mask: Path | None = None
    rle: str | None = None
    split: str | None = None


def decode_item(payload: tuple[str, str | None, str | None, int, int]) -> Decoded:
    """Worker: image (+ mask file and/or RLE at the image's size) -> training-size arrays plus
    the full-resolution mask as RLE. Top level so it runs in worker processes."""
    image_path, mask_path, rle_text, size, channels = payload
    pixels, (height, width) = readers.read_image(Path(image_path), draft_size=size)
    mask = None
    if mask_path is not None:
        mask = readers.read_mask(Path(mask_path))
        if mask.shape != (height, width):
            raise InputError(f"mask {mask_path} is {mask.shape[0]}x{mask.shape[1]} but its image is {height}x{width}")
    if rle_text is not None:
        from_rle = readers.mask_from_rle(rle_text, height, width, "RLE")
        mask = from_rle if mask is None else (mask | from_rle)
    image = resize_image(readers.to_channels(pixels, channels), size)
    facts = {"orig_height": height, "orig_width": width}
    if mask is None:
        return Decoded(image=image, mask=None, facts=facts)
    facts["rle"] = rle.encode(mask)
    return Decoded(image=image, mask=resize_mask(mask, size), facts=facts)


def summary_rows(manifest: pa.Table, spurious: list[str]) -> list[dict[str, Any]]:
    """One row per split x label: image count, masks, and how many carry each attribute (a
    compact view even with many attributes, where a full cross-tabulation would explode)."""
    data = manifest.select(["split", "label", "has_mask", *spurious]).to_pydict()
    rows: dict[tuple[str, int], dict[str, Any]] = {}
    for i, (split, label) in enumerate(zip(data["split"], data["label"], strict=True)):
        row = rows.setdefault((split, label), {"split": split, "label": label, "n": 0, "masks": 0, **dict.fromkeys(spurious, 0)})
        row["n"] += 1
        row["masks"] += int(bool(data["has_mask"][i]))
        for a in spurious:
            row[a] += int(data[a][i] == 1)
    order = {s: k for k, s in enumerate(SPLIT_NAMES)}
    return [rows[k] for k in sorted(rows, key=lambda k: (order.get(k[0], 9), k[1]))]


def write_dataset(
    items: list[Item],
    spurious: list[str],
    cfg: Any,
    channels: int,
    force: bool,
    settings: dict[str, Any],
    inputs: dict[str, str],
    info: dict[str, Any],
    rejects: list[dict[str, str]],
    notes: list[str],
    progress: Callable[[int], None] | None,
) -> IngestResult:
    """Decode every item in parallel into a staged dataset directory and swap it in: nothing
    is written if an item is bad (unless cfg.skip_bad, which records rejects.parquet)."""
    if not items:
        raise InputError("no usable images to ingest" + (f" ({len(rejects)} rejected)" if rejects else ""))
    payloads = [
        (it.name, (str(it.image), None if it.mask is None else str(it.mask), it.rle, cfg.size, channels)) for it in items
    ]
    with DatasetWriter(cfg.out, n=len(items), size=cfg.size, channels=channels, force=force) as writer:
        kept, bad, facts = decode_all(payloads, decode_item, writer, cfg.workers, cfg.skip_bad, progress)
        rejects = rejects + bad
        if not kept:
            raise InputError(f"every image was rejected ({len(rejects)}); first: {rejects[0]['input']}: {rejects[0]['reason']}")
        manifest = _manifest(items, spurious, facts)
        mask_rle = pa.table(
            {
                "image_id": [items[i].image_id for i in kept if "rle" in facts[i]],
                "height": [facts[i]["orig_height"] for i in kept if "rle" in facts[i]],
                "width": [facts[i]["orig_width"] for i in kept if "rle" in facts[i]],
                "rle": [facts[i]["rle"] for i in kept if "rle" in facts[i]],
            }
        )
        writer.finish(
            manifest,
            spurious=spurious,
            info=info,
            settings=settings,
            inputs=inputs,
            keep=kept,
            mask_rle=mask_rle,
            rejects=rejects_table(rejects) if rejects else None,
        )
        summary = summary_rows(manifest.take(pa.array(sorted(kept))), spurious)
    if rejects:
        notes = [*notes, f"first reject: {rejects[0]['input']}: {rejects[0]['reason']}"]
    return IngestResult(cfg.out, len(kept), len(rejects), False, summary, notes)


def _manifest(items: list[Item], spurious: list[str], facts: dict[int, dict[str, Any]]) -> pa.Table:
    get = lambda i, k: facts.get(i, {}).get(k, 0)  # noqa: E731 - rejected rows are dropped at finish
    cols: dict[str, pa.Array] = {
        "image_id": pa.array([it.image_id for it in items], pa.string()),
        "patient_id": pa.array([it.patient_id for it in items], pa.string()),
        "split": pa.array([it.split for it in items], pa.string()),
        "label": pa.array([it.label for it in items], pa.int8()),
        "has_mask": pa.array([i in facts and "rle" in facts[i] for i in range(len(items))], pa.bool_()),
        "source": pa.array([str(it.image) for it in items], pa.string()),
        "orig_height": pa.array([get(i, "orig_height") for i in range(len(items))], pa.int32()),
        "orig_width": pa.array([get(i, "orig_width") for i in range(len(items))], pa.int32()),
    }
    for a in spurious:
        cols[a] = pa.array([it.spurious[a] for it in items], pa.int8())
    return pa.table(cols)


def assign_splits(items: list[Item], spurious: list[str], seed: int, val: float, test: float) -> None:
    """Seeded split by patient (each item's patient_id), stratified by label x attributes."""
    fractions = {"train": 1.0 - val - test, "val": val, "test": test}
    strata = [(it.label, *(it.spurious[a] for a in spurious)) for it in items]
    for it, split in zip(items, split_groups([it.patient_id for it in items], fractions, seed, strata), strict=True):
        it.split = split


# ---- reading the user's table ---------------------------------------------------------------


def read_table(path: Path) -> pa.Table:
    """CSV (every column read as text, empty = null) or Parquet."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: table not found")
    try:
        if path.suffix.lower() in (".parquet", ".pq"):
            import pyarrow.parquet as pq

            return pq.read_table(path)
        import pyarrow.csv as pcsv

        with open(path, newline="", encoding="utf-8-sig") as fh:
            header = next(csv.reader(fh), [])
        convert = pcsv.ConvertOptions(column_types={h: pa.string() for h in header}, strings_can_be_null=True)
        return pcsv.read_csv(path, convert_options=convert)
    except (pa.ArrowInvalid, OSError, UnicodeDecodeError, csv.Error) as exc:
        raise InputError(f"{path}: unreadable table ({exc})") from None


def check_columns(table: pa.Table, wanted: dict[str, str | None], where: Path) -> None:
    """Every named column must be a safe identifier and exist in the table."""
    for option, name in wanted.items():
        if name is None:
            continue
        if not IDENTIFIER.match(name):
            raise ConfigError(f"{option} {name!r}: not a valid column name (letters, digits, _ . - and space only)")
        if name not in table.column_names:
            raise InputError(f"{where}: unknown column {name!r} for {option}; columns: {', '.join(table.column_names)}")


def parse_binary(value: Any, where: str, what: str, nullable: bool) -> int | None:
    """0/1 (also true/false, 0.0/1.0) -> int; empty -> None if nullable; anything else errors."""
    if value is None or (isinstance(value, str) and value.strip() == ""):
        if nullable:
            return None
        raise InputError(f"{where}: {what} is empty")
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int | float) and value in (0, 1):
        return int(value)
    text = str(value).strip().lower()
    if text in ("0", "1", "0.0", "1.0"):
        return int(float(text))
    if text in ("true", "false"):
        return int(text == "true")
    raise InputError(f"{where}: {what} must be 0 or 1, found {value!r}")


def _id_of(path_text: str) -> str:
    lower = path_text.lower()
    for suffix in (".nii.gz", *readers.PILLOW_SUFFIXES, ".nii", *readers.DICOM_SUFFIXES):
        if lower.endswith(suffix):
            return path_text[: -len(suffix)]
    return path_text


def _items(cfg: Config, table: pa.Table, root: Path) -> tuple[list[Item], list[dict[str, str]]]:
    data = table.to_pydict()
    items: list[Item] = []
    rejects: list[dict[str, str]] = []
    seen: dict[str, str] = {}
    col = lambda name, i: data[name][i] if name is not None else None  # noqa: E731
    text = lambda v: None if v is None or str(v).strip() == "" else str(v).strip()  # noqa: E731
    for i in range(table.num_rows):
        where = f"{cfg.table.name} row {i + 1}"
        try:
            image = text(col(cfg.image_col, i))
            if image is None:
                raise InputError(f"{where}: {cfg.image_col} is empty")
            image_id = _id_of(image)
            if image_id in seen:
                raise InputError(f"{where}: image {image!r} already listed at {seen[image_id]}")
            label = parse_binary(col(cfg.label_col, i), where, cfg.label_col, nullable=False)
            spurious = {a: parse_binary(col(a, i), where, a, nullable=True) for a in cfg.spurious_cols}
            split = text(col(cfg.split_col, i))
            if cfg.split_col is not None and (split is None or split.lower() not in SPLIT_NAMES):
                raise InputError(f"{where}: {cfg.split_col} must be one of {', '.join(SPLIT_NAMES)}, found {split!r}")
            mask = text(col(cfg.mask_col, i))
            rle_text = text(col(cfg.rle_col, i))
        except InputError as exc:
            if not cfg.skip_bad:
                raise
            rejects.append({"input": where, "reason": str(exc).removeprefix(f"{where}: ")})
            continue
        seen[image_id] = where
        patient = text(col(cfg.patient_col, i)) or image_id
        items.append(
            Item(
                name=f"{where} ({image})",
                image_id=image_id,
                patient_id=patient,
                label=int(label),  # type: ignore[arg-type]
                spurious=spurious,
                image=root / image,
                mask=None if mask is None else root / mask,
                rle=rle_text,
                split=None if split is None else split.lower(),
            )
        )
    return items, rejects


def _validate(cfg: Config) -> None:
    if cfg.channels not in (1, 3):
        raise ConfigError(f"--channels must be 1 or 3, got {cfg.channels}")
    if cfg.size < 8:
        raise ConfigError(f"--size must be at least 8, got {cfg.size}")
    reserved = {f.name for f in MANIFEST_FIELDS}
    clash = [c for c in cfg.spurious_cols if c in reserved or c in (cfg.label_col, cfg.image_col)]
    if clash:
        raise ConfigError(f"spurious column(s) {', '.join(clash)} clash with manifest or label/image columns; rename them")
    if not (0 <= cfg.val_fraction and 0 <= cfg.test_fraction and cfg.val_fraction + cfg.test_fraction < 1):
        raise ConfigError("val and test fractions must be >= 0 and sum to less than 1")


def ingest(cfg: Config, force: bool = False, progress: Callable[[int], None] | None = None) -> IngestResult:
    _validate(cfg)
    table = read_table(cfg.table)
    check_columns(
        table,
        {
            "--image-col": cfg.image_col,
            "--label-col": cfg.label_col,
            "--mask-col": cfg.mask_col,
            "--rle-col": cfg.rle_col,
            "--patient-col": cfg.patient_col,
            "--split-col": cfg.split_col,
            **{f"--spurious-col {c}": c for c in cfg.spurious_cols},
        },
        cfg.table,
    )
    root = Path(cfg.root) if cfg.root is not None else Path(cfg.table).resolve().parent
    items, rejects = _items(cfg, table, root)
    files = [it.image for it in items] + [it.mask for it in items if it.mask is not None]
    existing = [p for p in files if p.is_file()]
    settings = {**to_dict(cfg), "root": str(root.resolve())}
    inputs = {"table": provenance.file_digest(cfg.table), "files": provenance.tree_digest(existing)}
    if up_to_date(cfg.out, "ingest", settings, inputs, force):
        return IngestResult(cfg.out, 0, 0, True, [])
    notes: list[str] = []
    if cfg.split_col is None:
        assign_splits(items, list(cfg.spurious_cols), cfg.seed, cfg.val_fraction, cfg.test_fraction)
        by = f"by {cfg.patient_col}" if cfg.patient_col else "by image (no --patient-col)"
        notes.append(f"splits drawn {by}, seed {cfg.seed}, stratified by label x spurious attributes")
    info = {"name": "folder", "source": str(cfg.table), "table_rows": table.num_rows}
    return write_dataset(
        items, list(cfg.spurious_cols), cfg, cfg.channels, force, settings, inputs, info, rejects, notes, progress
    )
