"""`ingest folder`: a CSV or Parquet table listing images (PNG, JPEG, DICOM, NIfTI) with labels,
optional masks (a file column or a SIIM-style RLE column), spurious attributes, patients and
splits -> a dataset directory (decoded and written by datasets.common.write_dataset)."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa

from spurspec.artefacts import provenance
from spurspec.artefacts.dataset import up_to_date
from spurspec.artefacts.schemas import SPLITS, attribute_name_problem
from spurspec.config import to_dict
from spurspec.datasets import tables
from spurspec.datasets.common import (
    IngestResult,
    Item,
    Rejects,
    assign_splits,
    check_basics,
    check_mask_resize,
    locked_ingest,
    parse_binary,
    recorded_settings,
    write_dataset,
)
from spurspec.errors import ConfigError, InputError
from spurspec.imaging import readers
from spurspec.imaging.limits import input_fault
from spurspec.imaging.resize import AREA

# Column names are used as identifiers (never spliced into SQL, but also echoed and stored):
# letters, digits, underscore, space, dot and dash only.
IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_ .\-]{0,127}$")


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
    allow_outside_root: bool = False  # with root: also read table paths that resolve outside it
    size: int = 256  # training size (square)
    mask_resize: str = AREA  # masks to the training size: area (>= half a cell) or max (any pixel)
    channels: int = 1  # 1 = grey (RGB converted by luma), 3 = RGB (grey repeated)
    workers: int = 1
    seed: int = 0  # seeds the drawn split
    # Drawn splits when the table has none: 70/10/20 by patient, stratified by label x attributes.
    val_fraction: float = 0.1
    test_fraction: float = 0.2
    skip_bad: bool = False


# ---- reading the user's table ---------------------------------------------------------------


def read_table(path: Path) -> pa.Table:
    """CSV (UTF-8, every column read as text, empty = null) or Parquet; a column named twice is
    refused (a lookup by name would take one of them silently)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: table not found")
    try:
        if path.suffix.lower() in (".parquet", ".pq"):
            import pyarrow.parquet as pq

            tables.unique_columns(pq.read_schema(path).names, path)  # reading would fail on them
            table = pq.read_table(path)
        else:
            import pyarrow.csv as pcsv

            text = tables.read_text(path, "table")
            header, _ = tables.parse_csv(path, text.split("\n", 1)[0])
            convert = pcsv.ConvertOptions(column_types={h: pa.string() for h in header}, strings_can_be_null=True)
            table = pcsv.read_csv(pa.BufferReader(text.encode("utf-8")), convert_options=convert)
    except (pa.ArrowInvalid, OSError) as exc:
        raise InputError(f"{path}: unreadable table ({' '.join(str(exc).split())})") from None
    tables.unique_columns(table.column_names, path)
    return table


def check_columns(table: pa.Table, wanted: dict[str, str | None], where: Path) -> None:
    """Every named column must be a safe identifier and exist in the table."""
    for option, name in wanted.items():
        if name is None:
            continue
        if not IDENTIFIER.match(name):
            raise ConfigError(f"{option} {name!r}: not a valid column name (letters, digits, _ . - and space only)")
        if name not in table.column_names:
            raise InputError(f"{where}: unknown column {name!r} for {option}; columns: {', '.join(table.column_names)}")


def _id_of(path_text: str) -> str:
    lower = path_text.lower()
    for suffix in (".nii.gz", *readers.PILLOW_SUFFIXES, ".nii", *readers.DICOM_SUFFIXES):
        if lower.endswith(suffix):
            return path_text[: -len(suffix)]
    return path_text


def _confine(path: Path, inside: Path | None, where: str) -> None:
    """With --root (`inside`, resolved), a table's path must resolve inside it, symbolic links
    followed: a table alone cannot send the ingest to ../../elsewhere.png. A loop of links is
    named as one."""
    if inside is None:
        return
    try:
        real = path.resolve()
    except RuntimeError:  # Python 3.11's word for a loop of symbolic links
        raise InputError(f"{where}: {path}: symbolic link loop") from None
    except OSError as exc:
        raise (input_fault(exc, f"{where}: {path}") or InputError(f"{where}: {path}: {exc.strerror}")) from None
    if not real.is_relative_to(inside):
        raise InputError(f"{where}: {path} resolves to {real}, outside --root {inside}; "
                         "pass --allow-outside-root to read it")


def _present(path: Path) -> bool:
    """Whether `path` is a file to fingerprint. One this user cannot reach (a folder without
    permission) is not: its row is rejected by name when it is decoded, like a missing file."""
    try:
        return path.is_file()
    except OSError:
        return False


def _items(cfg: Config, table: pa.Table, root: Path, inside: Path | None, rejects: Rejects) -> list[Item]:
    data = table.to_pydict()
    items: list[Item] = []
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
            if cfg.split_col is not None and (split is None or split.lower() not in SPLITS):
                raise InputError(f"{where}: {cfg.split_col} must be one of {', '.join(SPLITS)}, found {split!r}")
            mask = text(col(cfg.mask_col, i))
            rle_text = text(col(cfg.rle_col, i))
            for name in (image, mask):
                if name is not None:
                    _confine(root / name, inside, where)
        except InputError as exc:
            rejects.reject(where, str(exc).removeprefix(f"{where}: "))
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
    return items


def check(cfg: Config) -> None:
    """Refuse settings `ingest` cannot use (ConfigError), whoever calls it: CLI or pipeline."""
    check_basics(cfg.size, cfg.seed, cfg.workers)
    check_mask_resize(cfg.mask_resize)
    if cfg.channels not in (1, 3):
        raise ConfigError(f"channels must be 1 or 3, got {cfg.channels}")
    for col in cfg.spurious_cols:  # each becomes a manifest column evaluate names in SQL
        problem = attribute_name_problem(col)
        if problem is not None:
            raise ConfigError(f"--spurious-cols {col!r}: {problem}; rename the column in the table")
    clash = [c for c in cfg.spurious_cols if c in (cfg.label_col, cfg.image_col)]
    if clash:
        raise ConfigError(f"spurious column(s) {', '.join(clash)} are also the label or image column")
    if len(set(cfg.spurious_cols)) != len(cfg.spurious_cols):
        raise ConfigError(f"--spurious-cols names a column twice: {', '.join(cfg.spurious_cols)}")
    if not (0 <= cfg.val_fraction and 0 <= cfg.test_fraction and cfg.val_fraction + cfg.test_fraction < 1):
        raise ConfigError("val and test fractions must be >= 0 and sum to less than 1")


def ingest(cfg: Config, force: bool = False, progress: Callable[[int], None] | None = None) -> IngestResult:
    check(cfg)
    return locked_ingest(cfg.out, lambda: _ingest(cfg, force, progress))


def _ingest(cfg: Config, force: bool, progress: Callable[[int], None] | None) -> IngestResult:
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
            **{f"--spurious-cols {c}": c for c in cfg.spurious_cols},
        },
        cfg.table,
    )
    root = Path(cfg.root) if cfg.root is not None else Path(cfg.table).resolve().parent
    inside = root.resolve() if cfg.root is not None and not cfg.allow_outside_root else None
    rejects = Rejects(cfg.skip_bad)
    items = _items(cfg, table, root, inside, rejects)
    files = [it.image for it in items] + [it.mask for it in items if it.mask is not None]
    existing = [p for p in files if _present(p)]
    settings = recorded_settings({**to_dict(cfg), "root": str(root.resolve())})
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
