"""Spurious features painted into an image for `spurspec probe --insert`, and where they go.

A feature draws one instance of itself from a seeded generator: the pixels it changes (`region`)
and how it changes them (`paint`, on float grey levels (C, S, S)). Built in:
  tube      a chest tube. On a synthetic dataset, the data model's own stroke (its width and
            brightness from dataset.json), so a run is probed with the feature it learned. On
            other images a curved hollow tube (bright walls, a fainter lumen: the projected
            thickness of a plastic cylinder about 2.7% of the film wide) that enters at the
            lateral chest wall in the lower zone, runs up along it and turns toward the apex.
  vignette  dark corners: the round field of view of a dermatoscope, darkened outside a circle.
  ink       one to three short curved marker strokes (purple on colour images, dark on grey).
  overlay   any RGBA PNG a user supplies (`--insert FILE.png`), alpha-composited.
Placement: `random` (a fresh draw per image), `fixed` (one draw, the same for every image) or
`away` (fresh draws until one keeps `margin` pixels clear of the abnormality mask; an image with
no room is left out and counted). Reads an overlay file (read_overlay); writes nothing."""

from __future__ import annotations

import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage
from scipy.spatial import cKDTree

from spurspec.errors import ConfigError, InputError
from spurspec.registry import Registry

PLACEMENTS = ("random", "fixed", "away")
# Draws per image before `away` gives up on an image (the data model places its stroke the same way).
AWAY_TRIES = 200
# A chest tube's outer diameter as a share of the film's width (28-32 Fr on a 35-43 cm film), the
# inner diameter as a share of the outer, and the brightness of its walls in grey levels.
CHEST_TUBE_WIDTH = 0.027
CHEST_TUBE_LUMEN = 0.65
CHEST_TUBE_CONTRAST = 70.0
# ITU-R 601 luma, for colour overlays and ink on grey images (as spurspec.imaging.readers).
_LUMA = np.array([0.299, 0.587, 0.114])


@dataclass(frozen=True)
class Painted:
    """One drawn instance of a feature."""

    region: np.ndarray  # bool (S, S): the pixels it changes
    paint: Callable[[np.ndarray], np.ndarray]  # float (C, S, S) grey levels -> the same, painted


@dataclass(frozen=True)
class Context:
    """What a feature needs to know about the images it is painted into."""

    size: int
    channels: int
    synthetic: dict[str, Any] | None = None  # dataset.json's spurious_region of a synthetic dataset
    overlay: np.ndarray | None = None  # float (h, w, 4) RGBA in [0, 1], at its painted size


Feature = Callable[[np.random.Generator, Context], Painted]
FEATURES: Registry[Feature] = Registry("probe feature")


def parse(text: str) -> tuple[str, Path | None]:
    """A built-in feature's name, or ('overlay', path) for a .png file."""
    if text in FEATURES and text != "overlay":
        return text, None
    if text.lower().endswith(".png"):
        return "overlay", Path(text)
    names = [n for n in FEATURES.names() if n != "overlay"]
    raise ConfigError(f"feature {text!r}: use one of {', '.join(names)}, or an RGBA overlay FILE.png")


def probe_name(text: str, placement: str) -> str:
    """The name of an insertion probe (its table's file name): insert-tube-away,
    insert-overlay-<file stem>-<crc of the path>-random, ..."""
    name, path = parse(text)
    if path is None:
        return f"insert-{name}-{placement}"
    stem = "".join(c if c.isalnum() or c in "-_" else "_" for c in path.stem)[:40]
    return f"insert-overlay-{stem}-{zlib.crc32(str(path).encode()):08x}-{placement}"


def insert(image: np.ndarray, abnormality: np.ndarray, feature: Feature, ctx: Context, placement: str,
           rng: np.random.Generator, fixed_rng: Callable[[], np.random.Generator],
           margin: int) -> tuple[np.ndarray, np.ndarray] | None:
    """`image` (C, S, S) uint8 with the feature painted in, and the region it changed; None when
    `away` finds no room beside the abnormality (`abnormality`: bool (S, S))."""
    if placement == "fixed":
        drawn = feature(fixed_rng(), ctx)
    elif placement == "random":
        drawn = feature(rng, ctx)
    elif placement == "away":
        keep_out = ndimage.binary_dilation(abnormality, iterations=margin) if margin else abnormality.astype(bool)
        for _ in range(AWAY_TRIES):
            drawn = feature(rng, ctx)
            if not (drawn.region & keep_out).any():
                break
        else:
            return None
    else:
        raise ConfigError(f"placement {placement!r}: use one of {', '.join(PLACEMENTS)}")
    painted = drawn.paint(np.asarray(image, dtype=np.float64))
    return np.clip(np.round(painted), 0, 255).astype(np.uint8), drawn.region


def curve(points: np.ndarray, n: int) -> np.ndarray:
    """(n, 2) points along the quadratic Bezier curve through control points (3, 2)."""
    t = np.linspace(0.0, 1.0, max(n, 2))[:, None]
    p0, p1, p2 = points
    return (1 - t) ** 2 * p0 + 2 * (1 - t) * t * p1 + t**2 * p2


def distance_to(path: np.ndarray, size: int, reach: float) -> tuple[np.ndarray, np.ndarray]:
    """Pixels within `reach` of a densely sampled path (n, 2) of (row, col) points: their flat
    indices and their distance to it. Only pixels near the path are measured (a k-d tree over the
    path), so a long tube on a large image costs what its neighbourhood costs."""
    inside = path[(path >= -reach).all(1) & (path <= size - 1 + reach).all(1)]
    if len(inside) == 0:
        return np.zeros(0, np.int64), np.zeros(0)
    near = np.zeros((size, size), dtype=bool)
    ij = np.clip(np.round(inside).astype(int), 0, size - 1)
    near[ij[:, 0], ij[:, 1]] = True
    near = ndimage.binary_dilation(near, iterations=int(np.ceil(reach)) + 1)
    flat = np.flatnonzero(near)
    d, _ = cKDTree(path).query(np.stack(np.unravel_index(flat, near.shape), axis=1).astype(np.float64))
    keep = d <= reach
    return flat[keep], d[keep]


def _add(amount: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
    """Paint by adding grey levels (S, S) to every channel: X-ray attenuation, or a bright stroke."""
    return lambda img: img + amount[None]


def _composite(alpha: np.ndarray, colour: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
    """Paint by alpha-compositing `colour` (C, S, S) grey levels with opacity `alpha` (S, S)."""
    return lambda img: img * (1 - alpha[None]) + colour * alpha[None]


def _colour(rgb: np.ndarray, channels: int) -> np.ndarray:
    """An RGB colour (3,) or image (3, S, S) as the dataset's channels: luma for grey images."""
    return rgb if channels == 3 else np.tensordot(_LUMA, rgb, axes=1)[None]


@FEATURES.register("tube")
def tube(rng: np.random.Generator, ctx: Context) -> Painted:
    if ctx.synthetic is not None:
        return _synthetic_tube(rng, ctx)
    return chest_tube(rng, ctx.size)


def _synthetic_tube(rng: np.random.Generator, ctx: Context) -> Painted:
    """The data model's stroke (spurspec.datasets.synthetic), at a uniform position."""
    from spurspec.datamodel import paste
    from spurspec.datasets.synthetic import paint_tube, tube_footprint

    footprint = tube_footprint(rng, ctx.size, float(ctx.synthetic["tube_width"]))
    h, w = footprint.shape
    pos = (int(rng.integers(0, ctx.size - h + 1)), int(rng.integers(0, ctx.size - w + 1)))
    amount = np.zeros((ctx.size, ctx.size))
    paint_tube(amount, paste(ctx.size, footprint, pos), float(ctx.synthetic["tube_brightness"]))
    return Painted(amount >= 0.5, _add(amount))


def chest_tube(rng: np.random.Generator, size: int, width: float = CHEST_TUBE_WIDTH,
               contrast: float = CHEST_TUBE_CONTRAST) -> Painted:
    """A chest tube on a frontal film: from the lateral chest wall (lower zone, entering at the
    edge) up along the wall and medially toward the apex, on either side. Its brightness at
    distance d from the axis is the projected wall thickness of a hollow cylinder, so its walls
    are brighter than its lumen, as on a radiograph."""
    start = (rng.uniform(0.58, 0.75), rng.uniform(-0.03, 0.05))  # (row, col) as shares of the side
    bend = (rng.uniform(0.25, 0.40), rng.uniform(0.03, 0.14))
    apex = (rng.uniform(0.10, 0.22), rng.uniform(0.22, 0.38))
    points = np.array([start, bend, apex])
    if rng.random() < 0.5:  # the left hemithorax: the image's right side
        points[:, 1] = 1.0 - points[:, 1]
    path = curve(points * (size - 1), int(8 * size))
    outer = max(1.0, width * size / 2)
    inner = CHEST_TUBE_LUMEN * outer
    flat, d = distance_to(path, size, outer)
    wall = 2 * (np.sqrt(np.maximum(outer**2 - d**2, 0)) - np.sqrt(np.maximum(inner**2 - d**2, 0)))
    amount = np.zeros(size * size)
    amount[flat] = contrast * wall / (2 * np.sqrt(outer**2 - inner**2))
    amount = ndimage.gaussian_filter(amount.reshape(size, size), 0.5)
    return Painted(amount >= 0.5, _add(amount))


@FEATURES.register("vignette")
def vignette(rng: np.random.Generator, ctx: Context) -> Painted:
    """Dark corners: grey levels scaled down outside a circle (a dermatoscope's field of view)
    of radius 50-62% of the side, by 85-95% at the darkest, over a smooth edge 4-10% wide."""
    size = ctx.size
    radius = rng.uniform(0.50, 0.62) * size
    centre = size / 2 - 0.5 + rng.uniform(-0.05, 0.05, size=2) * size
    edge = rng.uniform(0.04, 0.10) * size
    yy, xx = np.mgrid[0:size, 0:size]
    ramp = np.clip((np.hypot(yy - centre[0], xx - centre[1]) - radius) / edge + 0.5, 0, 1)
    dark = rng.uniform(0.85, 0.95) * ramp * ramp * (3 - 2 * ramp)  # smoothstep: exactly 0 inside
    return Painted(dark > 0, lambda img: img * (1 - dark[None]))


@FEATURES.register("ink")
def ink(rng: np.random.Generator, ctx: Context) -> Painted:
    """One to three curved marker strokes, each 15-35% of the side long and about 1-2% wide."""
    size = ctx.size
    alpha = np.zeros(size * size)
    for _ in range(int(rng.integers(1, 4))):
        length = rng.uniform(0.15, 0.35) * size
        start = rng.uniform(0, size - 1, size=2)
        angle = rng.uniform(0, 2 * np.pi)
        end = start + length * np.array([np.sin(angle), np.cos(angle)])
        normal = np.array([np.cos(angle), -np.sin(angle)])
        bend = (start + end) / 2 + normal * rng.uniform(-0.3, 0.3) * length
        half = max(0.5, rng.uniform(0.004, 0.008) * size)
        flat, d = distance_to(curve(np.array([start, bend, end]), int(4 * length) + 2), size, half + 1)
        alpha[flat] = np.maximum(alpha[flat], 0.85 * np.clip(half + 0.5 - d, 0, 1))
    alpha = alpha.reshape(size, size)
    rgb = np.array([rng.uniform(90, 130), rng.uniform(30, 60), rng.uniform(120, 170)])
    colour = _colour(rgb, ctx.channels)[:, None, None] * np.ones((1, size, size))
    return Painted(alpha > 0, _composite(alpha, colour))


@FEATURES.register("overlay")
def overlay(rng: np.random.Generator, ctx: Context) -> Painted:
    """The user's RGBA overlay at a uniform position where it fits."""
    if ctx.overlay is None:
        raise ConfigError("the overlay feature needs an overlay file: --insert FILE.png")
    h, w = ctx.overlay.shape[:2]
    top, left = int(rng.integers(0, ctx.size - h + 1)), int(rng.integers(0, ctx.size - w + 1))
    alpha = np.zeros((ctx.size, ctx.size))
    alpha[top:top + h, left:left + w] = ctx.overlay[..., 3]
    rgb = np.zeros((3, ctx.size, ctx.size))
    rgb[:, top:top + h, left:left + w] = np.moveaxis(ctx.overlay[..., :3], -1, 0) * 255.0
    return Painted(alpha > 0, _composite(alpha, _colour(rgb, ctx.channels)))


def read_overlay(path: Path, size: int, scale: float) -> np.ndarray:
    """An RGBA overlay as float (h, w, 4) in [0, 1], resized so its longer side is `scale` of the
    image side. Read with Pillow under ingest's pixel limit (spurspec.imaging.readers), header
    first; an overlay without transparency, or fully transparent, is refused (exit 2)."""
    from PIL import Image

    from spurspec.imaging.readers import open_pillow

    with open_pillow(Path(path), "overlay") as img:
        if img.mode not in ("RGBA", "LA", "PA") and not (img.mode in ("P", "L", "RGB") and "transparency" in img.info):
            raise InputError(f"{path}: overlay has no alpha channel (mode {img.mode}); save it as an RGBA PNG whose "
                             "transparent pixels leave the image unchanged")
        rgba = img.convert("RGBA")
    longer = max(1, round(scale * size))
    factor = longer / max(rgba.size)
    target = (max(1, round(rgba.size[0] * factor)), max(1, round(rgba.size[1] * factor)))
    out = np.asarray(rgba.resize(target, Image.Resampling.BILINEAR), dtype=np.float64) / 255.0
    if not (out[..., 3] > 0).any():
        raise InputError(f"{path}: overlay is fully transparent at {target[0]}x{target[1]} pixels; nothing to paint")
    return out
