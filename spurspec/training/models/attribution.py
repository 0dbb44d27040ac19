"""Integrated-gradients maps of an image score (Captum): the raw evidence the attribution probe
measures the mass of, and the same evidence smoothed and normalised per image, the map the
report draws for a model without pixel outputs (an image-label model). Both are at the image's
resolution, unlike a class activation map of the last stage (2×2 cells on a 64 px image). Reads
and writes nothing."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

# The display map's Gaussian, in pixels of a 64 px image (scaled with the image): wide enough to
# join IG's pixel-to-pixel speckle into the structure it marks, narrow enough to keep a 2 px stroke.
SIGMA_AT_64 = 1.5
# The display map's scale: this percentile of each smoothed map is 1, so a few extreme pixels do
# not set the scale and a region of 1% of the image still reaches it.
SCALE_PERCENTILE = 99.0


def integrated_gradients(score: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, steps: int) -> np.ndarray:
    """float32 (B, S, S): integrated gradients of `score` (images (B, C, S, S) -> (B,)) summed
    over channels, from an all-zero input (mid-grey after RowsDataset's scaling to [-1, 1]) along
    the straight path to each image; its positive part, the evidence for the positive class (a
    probability map, the pixel models' map, is positive evidence too)."""
    from captum.attr import IntegratedGradients

    ig = IntegratedGradients(score)
    with torch.enable_grad():
        attr = ig.attribute(x, baselines=torch.zeros_like(x), n_steps=steps, internal_batch_size=len(x))
    return attr.detach().sum(dim=1).clamp(min=0).float().cpu().numpy()


def normalised(maps: np.ndarray, sigma_at_64: float = SIGMA_AT_64, percentile: float = SCALE_PERCENTILE) -> np.ndarray:
    """float32 (B, S, S) in [0, 1]: each map (>= 0) smoothed by a Gaussian of `sigma_at_64` px
    per 64 px of image, divided by its own `percentile`-th value and clipped at 1; a map with no
    evidence stays 0 (no noise blown up to the full scale)."""
    from scipy.ndimage import gaussian_filter

    maps = np.asarray(maps, dtype=np.float32)
    out = np.zeros_like(maps)
    for k, m in enumerate(maps):
        smooth = gaussian_filter(m, sigma=sigma_at_64 * m.shape[-1] / 64, mode="nearest") if sigma_at_64 > 0 else m
        top = float(np.percentile(smooth, percentile))
        if top > 0 and np.isfinite(top):
            out[k] = np.clip(smooth / top, 0.0, 1.0)
    return out


def display_maps(score: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, steps: int = 32) -> np.ndarray:
    """float32 (B, S, S) in [0, 1]: the integrated gradients of `score` on images `x`, smoothed and
    normalised per image (`normalised`), for drawing."""
    return normalised(integrated_gradients(score, x, steps))
