"""`ingest isic`: an ISIC 2018 Task 1 folder (JPEG images, lesion masks) with Bissoto et al.'s
artefact annotations (isic_bias.csv) and trap sets (isic_annotated_{train,val,test}K.csv) ->
an RGB dataset directory whose spurious attributes are the seven artefacts and whose splits
reproduce the trap sets (train = train - val, since the published val files are inside train)."""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from spurspec.artefacts import provenance
from spurspec.artefacts.dataset import up_to_date
from spurspec.artefacts.schemas import SPLITS
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
    reading_inputs,
    recorded_settings,
    write_dataset,
)
from spurspec.errors import ConfigError, InputError
from spurspec.imaging.resize import AREA

IMAGES_DIR = "ISIC2018_Task1-2_Training_Input"
MASKS_DIR = "ISIC2018_Task1_Training_GroundTruth"
MASK_SUFFIXES = ("_segmentation.png", "_Segmentation.png")  # 2018 / 2016-17 spelling
TASK3_CSV = "ISIC2018_Task3_Training_GroundTruth.csv"
ARTEFACTS = ("dark_corner", "hair", "gel_border", "gel_bubble", "ruler", "ink", "patches")
# Columns Bissoto's files may carry besides the artefacts: the unnamed index, the image name,
# the label and its text, and `vasc` (trap sets only; a diagnosis flag, not an artefact).
OTHER_COLUMNS = ("", "image", "label", "label_string", "vasc")


@dataclass(frozen=True)
class Config:
    root: Path = Path("isic2018")  # holds ISIC2018_Task1-2_Training_Input/ etc.
    out: Path = Path("dataset")
    artefacts: Path | None = None  # Bissoto's isic_bias.csv (';'-separated)
    trap_sets: Path | None = None  # folder with isic_annotated_{train,val,test}{K}.csv
    trap_seed: int = 1  # K: which of the five published trap sets
    lesion_groups: Path | None = None  # CSV image,lesion_id: keeps a lesion's images in one split
    size: int = 256
    mask_resize: str = AREA  # masks to the training size: area (>= half a cell) or max (any pixel)
    workers: int = 1
    seed: int = 0  # seeds the drawn split when there are no trap sets
    # Without trap sets: the trap sets' own proportions (1563/259/772 of 2594 ~ 60/10/30).
    val_fraction: float = 0.1
    test_fraction: float = 0.3
    skip_bad: bool = False


@dataclass
class _Label:
    label: int
    artefacts: dict[str, int | None]
    where: str


def read_rows(path: Path) -> tuple[list[str], list[tuple[int, dict[str, str]]]]:
    """(header, [(line number, row)]) of a ',' or ';' separated file (sniffed from the header)."""
    text = tables.read_text(Path(path), "file")
    first = text.split("\n", 1)[0]
    delimiter = ";" if first.count(";") > first.count(",") else ","
    header, lines = tables.parse_csv(path, text, delimiter)
    rows = []
    for line, values in lines:
        if len(values) != len(header):
            raise InputError(f"{path} line {line}: {len(values)} fields, header has {len(header)}")
        rows.append((line, {h: v.strip() for h, v in zip(header, values, strict=True)}))
    return header, rows


def isic_id(name: str) -> str:
    """'ISIC_0000004.png' / '.jpg' / bare id -> 'ISIC_0000004' (annotations say .png, files are .jpg)."""
    base = Path(name.strip()).name
    for suffix in (".png", ".jpg", ".jpeg"):
        if base.lower().endswith(suffix):
            return base[: -len(suffix)]
    return base


def _annotations(path: Path) -> dict[str, _Label]:
    header, rows = read_rows(path)
    unknown = [h for h in header if h not in ARTEFACTS and h not in OTHER_COLUMNS]
    if unknown:
        raise InputError(f"{path}: unknown column(s) {', '.join(map(repr, unknown))}; expected image, label and {', '.join(ARTEFACTS)}")
    missing = [h for h in ("image", "label", *ARTEFACTS) if h not in header]
    if missing:
        raise InputError(f"{path}: missing column(s) {', '.join(missing)}")
    out: dict[str, _Label] = {}
    for line, row in rows:
        where = f"{path.name} line {line}"
        image_id = isic_id(row["image"])
        if image_id in out:
            raise InputError(f"{where}: {image_id} already annotated at {out[image_id].where}")
        label = parse_binary(row["label"], where, "label", nullable=False)
        arts = {a: parse_binary(row[a], where, a, nullable=True) for a in ARTEFACTS}
        out[image_id] = _Label(int(label), arts, where)  # type: ignore[arg-type]
    return out


def _task3_labels(path: Path) -> dict[str, _Label]:
    header, rows = read_rows(path)
    if "image" not in header or "MEL" not in header:
        raise InputError(f"{path}: expected columns image and MEL; found {', '.join(header)}")
    return {
        isic_id(row["image"]): _Label(int(parse_binary(row["MEL"], f"{path.name} line {line}", "MEL", nullable=False)), {}, f"{path.name} line {line}")  # type: ignore[arg-type]
        for line, row in rows
    }


def _trap_sets(folder: Path, k: int) -> dict[str, list[tuple[str, str]]]:
    """split -> [(isic id, where)] as published (val still inside train)."""
    out = {}
    for split in SPLITS:
        path = Path(folder) / f"isic_annotated_{split}{k}.csv"
        header, rows = read_rows(path)
        if "image" not in header:
            raise InputError(f"{path}: no image column; found {', '.join(header)}")
        out[split] = [(isic_id(row["image"]), f"{path.name} line {line}") for line, row in rows]
    return out


def _images(root: Path) -> tuple[dict[str, Path], dict[str, Path]]:
    img_dir = root / IMAGES_DIR
    if not img_dir.is_dir():
        raise InputError(f"{root}: no {IMAGES_DIR}/ folder; expected the ISIC 2018 Task 1-2 training images there")
    images = {p.stem: p for p in _files(img_dir, "ISIC_*.jpg")}
    if not images:
        raise InputError(f"{img_dir}: no ISIC_*.jpg images")
    masks: dict[str, Path] = {}
    mask_dir = root / MASKS_DIR
    if mask_dir.is_dir():
        for p in _files(mask_dir, "ISIC_*.png"):
            for suffix in MASK_SUFFIXES:
                if p.name.endswith(suffix):
                    masks.setdefault(p.name[: -len(suffix)], p)
    return images, masks


def _files(folder: Path, pattern: str) -> list[Path]:
    """`folder`'s entries named like `pattern`, sorted, as glob finds them; but a folder this user
    cannot read raises (bad input, named, under reading_inputs) where glob finds nothing."""
    return sorted(folder / name for name in fnmatch.filter(os.listdir(folder), pattern))


def _labels(cfg: Config, images: dict[str, Path], rejects: Rejects, notes: list[str]) -> dict[str, _Label]:
    if cfg.artefacts is not None:
        labels = _annotations(Path(cfg.artefacts))
        for image_id, lab in list(labels.items()):
            if image_id not in images:
                rejects.reject(lab.where, f"annotation for {image_id}, which is not among the images in {IMAGES_DIR}/")
                del labels[image_id]
        notes.append(f"labels: Bissoto's `label` (1 = malignant) from {Path(cfg.artefacts).name}")
        unannotated = sum(1 for i in images if i not in labels)
        if unannotated:
            notes.append(f"{unannotated} image(s) in {IMAGES_DIR}/ have no annotation and were left out")
        return labels
    if cfg.trap_sets is not None:
        labels = {}
        for split in SPLITS:
            path = Path(cfg.trap_sets) / f"isic_annotated_{split}{cfg.trap_seed}.csv"
            for image_id, lab in _annotations(path).items():
                if image_id in images:
                    labels.setdefault(image_id, lab)
        notes.append("labels and artefacts: from the trap-set files (no --artefacts given)")
        return labels
    task3 = cfg.root / TASK3_CSV
    if not task3.is_file():
        raise InputError(f"{cfg.root}: no labels: give --artefacts (Bissoto's isic_bias.csv) or put {TASK3_CSV} in ROOT")
    labels = {i: lab for i, lab in _task3_labels(task3).items() if i in images}
    notes.append(f"labels: MEL from {TASK3_CSV} (no artefact annotations, so no spurious attributes)")
    return labels


def _trap_splits(cfg: Config, labels: dict[str, _Label], rejects: Rejects, notes: list[str]) -> dict[str, str]:
    sets = _trap_sets(Path(cfg.trap_sets), cfg.trap_seed)  # type: ignore[arg-type]
    val_ids = {i for i, _ in sets["val"]}
    split_of: dict[str, str] = {}
    removed = 0
    for split in ("val", "train", "test"):
        for image_id, where in sets[split]:
            if image_id not in labels:
                rejects.reject(where, f"trap-set id {image_id} is not among the (annotated) images")
                continue
            if split == "train" and image_id in val_ids:
                removed += 1
                continue
            if image_id in split_of and split_of[image_id] != split:
                rejects.reject(where, f"{image_id} is in both the {split_of[image_id]} and {split} trap sets")
                continue
            split_of[image_id] = split
    notes.append(
        f"splits: trap set {cfg.trap_seed}; removed {removed} val image(s) from train "
        "(the published val files are subsets of train)"
    )
    left_out = len(labels) - len(split_of)
    if left_out:
        notes.append(f"{left_out} annotated image(s) are in no trap set and were left out")
    return split_of


def _lesions(path: Path | None, images: dict[str, Path], notes: list[str]) -> dict[str, str]:
    if path is None:
        return {}
    header, rows = read_rows(path)
    if "image" not in header or "lesion_id" not in header:
        raise InputError(f"{path}: expected columns image and lesion_id; found {', '.join(header)}")
    lesions = {isic_id(r["image"]): r["lesion_id"] for _, r in rows if r["lesion_id"]}
    alone = sum(1 for i in images if i not in lesions)
    if alone:
        notes.append(f"{alone} image(s) have no lesion id in {path.name}: each is its own group")
    return lesions


def check(cfg: Config) -> None:
    """Refuse settings `ingest` cannot use (ConfigError), whoever calls it: CLI or pipeline."""
    check_basics(cfg.size, cfg.seed, cfg.workers)
    check_mask_resize(cfg.mask_resize)
    if not (0 <= cfg.val_fraction and 0 <= cfg.test_fraction and cfg.val_fraction + cfg.test_fraction < 1):
        raise ConfigError("val and test fractions must be >= 0 and sum to less than 1")


def ingest(cfg: Config, force: bool = False, progress: Callable[[int], None] | None = None) -> IngestResult:
    check(cfg)
    return locked_ingest(cfg.out, lambda: _ingest(cfg, force, progress))


def _ingest(cfg: Config, force: bool, progress: Callable[[int], None] | None) -> IngestResult:
    root = Path(cfg.root)
    with reading_inputs():  # a symbolic link loop or an unreadable file or folder: bad input, named
        images, masks = _images(root)
        inputs = {"files": provenance.tree_digest([*images.values(), *masks.values()])}
        for name in ("artefacts", "lesion_groups"):
            if getattr(cfg, name) is not None:
                inputs[name] = provenance.file_digest(getattr(cfg, name)) if Path(getattr(cfg, name)).is_file() else "missing"
        if cfg.trap_sets is not None:
            for split in SPLITS:
                p = Path(cfg.trap_sets) / f"isic_annotated_{split}{cfg.trap_seed}.csv"
                inputs[f"trap_{split}"] = provenance.file_digest(p) if p.is_file() else "missing"
        if (root / TASK3_CSV).is_file() and cfg.artefacts is None:
            inputs["task3"] = provenance.file_digest(root / TASK3_CSV)
    settings = recorded_settings(to_dict(cfg))
    if up_to_date(cfg.out, "ingest", settings, inputs, force):
        return IngestResult(cfg.out, 0, 0, True, [])

    notes: list[str] = []
    rejects = Rejects(cfg.skip_bad)
    labels = _labels(cfg, images, rejects, notes)
    if cfg.trap_sets is not None:
        split_of = _trap_splits(cfg, labels, rejects, notes)
    else:
        split_of = {}
        unlabelled = [i for i in images if i not in labels]
        for image_id in unlabelled:
            rejects.reject(f"{images[image_id].name}", "no label for this image in the label file")
    lesions = _lesions(cfg.lesion_groups, images, notes)
    annotated = bool(cfg.artefacts is not None or cfg.trap_sets is not None)
    spurious = list(ARTEFACTS) if annotated else []
    ids = sorted(split_of) if cfg.trap_sets is not None else sorted(i for i in images if i in labels)
    items = [
        Item(
            name=f"{image_id} ({images[image_id].name})",
            image_id=image_id,
            patient_id=lesions.get(image_id, image_id),
            label=labels[image_id].label,
            spurious={a: labels[image_id].artefacts.get(a) for a in spurious},
            image=images[image_id],
            mask=masks.get(image_id),
            split=split_of.get(image_id),
        )
        for image_id in ids
    ]
    if cfg.trap_sets is None:
        # Stratify by label only: label x 7 artefacts makes ~100 tiny strata that split poorly.
        assign_splits(items, [], cfg.seed, cfg.val_fraction, cfg.test_fraction)
        by = f"by lesion ({Path(cfg.lesion_groups).name})" if cfg.lesion_groups else "by image (no --lesion-groups)"
        notes.append(f"splits: drawn {by}, seed {cfg.seed}, stratified by label")
    no_mask = sum(1 for it in items if it.mask is None)
    if no_mask:
        notes.append(f"{no_mask} image(s) have no segmentation mask in {MASKS_DIR}/")
    info = {"name": "isic", "root": str(root), "trap_seed": cfg.trap_seed if cfg.trap_sets else None}
    return write_dataset(items, spurious, cfg, 3, force, settings, inputs, info, rejects, notes, progress)
