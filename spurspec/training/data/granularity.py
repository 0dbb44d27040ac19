"""Granularities of spatial specificity: what a training image's target is. `binary` (image label),
`bbox` (filled boxes from DatasetLayout.box_masks), `seg` (masks.npy) and `grid:K` (k x k coarse
masks from DatasetLayout.grid(K), upsampled nearest to S x S). Reads the dataset directory; runs
`derive_boxes` when boxes or grids are missing (and says so)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from spurspec.artefacts import io
from spurspec.artefacts.dataset import Dataset
from spurspec.artefacts.layout import DatasetLayout
from spurspec.errors import ArtefactError, ConfigError, InputError
from spurspec.registry import Registry
from spurspec.training.models.heads import dataset_classes, target_classes


@dataclass(frozen=True)
class Granularity:
    """One level of spatial specificity. Everything a stage asks about a granularity (does it
    train pixels, does it need boxes, where it sorts, its r) is asked of this object."""

    name: str  # as given, e.g. "grid:8"
    pixel: bool  # trained with per-pixel targets (a decoder) rather than an image label
    source: str  # "label" | "masks" | "boxes" | "grid"
    grid: int = 0  # K for grid:K
    default_select: str = "auroc"  # the study: AUROC for binary and boxes, Dice for masks and grids

    @property
    def needs_boxes(self) -> bool:
        """Its targets come from `derive-boxes` (boxes or coarse grids), not from ingest."""
        return self.source in ("boxes", "grid")

    def specificity(self, size: int) -> int | None:
        """The study's r, the number of regions a target distinguishes: 1 for an image label,
        K*K for grid:K, every pixel for masks; None for boxes (their r varies per image)."""
        return {"label": 1, "grid": self.grid * self.grid, "masks": size * size}.get(self.source)

    @property
    def order(self) -> tuple[int, int]:
        """Display order of increasing specificity: binary < bbox < grid:K (by K) < seg."""
        return {"label": (0, 0), "boxes": (1, 0), "grid": (2, self.grid), "masks": (3, 0)}[self.source]


GRANULARITIES: Registry[Callable[[str | None], Granularity]] = Registry("granularity")
GRANULARITIES.add("binary", lambda arg: Granularity("binary", False, "label"))
GRANULARITIES.add("bbox", lambda arg: Granularity("bbox", True, "boxes"))
GRANULARITIES.add("seg", lambda arg: Granularity("seg", True, "masks", default_select="dice"))
# Coarse masks select on Dice, as the study's max-pooled masks did.
GRANULARITIES.add("grid", lambda arg: Granularity(f"grid:{arg}", True, "grid", grid=_grid_k(arg), default_select="dice"),
                  param="K")


def _grid_k(arg: str | None) -> int:
    try:
        k = int(str(arg))
    except ValueError:
        raise ConfigError(f"granularity grid:{arg}: expected grid:K with K a whole number, e.g. grid:8") from None
    if k < 1:
        raise ConfigError(f"granularity grid:{arg}: K must be at least 1")
    return k


def parse(name: str) -> Granularity:
    """'binary' | 'bbox' | 'seg' | 'grid:K' -> Granularity (errors list the valid names)."""
    base, arg = GRANULARITIES.split(name)
    return GRANULARITIES.get(base)(arg)


def names() -> list[str]:
    """The choices as the CLI lists them."""
    return GRANULARITIES.choices()


def is_pixel(name: str) -> bool:
    """Whether a granularity name trains a pixel model; False for a name that is no granularity
    (an audited outside model's `audit:NAME`, which has one image score)."""
    try:
        return parse(name).pixel
    except ConfigError:
        return False


def sort_key(name: str) -> tuple:
    """Sort key of a granularity name (unknown names last, by name)."""
    try:
        return (*parse(name).order, name)
    except ConfigError:
        return (9, 0, name)


class Targets:
    """Per-row pixel targets (S, S) uint8 class maps (heads.target_classes: 0 background, the last
    class for a positive image's region), read lazily from memory-mapped arrays, so a
    12,000-image dataset at 512 px costs no memory up front (workers open their own maps)."""

    def __init__(self, dataset: Dataset, gran: Granularity, classes: int = 2) -> None:
        self.root, self.gran, self.size, self.classes = dataset.root, gran, dataset.size, classes
        self.labels = np.asarray(dataset.manifest.column("label").to_numpy(zero_copy_only=False)).astype(np.int64)
        self._array: np.ndarray | None = None
        # Nearest-neighbour upsampling of a k x k grid to S x S: pixel i belongs to cell i*k//S.
        self._cells = (np.arange(self.size) * max(gran.grid, 1)) // self.size

    def _path(self) -> Path:
        layout = DatasetLayout(self.root)
        return {"masks": layout.masks, "boxes": layout.box_masks, "grid": layout.grid(self.gran.grid)}[self.gran.source]

    def __call__(self, row: int) -> np.ndarray:
        if self._array is None:
            self._array = np.load(self._path(), mmap_mode="r")
        t = np.asarray(self._array[row])
        if self.gran.source == "grid":
            t = t[self._cells][:, self._cells]
        return target_classes(t, int(self.labels[row]), self.classes)

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_array": None}  # workers re-open the memmap


def prepare(dataset: Dataset, gran: Granularity, box_mode: str, say: Callable[[str], None],
            head: str = "auto") -> Targets | None:
    """Check the dataset supports `gran` and make sure its target files exist; None for binary.
    `head` (heads.HEADS) decides whether negatives' regions are a class of their own."""
    if not gran.pixel:
        return None
    has_mask = np.asarray(dataset.manifest.column("has_mask").to_numpy(zero_copy_only=False), dtype=bool)
    labels = np.asarray(dataset.manifest.column("label").to_numpy(zero_copy_only=False))
    if not (has_mask & (labels == 1)).any():
        raise InputError(
            f"{dataset.layout.manifest}: no positive image has a mask, so granularity {gran.name} "
            "cannot train; use --granularity binary or ingest masks"
        )
    if gran.needs_boxes:
        _ensure_boxes(dataset, gran, box_mode, say)
    targets = Targets(dataset, gran, dataset_classes(head, dataset))
    dataset.check_rows(targets._path(), f"{gran.source} target")  # whole, before any epoch reads it
    return targets


def _ensure_boxes(dataset: Dataset, gran: Granularity, box_mode: str, say: Callable[[str], None]) -> None:
    """Derive the boxes or grid `gran` trains on when the dataset lacks them, through the
    derive-boxes stage itself (its checks, provenance and report lines), keeping the mode and
    margin recorded there and adding this run's grid."""
    from spurspec.datasets import boxes

    layout = dataset.layout
    prov_path = layout.provenance(boxes.STAGE)
    recorded = io.read_json(prov_path).get("settings", {}) if prov_path.exists() else None
    have_boxes = layout.box_masks.exists() and recorded is not None
    need = layout.grid(gran.grid) if gran.source == "grid" else layout.box_masks
    command = f"spurspec derive-boxes {dataset.root} --mode {box_mode} --force"
    if gran.source == "boxes" and have_boxes and recorded.get("mode") != box_mode:
        raise ArtefactError(
            f"{layout.box_masks}: boxes were derived with mode {recorded.get('mode')!r}, this run asks "
            f"for {box_mode!r}; re-derive them with `{command}` (or pass --box-mode {recorded.get('mode')})"
        )
    if need.exists() and have_boxes:
        return
    mode = recorded.get("mode", box_mode) if recorded else box_mode
    margin = int(recorded.get("margin", 0)) if recorded else 0
    # The default grids that fit the dataset (a 16-pixel dataset has no 32 x 32 grid), unless
    # boxes were derived before: then the grids recorded there.
    default_grids = {k for k in boxes.DeriveBoxesConfig().grids if k <= dataset.size}
    grids = set(recorded.get("grids", [])) if recorded else default_grids
    if gran.grid:
        grids.add(gran.grid)
    cfg = boxes.DeriveBoxesConfig(dataset=dataset.root, mode=mode, margin=margin, grids=tuple(sorted(grids)))
    say(f"{need.name} not found in {dataset.root}: deriving boxes and grids now, as `spurspec derive-boxes` would")
    try:
        result = boxes.derive_boxes(cfg, force=True)
    except OSError as exc:
        raise ArtefactError(f"{dataset.root}: could not derive boxes ({exc}); run `{command}`") from None
    for line in boxes.describe(result, cfg):
        say(f"derive-boxes (run by train, written into the dataset): {line}")
