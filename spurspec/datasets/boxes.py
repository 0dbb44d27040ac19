"""`derive-boxes`: reads a dataset directory's masks (full-resolution RLE in mask_rle.parquet,
else the training-size masks.npy) and writes boxes.parquet, box_masks.npy (filled boxes at
training size) and grids/grid{k}.npy (coarse k x k masks), with provenance."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa

from spurspec.artefacts import freshness, io, locks, provenance, schemas
from spurspec.artefacts.dataset import Dataset
from spurspec.config import to_dict
from spurspec.errors import ArtefactError, ConfigError
from spurspec.imaging import boxes as bx
from spurspec.imaging import rle

STAGE = "derive-boxes"
WHAT = "boxes and grids"  # what the stage's messages call its outputs
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


def check(cfg: DeriveBoxesConfig) -> None:
    """Refuse settings the stage cannot use (ConfigError), whoever calls it: CLI, pipeline or
    training. The grids' upper bound, the dataset's training size, is checked once it is open."""
    if cfg.mode not in MODES:
        raise ConfigError(f"unknown box mode {cfg.mode!r}; valid: {', '.join(MODES)}")
    if cfg.margin < 0:
        raise ConfigError(f"margin must be >= 0 pixels, got {cfg.margin}")
    _check_grids(cfg.grids, None)


def _check_grids(grids: tuple[int, ...], size: int | None) -> None:
    bad = [k for k in grids if k < 1 or (size is not None and k > size)]
    if bad:
        bound = f"the training size {size}" if size is not None else "the dataset's training size"
        raise ConfigError(f"grid sizes must be between 1 and {bound}; got {bad}")


def describe(result: DeriveBoxesResult, cfg: DeriveBoxesConfig) -> list[str]:
    """The lines a user reads about a derive-boxes result, wherever the stage was run from."""
    if result.up_to_date:
        return [freshness.up_to_date(result.dataset, WHAT)]
    return [
        *(f"note: {note}" for note in result.notes),
        f"{result.dataset}: {result.n_with_boxes} of {result.n_images} images have boxes "
        f"({result.n_boxes} boxes, mode {cfg.mode}, margin {cfg.margin}px)",
        f"mean box area at training size: {result.mean_area_fraction:.1%} of the image",
        f"grids written: {', '.join(f'{k}x{k}' for k in result.grids)}",
    ]


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
    check(cfg)
    ds = Dataset.open(cfg.dataset)
    _check_grids(cfg.grids, ds.size)
    # The dataset directory's lock, the one ingest takes: one writer at a time, whoever runs it.
    with locks.hold(cfg.dataset, STAGE):
        return _derive(cfg, ds, force)


def _derive(cfg: DeriveBoxesConfig, ds: Dataset, force: bool) -> DeriveBoxesResult:
    grids = tuple(sorted(set(cfg.grids)))
    settings = {**to_dict(cfg), "grids": list(grids)}
    layout = ds.layout
    inputs = {
        "manifest": ds.fingerprint(),
        "mask_rle": provenance.file_digest(layout.mask_rle) if layout.mask_rle.exists() else "absent",
    }
    result = DeriveBoxesResult(dataset=Path(cfg.dataset), up_to_date=False, n_images=ds.manifest.num_rows,
                               grids=list(grids))
    if not force and _outputs_exist(ds, grids):
        # The dataset directory is where the output lives, not a setting: a moved dataset stays fresh.
        state = freshness.check(layout.provenance(STAGE), settings, inputs, where=cfg.dataset, what=WHAT,
                                paths={"manifest": layout.manifest, "mask_rle": layout.mask_rle}, locations=("dataset",))
        if state.fresh:
            result.up_to_date = True
            return result
        if state.stale:  # derived data, redone without --force: say what changed
            result.notes.append(state.redone)
    rows, area_fracs = _write_boxes(cfg, ds, grids, result)
    io.write_table(layout.boxes, pa.Table.from_pylist(rows, schema=_plain(schemas.BOXES)), schemas.BOXES)
    # Provenance last: its presence with matching fingerprints means every output above is complete.
    provenance.write(layout.provenance(STAGE), STAGE, settings, inputs)
    result.n_with_boxes = len(area_fracs)
    result.n_boxes = len(rows)
    result.mean_area_fraction = float(np.mean(area_fracs)) if area_fracs else 0.0
    return result


def _write_boxes(cfg: DeriveBoxesConfig, ds: Dataset, grids: tuple[int, ...],
                 result: DeriveBoxesResult) -> tuple[list[dict[str, int | str]], list[float]]:
    """Write box_masks.npy and the grids; return the boxes table's rows and each filled box
    mask's area fraction."""
    size, n, layout = ds.size, ds.manifest.num_rows, ds.layout
    rles = _load_rle(ds)
    if rles is None:
        result.notes.append(
            f"{layout.mask_rle.name} absent: boxes and grids come from the {size}x{size} training masks "
            "(original-pixel boxes are scaled back, so they are only as exact as that resolution)"
        )
    man = ds.manifest.select(["image_id", "has_mask", "orig_height", "orig_width"]).to_pydict()
    train_masks = ds.masks()
    rows: list[dict[str, int | str]] = []
    area_fracs: list[float] = []
    grid_arrays = {k: np.zeros((n, k, k), dtype=np.uint8) for k in grids}
    with io.atomic_path(layout.box_masks, suffix=".npy") as tmp, io.RowFile(tmp, np.uint8, (n, size, size)) as filled:
        for i in np.flatnonzero(man["has_mask"]):
            image_id, height, width = man["image_id"][i], int(man["orig_height"][i]), int(man["orig_width"][i])
            mask, mask_scale = _mask_for(image_id, i, rles, train_masks, height, width, layout.mask_rle)
            found = bx.component_boxes(mask) if cfg.mode == "components" else [b for b in [bx.union_box(mask)] if b]
            if mask_scale != (height, width):
                found = [bx.from_training(b, height, width, size) for b in found]
            boxes = [bx.with_margin(b, cfg.margin, height, width) for b in found]
            train_boxes = [bx.to_training(b, height, width, size) for b in boxes]
            rows += [_row(image_id, j, b, t) for j, (b, t) in enumerate(zip(boxes, train_boxes, strict=True))]
            if train_boxes:
                box_mask = bx.fill_boxes(train_boxes, size)
                filled.write(i, box_mask)
                area_fracs.append(float(box_mask.mean()))
            for k in grids:
                grid_arrays[k][i] = bx.grid_mask(mask, k)
    for k in grids:
        with io.atomic_path(layout.grid(k), suffix=".npy") as tmp, open(tmp, "wb") as fh:
            np.save(fh, grid_arrays[k])
    return rows, area_fracs


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
