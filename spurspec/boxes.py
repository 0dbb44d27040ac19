"""`derive-boxes`: reads a dataset directory's masks (full-resolution RLE in mask_rle.parquet,
else the training-size masks.npy) and writes boxes.parquet, box_masks.npy (filled boxes at
training size) and grids/grid{k}.npy (coarse k x k masks), with provenance."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa

from spurspec.artefacts import io, provenance, schemas
from spurspec.artefacts.dataset import Dataset
from spurspec.config import to_dict
from spurspec.errors import ArtefactError, ConfigError
from spurspec.imaging import boxes as bx
from spurspec.imaging import rle

STAGE = "derive-boxes"
MODES = ("union", "components")


@dataclass(frozen=True)
class DeriveBoxesConfig:
    # The dataset directory written by an ingest; outputs go beside its manifest.
    dataset: Path = Path(".")
    # "union": the study's one box over every positive pixel; "components": one box per
    # connected region, which stays tighter when an image has several separate lesions.
    mode: str = "union"
    # Pixels (original resolution) added on every side, clipped to the image: annotators'
    # boxes are rarely tight, so a margin simulates looser box labels.
    margin: int = 0
    # Grid sizes k for `grid:k` training (the study's spatial-specificity sweep); cheap to make.
    grids: tuple[int, ...] = (2, 4, 8, 16, 32)


@dataclass
class DeriveBoxesResult:
    dataset: Path
    up_to_date: bool
    n_images: int = 0
    n_with_boxes: int = 0
    n_boxes: int = 0
    mean_area_fraction: float = 0.0  # mean filled-box area / image area at training size, over images with boxes
    grids: list[int] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _check(cfg: DeriveBoxesConfig, size: int) -> None:
    if cfg.mode not in MODES:
        raise ConfigError(f"unknown box mode {cfg.mode!r}; valid: {', '.join(MODES)}")
    if cfg.margin < 0:
        raise ConfigError(f"margin must be >= 0 pixels, got {cfg.margin}")
    bad = [k for k in cfg.grids if not 1 <= k <= size]
    if bad:
        raise ConfigError(f"grid sizes must be between 1 and the training size {size}; got {bad}")


def _load_rle(ds: Dataset) -> dict[str, tuple[int, int, str]] | None:
    path = ds.layout.mask_rle
    if not path.exists():
        return None
    table = schemas.check(io.read_table(path, "mask RLE table"), schemas.MASK_RLE, path)
    cols = table.select(["image_id", "height", "width", "rle"]).to_pydict()
    return {i: (h, w, r) for i, h, w, r in zip(cols["image_id"], cols["height"], cols["width"], cols["rle"], strict=True)}


def _outputs_exist(ds: Dataset, grids: tuple[int, ...]) -> bool:
    paths = [ds.layout.boxes, ds.layout.box_masks, *(ds.layout.grid(k) for k in grids)]
    return all(p.exists() for p in paths)


def derive_boxes(cfg: DeriveBoxesConfig, force: bool = False) -> DeriveBoxesResult:
    ds = Dataset.open(cfg.dataset)
    size = ds.size
    _check(cfg, size)
    grids = tuple(sorted(set(cfg.grids)))
    settings = {**to_dict(cfg), "grids": list(grids), "dataset": str(Path(cfg.dataset).resolve())}
    layout = ds.layout
    rle_path = layout.mask_rle
    inputs = {
        "manifest": ds.fingerprint(),
        "mask_rle": provenance.file_digest(rle_path) if rle_path.exists() else "absent",
    }
    n = ds.manifest.num_rows
    if not force and _outputs_exist(ds, grids) and provenance.is_up_to_date(layout.provenance(STAGE), settings, inputs):
        return DeriveBoxesResult(dataset=Path(cfg.dataset), up_to_date=True, n_images=n, grids=list(grids))

    result = DeriveBoxesResult(dataset=Path(cfg.dataset), up_to_date=False, n_images=n, grids=list(grids))
    rles = _load_rle(ds)
    if rles is None:
        result.notes.append(
            f"{rle_path.name} absent: boxes and grids come from the {size}x{size} training masks "
            "(original-pixel boxes are scaled back, so they are only as exact as that resolution)"
        )
    man = ds.manifest.select(["image_id", "has_mask", "orig_height", "orig_width"]).to_pydict()
    train_masks = ds.masks()
    rows: list[dict[str, int | str]] = []
    area_fracs: list[float] = []
    grid_arrays = {k: np.zeros((n, k, k), dtype=np.uint8) for k in grids}
    with io.atomic_path(layout.box_masks, suffix=".npy") as tmp:
        filled = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=(n, size, size))
        for i in range(n):
            image_id = man["image_id"][i]
            if not man["has_mask"][i]:
                continue
            height, width = int(man["orig_height"][i]), int(man["orig_width"][i])
            mask, mask_scale = _mask_for(image_id, i, rles, train_masks, height, width, rle_path)
            found = bx.component_boxes(mask) if cfg.mode == "components" else [b for b in [bx.union_box(mask)] if b]
            if mask_scale != (height, width):
                found = [bx.from_training(b, height, width, size) for b in found]
            boxes = [bx.with_margin(b, cfg.margin, height, width) for b in found]
            train_boxes = [bx.to_training(b, height, width, size) for b in boxes]
            for j, (b, t) in enumerate(zip(boxes, train_boxes, strict=True)):
                rows.append(_row(image_id, j, b, t))
            if train_boxes:
                filled[i] = bx.fill_boxes(train_boxes, size)
                area_fracs.append(float(filled[i].mean()))
            for k in grids:
                grid_arrays[k][i] = bx.grid_mask(mask, k)
        filled.flush()
        del filled
    for k in grids:
        with io.atomic_path(layout.grid(k), suffix=".npy") as tmp, open(tmp, "wb") as fh:
            np.save(fh, grid_arrays[k])
    table = pa.Table.from_pylist(rows, schema=_plain(schemas.BOXES))
    io.write_table(layout.boxes, table, schemas.BOXES)
    # Provenance last: its presence with matching fingerprints means every output above is complete.
    provenance.write(layout.provenance(STAGE), STAGE, settings, inputs)
    result.n_with_boxes = len(area_fracs)
    result.n_boxes = len(rows)
    result.mean_area_fraction = float(np.mean(area_fracs)) if area_fracs else 0.0
    return result


def _mask_for(
    image_id: str,
    index: int,
    rles: dict[str, tuple[int, int, str]] | None,
    train_masks: np.ndarray,
    height: int,
    width: int,
    rle_path: Path,
) -> tuple[np.ndarray, tuple[int, int]]:
    """The image's mask at the best resolution available and the (height, width) it is at."""
    if rles is None:
        mask = np.asarray(train_masks[index])
        return mask, mask.shape
    if image_id not in rles:
        raise ArtefactError(f"{rle_path}: no mask for image {image_id!r}, which the manifest says has one; re-run the ingest")
    h, w, text = rles[image_id]
    if (h, w) != (height, width):
        raise ArtefactError(f"{rle_path}: {image_id!r} is {h}x{w} there but {height}x{width} in the manifest; re-run the ingest")
    return rle.decode(text, h, w), (h, w)


def _row(image_id: str, index: int, box: bx.Box, train: bx.Box) -> dict[str, int | str]:
    return {
        "image_id": image_id,
        "box_index": index,
        "x0": box[0],
        "y0": box[1],
        "x1": box[2],
        "y1": box[3],
        "train_x0": train[0],
        "train_y0": train[1],
        "train_x1": train[2],
        "train_y1": train[3],
        "area": bx.box_area(box),
    }


def _plain(schema: pa.Schema) -> pa.Schema:
    return pa.schema(list(schema))
