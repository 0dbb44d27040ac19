"""The report's example images: one test image of each robust cell (a positive without the
spurious feature, a negative with it), so a reader sees the data before reading any number.
Reads the dataset directory (manifest.parquet, images.npy, masks.npy, and spurious_masks.npy
where ingest stored the feature's region, as synthetic data does); writes one small PNG, drawn
with matplotlib's Agg backend."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from spurspec.artefacts import io  # noqa: E402
from spurspec.artefacts.dataset import Dataset, check_npy  # noqa: E402
from spurspec.errors import SpurspecError  # noqa: E402
from spurspec.metrics.cells import CELL_WORDS, ROBUST_CELLS  # noqa: E402
from spurspec.report.figures import outlines  # noqa: E402


@dataclass
class Example:
    title: str  # the cell, singular: "positive without chest_tube"
    image_id: str
    image: np.ndarray  # (S, S) grey or (S, S, 3) colour, uint8
    abnormality: np.ndarray  # (S, S) {0, 1}: the abnormality's mask (empty for negatives)
    feature: np.ndarray | None  # (S, S) {0, 1}: the spurious region, where the dataset stores it


def pick(dataset: Path, attribute: str) -> tuple[list[Example], list[str]]:
    """The first test image (manifest order) of each robust cell of `attribute`, and notes on
    what could not be shown; no examples when the dataset cannot be opened or lacks the column."""
    try:
        ds = Dataset.open(dataset)
    except SpurspecError as exc:
        return [], [f"no example images: {exc}"]
    man = ds.manifest
    if attribute not in man.column_names:
        return [], [f"no example images: {dataset} has no {attribute} column"]
    split = np.asarray(man.column("split").to_pylist())
    label = np.asarray(man.column("label").to_pylist())
    attr = np.asarray(man.column(attribute).fill_null(-1).to_pylist())
    regions, notes = _feature_masks(ds, attribute)
    images, masks, ids = ds.images(), ds.masks(), man.column("image_id").to_pylist()
    found = []
    for cell in ROBUST_CELLS:
        rows = np.flatnonzero((split == "test") & (label == cell[0]) & (attr == cell[1]))
        if not len(rows):
            continue
        k = int(rows[0])
        noun, rest = CELL_WORDS[cell]
        found.append(Example(f"{noun} {rest.format(a=attribute)}", ids[k], _pixels(images[k]),
                             np.asarray(masks[k]), None if regions is None else np.asarray(regions[k])))
    return found, notes


def _pixels(image: np.ndarray) -> np.ndarray:
    """(C, S, S) -> what imshow draws: (S, S) for one channel, (S, S, 3) for colour."""
    image = np.asarray(image)
    return image[0] if image.shape[0] == 1 else np.transpose(image[:3], (1, 2, 0))


def _feature_masks(ds: Dataset, attribute: str) -> tuple[np.ndarray | None, list[str]]:
    """The stored spurious regions when they are `attribute`'s (dataset.json's spurious_region)."""
    region = ds.info.get("spurious_region")
    if not isinstance(region, dict) or region.get("attribute") != attribute:
        return None, []
    path = ds.layout.spurious_masks
    try:
        check_npy(path, "spurious masks", (ds.manifest.num_rows, ds.size, ds.size))
    except SpurspecError as exc:
        return None, [f"example images drawn without the {attribute} region: {exc}"]
    return np.load(path, mmap_mode="r"), []


def draw(path: Path, examples: list[Example]) -> None:
    """One small panel per example: the image, the abnormality outlined in cyan and the spurious
    region in dashed magenta around it, the cell and image id above (11 pt, readable at any width)."""
    fig, axes = plt.subplots(1, len(examples), figsize=(2.7 * len(examples), 3.0), squeeze=False)
    for ax, ex in zip(axes[0], examples, strict=True):
        grey = ex.image.ndim == 2
        ax.imshow(ex.image, cmap="gray" if grey else None, vmin=0, vmax=255, interpolation="nearest")
        outlines(ax, ex.abnormality, ex.feature)  # as the maps outline them, in the same colours
        ax.set_title(f"{ex.title}\n{ex.image_id}", fontsize=11)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.tight_layout()
    with io.atomic_path(path, suffix=".png") as tmp:  # as figures.py saves: no version string, same bytes
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight", metadata={"Software": None})
    plt.close(fig)
