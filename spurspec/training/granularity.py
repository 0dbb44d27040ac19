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


@dataclass(frozen=True)
class Granularity:
    name: str  # as given, e.g. "grid:8"
    pixel: bool  # trained with per-pixel targets (a decoder) rather than an image label
    source: str  # "label" | "masks" | "boxes" | "grid"
    grid: int = 0  # K for grid:K
    default_select: str = "auroc"  # the study: AUROC for binary and boxes, Dice for masks


GRANULARITIES: Registry[Callable[[str], Granularity]] = Registry("granularity")
GRANULARITIES.add("binary", lambda name: Granularity(name, False, "label"))
GRANULARITIES.add("bbox", lambda name: Granularity(name, True, "boxes"))
GRANULARITIES.add("seg", lambda name: Granularity(name, True, "masks", default_select="dice"))
GRANULARITIES.add("grid", lambda name: Granularity(name, True, "grid", grid=_grid_k(name)))


def _grid_k(name: str) -> int:
    _, _, arg = name.partition(":")
    try:
        k = int(arg)
    except ValueError:
        raise ConfigError(f"granularity {name!r}: expected grid:K with K a whole number, e.g. grid:8") from None
    if k < 1:
        raise ConfigError(f"granularity {name!r}: K must be at least 1")
    return k


def parse(name: str) -> Granularity:
    """'binary' | 'bbox' | 'seg' | 'grid:K' -> Granularity (errors list the valid names)."""
    base = name.split(":", 1)[0]
    if base != "grid" and ":" in name:
        raise ConfigError(f"granularity {name!r}: only grid takes a parameter (grid:K)")
    return GRANULARITIES.get(base)(name)


def names() -> list[str]:
    return [("grid:K" if n == "grid" else n) for n in GRANULARITIES.names()]


class Targets:
    """Per-row pixel targets (S, S) uint8 in {0, 1}, read lazily from memory-mapped arrays, so
    a 12,000-image dataset at 512 px costs no memory up front (workers open their own maps)."""

    def __init__(self, dataset: Dataset, gran: Granularity) -> None:
        self.root, self.gran, self.size = dataset.root, gran, dataset.size
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
        return t

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_array": None}  # workers re-open the memmap


def prepare(dataset: Dataset, gran: Granularity, box_mode: str, say: Callable[[str], None]) -> Targets | None:
    """Check the dataset supports `gran` and make sure its target files exist; None for binary."""
    if not gran.pixel:
        return None
    has_mask = np.asarray(dataset.manifest.column("has_mask").to_numpy(zero_copy_only=False), dtype=bool)
    labels = np.asarray(dataset.manifest.column("label").to_numpy(zero_copy_only=False))
    if not (has_mask & (labels == 1)).any():
        raise InputError(
            f"{dataset.layout.manifest}: no positive image has a mask, so granularity {gran.name} "
            "cannot train; use --granularity binary or ingest masks"
        )
    if gran.source in ("boxes", "grid"):
        _ensure_boxes(dataset, gran, box_mode, say)
    return Targets(dataset, gran)


def _ensure_boxes(dataset: Dataset, gran: Granularity, box_mode: str, say: Callable[[str], None]) -> None:
    from spurspec import boxes

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
    grids = set(recorded.get("grids", [])) if recorded else set(boxes.DeriveBoxesConfig().grids)
    if gran.grid:
        grids.add(gran.grid)
    if gran.grid > dataset.size:
        raise ConfigError(f"granularity {gran.name}: K must be at most the training size {dataset.size}")
    say(f"{need.name} not found in {dataset.root}: deriving boxes and grids now (mode {mode}, grids {sorted(grids)})")
    try:
        boxes.derive_boxes(
            boxes.DeriveBoxesConfig(dataset=dataset.root, mode=mode, margin=margin, grids=tuple(sorted(grids))),
            force=True,
        )
    except OSError as exc:
        raise ArtefactError(f"{dataset.root}: could not derive boxes ({exc}); run `{command}`") from None
