"""Rows "augmentation" and "augmentation units": the study's chest-film augmentation
(albumentations, fact sheet "Augmentation"): HorizontalFlip p 0.5; OneOf(contrast ±0.2, gamma
80-120, brightness ±0.2) p 0.3; OneOf(elastic alpha 120 sigma 6, grid distortion 5 steps ±0.3,
optical distortion ±2 shift ±0.5) p 0.3; ShiftScaleRotate(shift ±0.0625 of the size, scale ±0.1,
rotate ±45°, reflect-101) p 0.5; all applied at 1024 px before the resize to 512, so alpha,
sigma and the optical shift are pixels of 1024.

spurspec augments at the training size. Under `--preset study` its recipe must draw those
probabilities and ranges, and its pixel-valued parameters must be the study's converted to the
size they are applied at, so a deformation is the same fraction of the image: lengths scale by
s = size / 1024 and elastic alpha by s² (albumentations' displacement is alpha times uniform
noise smoothed over sigma pixels, whose amplitude falls as 1 / sigma). The elastic field is
also measured: its RMS displacement as a fraction of the image, at 512 and 256 px through
spurspec's own resampling, against the study's field at 1024 computed here (scipy's
gaussian_filter, as albumentations computes it)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from spurspec.config import build
from spurspec.training.config import TrainConfig
from spurspec.training.data import augment

STUDY_SIZE = 1024  # the study warped at 1024 px
# The study's values, from the fact sheet: probabilities, then ranges, then pixels of 1024.
P_FLIP, P_INTENSITY, P_DISTORT, P_SSR = 0.5, 0.3, 0.3, 0.5
CONTRAST, GAMMA, BRIGHTNESS = 0.2, (0.8, 1.2), 0.2
GRID_STEPS, GRID_LIMIT, OPTICAL_K = 5, 0.3, 2.0
SHIFT, SCALE, ROTATE = 0.0625, 0.1, 45.0
ALPHA, SIGMA, OPTICAL_SHIFT = 120.0, 6.0, 0.5  # pixels of 1024 (alpha: pixels per unit of noise)
SIZES = (512, 256)  # two training sizes: the study pipelines' and ingest siim's default


def study_recipe() -> augment.Study:
    """The batch augmentation `--preset study` trains with."""
    cfg = build(TrainConfig, {"preset": "study"})
    recipe = augment.batch_augment(cfg.augment, cfg.seed, "cpu").recipe
    assert isinstance(recipe, augment.Study)
    return recipe


def converted(size: int) -> dict[str, float]:
    """The study's pixel-valued parameters in pixels of `size`: the same fraction of the image."""
    s = size / STUDY_SIZE
    return {"elastic_alpha": ALPHA * s * s, "elastic_sigma": SIGMA * s, "optical_shift": OPTICAL_SHIFT * s}


def test_probabilities_and_ranges_are_the_studys():
    r = study_recipe()
    assert (r.flip, r.intensity, r.distort, r.affine) == (P_FLIP, P_INTENSITY, P_DISTORT, P_SSR)
    assert (r.contrast, tuple(r.gamma), r.brightness) == (CONTRAST, GAMMA, BRIGHTNESS)
    assert (r.grid_steps, r.grid_limit, r.optical_k) == (GRID_STEPS, GRID_LIMIT, OPTICAL_K)
    assert (r.shift, r.scale, r.rotate, r.padding) == (SHIFT, SCALE, ROTATE, "reflection")  # reflect-101
    assert (r.elastic_alpha, r.elastic_sigma, r.optical_shift, r.applied_at) == (ALPHA, SIGMA, OPTICAL_SHIFT, STUDY_SIZE)


def test_draws_follow_the_probabilities_and_ranges():
    """4,000 rows' draws: each op's share within 5 standard errors, each value inside its range
    and reaching near its ends; shift-scale-rotate read back from the drawn maps."""
    n, size = 4000, 16
    aug = augment.BatchAugment(study_recipe(), seed=3, device="cpu")
    d = aug.draws(np.arange(n), np.zeros(n, np.int64), size, size)
    share = lambda flags, p: abs(flags.mean() - p) < 5 * np.sqrt(p * (1 - p) / n)  # noqa: E731
    assert share(d.flip, P_FLIP) and share(d.affined, P_SSR) and share(d.warp >= 0, P_DISTORT)
    for flags in (d.gain != 1, d.gamma != 1, d.offset != 0):  # one of three, each equally likely
        assert share(flags, P_INTENSITY / 3)
    assert ((d.gain != 1).astype(int) + (d.gamma != 1) + (d.offset != 0)).max() == 1
    for kind in range(3):
        assert share(d.warp == kind, P_DISTORT / 3)
    for values, low, high in ((d.gain[d.gain != 1] - 1, -CONTRAST, CONTRAST), (d.gamma[d.gamma != 1], *GAMMA),
                              (d.offset[d.offset != 0], -BRIGHTNESS, BRIGHTNESS)):
        assert low <= values.min() < low + 0.02 * (high - low) and high - 0.02 * (high - low) < values.max() <= high
    forward = np.linalg.inv(np.concatenate([d.affine[d.affined], np.tile([[[0.0, 0.0, 1.0]]], (int(d.affined.sum()), 1, 1))], 1))
    alpha, beta = forward[:, 0, 0], forward[:, 0, 1]
    zoom, angle = np.hypot(alpha, beta), np.degrees(np.arctan2(beta, alpha))
    dx = (forward[:, 0, 2] - ((1 - alpha) * size / 2 - beta * size / 2)) / size  # cv2's rotation about (W/2, H/2)
    for values, limit in ((zoom - 1, SCALE), (angle, ROTATE), (dx, SHIFT)):
        assert np.abs(values).max() <= limit + 1e-9 and np.abs(values).max() > 0.97 * limit


@pytest.mark.parametrize("size", SIZES)
def test_pixel_parameters_are_the_studys_at_the_size_applied(size):
    sized = study_recipe().at(size)
    for name, value in converted(size).items():
        assert getattr(sized, name) == pytest.approx(value, rel=1e-12), name
    # What a draw at that size holds: the optical shift round(U±0.25) is 0 at 512 as at 1024.
    u = np.full((1, sized.uniforms), 0.999)
    assert sized._warp_args("optical", u[0, 6:9], np.uint64(0), size, size)[1:] == (size / 2, size / 2)


def _study_elastic_rms(rng: np.random.Generator) -> float:
    """RMS of the study's elastic displacement at 1024 px, as a fraction of the image:
    gaussian_filter(U(-1, 1), sigma) * alpha per axis (albumentations 0.3.1, approximate=False)."""
    from scipy.ndimage import gaussian_filter

    field = [gaussian_filter(rng.uniform(-1, 1, (STUDY_SIZE, STUDY_SIZE)), SIGMA) * ALPHA for _ in range(2)]
    return float(np.sqrt(np.mean(np.square(field)))) / STUDY_SIZE


def _spurspec_elastic_rms(size: int, n: int = 2) -> float:
    """RMS of the displacement spurspec's study recipe applies at `size` (elastic only, its affine
    jitter off), measured by warping images whose pixels hold their own coordinates."""
    recipe = replace(study_recipe(), flip=0.0, intensity=0.0, distort=1.0, affine=0.0, elastic_affine=0.0)
    u = np.full((n, recipe.uniforms), 0.5)
    u[:, 4], u[:, 5] = 0.0, 0.1  # a warp, and the elastic one
    rows = np.arange(n)
    draws = recipe.draw(u, augment.keys(0, np.zeros(n, np.int64), rows), size, size)
    assert (draws.warp == augment.WARPS.index("elastic")).all()
    ramp = torch.linspace(-1, 1, size)
    image = torch.stack([ramp.expand(size, size), ramp[:, None].expand(size, size)]).expand(n, 2, size, size).contiguous()
    out, _ = augment.apply(recipe, draws, image, None)
    moved = (out - image) / 2 * (size - 1)  # displacement in pixels (bilinear reads of a ramp are exact)
    inner = moved[..., size // 8 : -size // 8, size // 8 : -size // 8]  # away from reflected borders
    return float(inner.square().mean().sqrt()) / size


@pytest.mark.parametrize("size", SIZES)
def test_elastic_deformation_is_the_same_fraction_of_the_image(size):
    study = _study_elastic_rms(np.random.default_rng(0))
    ours = _spurspec_elastic_rms(size)
    assert 3.0 < study * STUDY_SIZE < 3.6  # ~3.3 px of 1024: the study's field itself
    # Within 10 %; alpha and sigma in pixels of `size` unconverted would be 1024 / size times larger.
    assert ours == pytest.approx(study, rel=0.10), (ours, study)
