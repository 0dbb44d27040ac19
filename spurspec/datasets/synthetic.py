"""`ingest synthetic`: images drawn from the study's data model (spurspec.datamodel) and written
as a dataset directory (manifest with a `chest_tube`-style attribute, images, masks = the
abnormal region Y, full-size RLE), so every later stage treats it like SIIM. Reads nothing.

Labels (y, s) follow P(s = y) = `correlation` in train and val and the reverse in test, so a
model that reads the spurious stroke S instead of the abnormality Y fails on test's robust cells.
The stroke's region is stored too (`spurious_masks.npy`, named in dataset.json's
`spurious_region` with its attribute and the stroke's rendering settings), so `spurspec probe`
can remove the feature where it is and paint it where it is not with the same renderer.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
from scipy import ndimage

from spurspec import config as configlib
from spurspec.artefacts import io
from spurspec.artefacts.dataset import DatasetWriter, up_to_date
from spurspec.artefacts.layout import DatasetLayout
from spurspec.artefacts.schemas import SPLITS, attribute_name_problem
from spurspec.datamodel import JointLabels, paste, place
from spurspec.datasets.common import (
    Decoded,
    IngestResult,
    Rejects,
    check_basics,
    count_table,
    decode_all,
    locked_ingest,
)
from spurspec.errors import ConfigError
from spurspec.imaging import rle


@dataclass(frozen=True)
class Config:
    out: Path = Path("data/synthetic")
    n: int = 2000  # enough for ~400 test images, small enough for CPU training in the demo
    size: int = 128  # generated size = training size (no resampling)
    # P(s = y) in train: 0.9 makes S a strong shortcut, as chest tubes are in SIIM.
    correlation: float = 0.9
    val_correlation: float | None = None  # None: as train, so model selection cannot see the shift
    test_correlation: float | None = None  # None: 1 - correlation (reversed), robust cells dominate
    prevalence: float = 0.5  # P(y = 1) in every split
    fractions: tuple[float, ...] = (0.6, 0.2, 0.2)  # train, val, test
    seed: int = 0
    spurious_name: str = "chest_tube"  # the attribute column, named like SIIM's by default
    lesion_radius: float = 0.14  # abnormal blob radius as a fraction of the image side
    # Y is darker by `lesion_contrast` grey levels with grain of std `lesion_texture`: visible to
    # a CNN locally, but smaller than the background's own smooth variation (about 25 levels).
    lesion_contrast: float = 14.0
    lesion_texture: float = 9.0
    tube_brightness: float = 80.0  # S is a bright stroke: the easy feature
    tube_width: float = 0.025  # stroke width as a fraction of the image side (at least 1.5 px)
    workers: int = 1  # output does not depend on it


# Settings that do not change the output bytes, left out of the up-to-date check.
_NOT_OUTPUT = ("out", "workers")


def joints(cfg: Config) -> dict[str, JointLabels]:
    """P(y, s) per split."""
    train = JointLabels.from_agreement(cfg.correlation, cfg.prevalence)
    val = JointLabels.from_agreement(cfg.val_correlation, cfg.prevalence) if cfg.val_correlation is not None else train
    test_c = cfg.test_correlation if cfg.test_correlation is not None else 1.0 - cfg.correlation
    return {"train": train, "val": val, "test": JointLabels.from_agreement(test_c, cfg.prevalence)}


def check(cfg: Config) -> None:
    """Refuse settings `ingest` cannot use (ConfigError), whoever calls it: CLI or pipeline."""
    if cfg.n < 8:
        raise ConfigError(f"n={cfg.n}: need at least 8 images")
    check_basics(cfg.size, cfg.seed, cfg.workers, min_size=32)
    if len(cfg.fractions) != 3 or min(cfg.fractions) < 0 or sum(cfg.fractions) <= 0:
        raise ConfigError(f"fractions={list(cfg.fractions)}: need three non-negative train, val, test shares")
    problem = attribute_name_problem(cfg.spurious_name)
    if problem is not None:
        raise ConfigError(f"spurious_name={cfg.spurious_name!r}: {problem}")
    if not 0.02 <= cfg.lesion_radius <= 0.3:
        raise ConfigError(f"lesion_radius={cfg.lesion_radius}: must be in [0.02, 0.3]")
    joints(cfg)  # each split's P(y, s) must exist: correlations and prevalence in [0, 1]


def plan(cfg: Config) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Split, y and s per image: exact split sizes and exact cell counts per split, shuffled."""
    rng = np.random.default_rng([cfg.seed, 0])
    frac = np.asarray(cfg.fractions, dtype=np.float64) / sum(cfg.fractions)
    sizes = JointLabels(0.0, frac[0], frac[1], frac[2]).exact_counts(cfg.n)[1:]
    split = np.repeat(np.arange(3), sizes)[rng.permutation(cfg.n)]
    y = np.zeros(cfg.n, dtype=np.int8)
    s = np.zeros(cfg.n, dtype=np.int8)
    for k, name in enumerate(SPLITS):
        idx = np.flatnonzero(split == k)
        y[idx], s[idx] = joints(cfg)[name].labels(rng, len(idx))
    return [SPLITS[k] for k in split], y, s


def _smooth(rng: np.random.Generator, size: int, sigma: float) -> np.ndarray:
    field = ndimage.gaussian_filter(rng.standard_normal((size, size)), sigma, mode="wrap")
    return field / (field.std() + 1e-12)


def lesion_footprint(rng: np.random.Generator, size: int, radius: float) -> np.ndarray:
    """An irregular blob: a disc whose radius wobbles with a few random angular harmonics."""
    rad = radius * size * rng.uniform(0.8, 1.2)
    half = int(np.ceil(rad * 1.4))
    yy, xx = np.mgrid[-half : half + 1, -half : half + 1]
    theta = np.arctan2(yy, xx)
    wobble = sum(rng.uniform(0, 0.12) * np.cos(k * theta + rng.uniform(0, 2 * np.pi)) for k in (2, 3, 4))
    fp = np.hypot(yy, xx) <= rad * (1 + wobble)
    rows, cols = np.flatnonzero(fp.any(1)), np.flatnonzero(fp.any(0))
    return fp[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]


def tube_footprint(rng: np.random.Generator, size: int, width: float) -> np.ndarray:
    """A tube-like stroke: a quadratic Bezier curve across a box of 35-60% of the image side."""
    side = int(size * rng.uniform(0.35, 0.6))
    p0 = np.array([0.0, rng.uniform(0, side - 1)])
    p2 = np.array([side - 1.0, rng.uniform(0, side - 1)])
    p1 = rng.uniform(0, side - 1, size=2)
    if rng.random() < 0.5:  # half run across, half run down
        p0, p1, p2 = p0[::-1], p1[::-1], p2[::-1]
    t = np.linspace(0, 1, 4 * side)[:, None]
    pts = (1 - t) ** 2 * p0 + 2 * (1 - t) * t * p1 + t**2 * p2
    line = np.zeros((side, side), dtype=bool)
    ij = np.clip(np.round(pts).astype(int), 0, side - 1)
    line[ij[:, 0], ij[:, 1]] = True
    radius = max(0.75, width * size / 2)
    return ndimage.distance_transform_edt(~line) <= radius


def paint_tube(img: np.ndarray, stroke: np.ndarray, brightness: float) -> None:
    """Add the bright stroke S (a boolean (size, size) region) to a float image, in place: the
    region `brightness` grey levels brighter, its edge softened by a 0.6-pixel blur."""
    img += brightness * ndimage.gaussian_filter(stroke.astype(np.float64), 0.6)


def render(cfg: Config, index: int, y: int, s: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Image (size, size) uint8, abnormal mask Y and spurious mask S (size, size) {0,1} of image
    `index`.

    Each image has its own seeded generator, so the bytes do not depend on order or workers.
    """
    size = cfg.size
    rng = np.random.default_rng([cfg.seed, 1, index])
    y_fp = lesion_footprint(rng, size, cfg.lesion_radius)
    # S is placed by a footprint two pixels wider than the stroke, so it never touches Y; a
    # stroke that finds no room beside this Y is redrawn (each image has its own shapes anyway).
    for attempt in range(50):
        tube = np.pad(tube_footprint(rng, size, cfg.tube_width), 2)
        try:
            scene = place(rng, size, y, s, y_fp, ndimage.binary_dilation(tube, iterations=2), max_tries=200)
            break
        except ConfigError:
            if attempt == 49:
                raise
    # Anatomy-like background: broad and mid-scale smooth structure, a darker rim, fine grain.
    yy, xx = np.mgrid[0:size, 0:size] / (size - 1) - 0.5
    img = 125 + 22 * _smooth(rng, size, size / 10) + 10 * _smooth(rng, size, size / 28)
    img -= 40 * (xx**2 + 0.5 * yy**2)
    img += 3.0 * rng.standard_normal((size, size))
    y_mask = paste(size, y_fp, scene.y_pos)
    if y:
        soft = ndimage.gaussian_filter(y_mask.astype(np.float64), 1.2)
        grain = ndimage.gaussian_filter(rng.standard_normal((size, size)), 0.7)
        grain /= grain.std()
        img += soft * (-cfg.lesion_contrast + cfg.lesion_texture * grain)
    stroke = paste(size, tube, scene.s_pos)
    if s:
        paint_tube(img, stroke, cfg.tube_brightness)
    return np.clip(np.round(img), 0, 255).astype(np.uint8), y_mask.astype(np.uint8), stroke.astype(np.uint8)


def _decode(payload: tuple[Config, int, int, int]) -> Decoded:
    cfg, index, y, s = payload
    image, mask, stroke = render(cfg, index, y, s)
    return Decoded(image=image[None], mask=mask, facts={"rle": rle.encode(mask), "spurious_rle": rle.encode(stroke)})


def image_id(index: int) -> str:
    return f"syn{index:06d}"


def settings(cfg: Config) -> dict[str, Any]:
    return {k: v for k, v in configlib.to_dict(cfg).items() if k not in _NOT_OUTPUT}


def ingest(cfg: Config, force: bool = False, progress: Callable[[int], None] | None = None) -> IngestResult:
    """Generate `cfg.n` images and write the dataset directory `cfg.out`."""
    check(cfg)
    return locked_ingest(cfg.out, lambda: _ingest(cfg, force, progress))


def _ingest(cfg: Config, force: bool, progress: Callable[[int], None] | None) -> IngestResult:
    joint = joints(cfg)
    recorded = settings(cfg)
    if up_to_date(cfg.out, "ingest", recorded, {}, force):
        if DatasetLayout(cfg.out).spurious_masks.exists():
            return IngestResult(cfg.out, 0, 0, True, [])
        # Made before spurious masks were stored: the same settings give the same bytes, so
        # rebuilding adds the masks without changing anything a run trained on.
        force = True
    split, y, s = plan(cfg)
    ids = [image_id(i) for i in range(cfg.n)]
    items = [(ids[i], (cfg, i, int(y[i]), int(s[i]))) for i in range(cfg.n)]
    with DatasetWriter(cfg.out, n=cfg.n, size=cfg.size, channels=1, force=force) as writer:
        _, facts = decode_all(items, _decode, writer, cfg.workers, Rejects(skip_bad=False), progress=progress)
        manifest = pa.table(
            {
                "image_id": ids,
                "patient_id": ids,
                "split": split,
                "label": pa.array(y, pa.int8()),
                cfg.spurious_name: pa.array(s, pa.int8()),
                "has_mask": [True] * cfg.n,
                "source": [f"synthetic:seed={cfg.seed}:index={i}" for i in range(cfg.n)],
                "orig_height": [cfg.size] * cfg.n,
                "orig_width": [cfg.size] * cfg.n,
            }
        )
        mask_rle = pa.table(
            {
                "image_id": ids,
                "height": [cfg.size] * cfg.n,
                "width": [cfg.size] * cfg.n,
                "rle": [facts[i]["rle"] for i in range(cfg.n)],
            }
        )
        _write_spurious_masks(writer.layout.spurious_masks, [facts[i]["spurious_rle"] for i in range(cfg.n)], cfg.size)
        info = {
            "name": "synthetic",
            "source": "synthetic",
            "joint_p_ys": {k: v.text for k, v in joint.items()},
            "spurious_region": spurious_region(cfg),
        }
        writer.finish(manifest, [cfg.spurious_name], info, recorded, {}, mask_rle=mask_rle)
    counts = count_table(manifest, [cfg.spurious_name])
    notes = ["P(y,s) as p00,p01,p10,p11: " + "; ".join(f"{k} {v.text}" for k, v in joint.items())]
    return IngestResult(cfg.out, cfg.n, 0, False, counts, notes)


def spurious_region(cfg: Config) -> dict[str, Any]:
    """dataset.json's record of the stored spurious masks: the file, the attribute whose region
    it holds (all zero where the attribute is 0), and the stroke's rendering settings."""
    return {"attribute": cfg.spurious_name, "masks": DatasetLayout(Path(".")).spurious_masks.name,
            "renderer": "synthetic-tube", "tube_width": cfg.tube_width, "tube_brightness": cfg.tube_brightness}


def _write_spurious_masks(path: Path, rles: list[str], size: int) -> None:
    """(N, size, size) uint8 {0, 1}, written row by row from the workers' RLE (memory stays flat)."""
    with io.RowFile(path, np.uint8, (len(rles), size, size)) as out:
        for i, text in enumerate(rles):
            out.write(i, rle.decode(text, size, size))
