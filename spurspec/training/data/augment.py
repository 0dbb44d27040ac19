"""Training augmentation of a whole batch on the training device. Reads a collated training batch
(image float (B, C, H, W) in [-1, 1]; for pixel models target float (B, H, W) of class values,
e.g. {0, 1}; row and epoch (B,)) and returns it augmented on the device; writes nothing.

Each sample's parameters come from a counter-based generator keyed by (seed, epoch, row), drawn on
the CPU, so a row's draw does not depend on the device, the rest of its batch, the rank or the
worker count; its pixels then agree within float tolerance (grid_sample on other hardware).
Geometry is one composed sampling grid per sample through `grid_sample`: bilinear for the image,
nearest for the target, so a target keeps its class values and moves with its image. Intensity
changes touch the image only, in [0, 1] terms. A sample its draw leaves untouched comes back bit
for bit.

Recipes (the `augment` setting; `none` and the per-image `standard-cpu` are data.py's):
- `standard`: spurspec's default, data.py's MONAI recipe on the batch. Flip p 0.5; affine p 0.5
  about the centre (rotation ±45°, sampling-grid scale 1 ± 0.1, translation ±6.25 % of the size:
  MONAI read the old `translate_range=0.0625` as pixels, so it never shifted) with zeros padding
  as before; then, each with p 0.5, x·(1 + U±0.2), x + U±0.1 and MONAI's min-max contrast gamma
  U(0.8, 1.25); unclipped, as MONAI.
- `study`: the study's albumentations list (issue 11), in albumentations' order and terms:
  horizontal flip p 0.5; with p 0.3 one of RandomContrast (x·(1 + U±0.2), clipped), RandomGamma
  (x^U(0.8, 1.2)), RandomBrightness (x + U±0.2, clipped); with p 0.3 one of ElasticTransform
  (alpha 120, sigma 6), GridDistortion (5 steps, ±0.3, the pre-1.4 algorithm) and
  OpticalDistortion (k ±2; principal-point shift round(U±0.5) pixels, which albumentations'
  rounding makes 0); ShiftScaleRotate p 0.5 (shift ±6.25 % of the size, zoom 1 ± 0.1, rotation
  ±45° about (W/2, H/2)); reflect-101 borders throughout.

Units: the study warped its chest films at 1024 px, before resizing them to 512, so its
pixel-valued parameters are pixels of 1024 (`Study.applied_at`). Here the warps run at the
training size, so `Study.at(size)` converts them to keep each deformation the same fraction of
the image: with s = size / 1024, lengths scale by s (elastic sigma, the elastic affine jitter,
the optical shift) and elastic alpha by s² (the displacement is alpha times noise smoothed over
sigma pixels, whose amplitude falls as 1 / sigma). At 512, 256 and 128 px: alpha 30, 7.5, 1.875;
sigma 3, 1.5, 0.75; jitter 1.8, 0.9, 0.45 px; optical shift ±0.25, ±0.125, ±0.0625 px (still
rounded to 0). Grid and optical distortion limits, shifts, zoom and rotation are already
fractions or angles, so they stay as they are.

Where `study` approximates albumentations: the chain is resampled once through the composed grid
(albumentations resamples after every geometric op, which blurs more), so intensity ops act on
floats before the interpolation rather than on uint8 pixels; the distortion's map is read
bilinearly at the shift-scale-rotate's source points. The study's saved albumentations config
(its src/data/train_transform.json, albumentations 0.3.1) also sets ElasticTransform's
alpha_affine = 3.6: before the elastic field, three points around the centre are jittered by up
to ±3.6 pixels and the image goes through the affine map between them; that is applied here too."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
import torch
import torch.nn.functional as F

WARPS = ("elastic", "grid", "optical")
STUDY_SIZE = 1024  # the study warped its chest films at 1024 px, before resizing them to 512
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def _mix(z: np.ndarray) -> np.ndarray:
    """splitmix64's output function of state z + golden (uint64 arrays wrap silently)."""
    z = z + _GOLDEN
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def keys(seed: int, epochs: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """(B,) uint64: one key per (seed, epoch, row)."""
    as_u64 = lambda v: np.asarray(v, dtype=np.int64).astype(np.uint64)  # noqa: E731
    return _mix(_mix(_mix(as_u64([seed])) ^ as_u64(epochs)) ^ as_u64(rows))


def uniforms(key: np.ndarray, k: int) -> np.ndarray:
    """(B, k) U[0, 1): a counter-based generator (splitmix64 at counters 0..k-1 of each key), so
    a row's numbers are the same in any batch, in one vectorised step."""
    z = _mix(key[:, None] + np.arange(k, dtype=np.uint64) * _GOLDEN)
    return (z >> np.uint64(11)) * 2.0**-53


def _between(u: np.ndarray, limit: float) -> np.ndarray:
    """U(-limit, limit) from U(0, 1)."""
    return (2 * u - 1) * limit


@dataclass
class Draws:
    """A batch's parameters, one entry per sample. `affine` (B, 2, 3) maps an output pixel
    (x, y, 1) to the pixel it reads before the flip, pixel centres at integers (OpenCV's
    convention); `warp` indexes WARPS (-1: none) and `warp_args` holds, per warped sample, its
    random values: elastic (noise (2, H, W) in [-1, 1],), grid (xx (W,), yy (H,)), optical (k, cx, cy)."""

    flip: np.ndarray
    affined: np.ndarray
    affine: np.ndarray
    warp: np.ndarray
    gain: np.ndarray
    offset: np.ndarray
    gamma: np.ndarray
    warp_args: dict[int, tuple] = field(default_factory=dict)

    @classmethod
    def identity(cls, n: int) -> Draws:
        return cls(flip=np.zeros(n, bool), affined=np.zeros(n, bool), affine=np.tile(np.eye(3)[:2], (n, 1, 1)),
                   warp=np.full(n, -1), gain=np.ones(n), offset=np.zeros(n), gamma=np.ones(n))

    @property
    def moved(self) -> np.ndarray:
        return self.affined | (self.warp >= 0)


def _about(centre: np.ndarray, angle: np.ndarray, scale: np.ndarray, to: np.ndarray) -> np.ndarray:
    """(B, 2, 3): output pixel p reads rotate(angle)·scale·(p - centre) + to."""
    cos, sin = np.cos(angle) * scale, np.sin(angle) * scale
    rot = np.stack([np.stack([cos, -sin], -1), np.stack([sin, cos], -1)], -2)
    return np.concatenate([rot, (to - rot @ centre)[..., None]], axis=-1)


def ssr_affine(angle_deg: np.ndarray, scale: np.ndarray, dx: np.ndarray, dy: np.ndarray, h: int, w: int) -> np.ndarray:
    """(B, 2, 3) albumentations' shift_scale_rotate as an output -> source map:
    cv2.getRotationMatrix2D about (W/2, H/2), then a shift of (dx·W, dy·H); warpAffine reads its inverse."""
    a = np.radians(np.asarray(angle_deg, np.float64))
    alpha, beta = scale * np.cos(a), scale * np.sin(a)
    cx, cy = w / 2, h / 2
    forward = np.zeros((len(a), 3, 3))
    forward[:, 0] = np.stack([alpha, beta, (1 - alpha) * cx - beta * cy + dx * w], -1)
    forward[:, 1] = np.stack([-beta, alpha, beta * cx + (1 - alpha) * cy + dy * h], -1)
    forward[:, 2, 2] = 1
    return np.linalg.inv(forward)[:, :2]


def grid_axis(size: int, steps: int, values: np.ndarray) -> np.ndarray:
    """albumentations' (pre-1.4) grid_distortion source coordinates along one axis: cells of
    size // steps pixels, each stretched by its value, joined by np.linspace (end points included)."""
    step = max(size // steps, 1)
    out = np.zeros(size, np.float64)
    prev = 0.0
    for i, start in enumerate(range(0, size, step)):
        end = start + step
        if end > size:
            end, cur = size, float(size)
        else:
            cur = prev + step * values[min(i, len(values) - 1)]
        out[start:end] = np.linspace(prev, cur, end - start)
        prev = cur
    return out


@dataclass(frozen=True)
class Standard:
    """spurspec's default recipe (see the module docstring): probabilities and ranges."""

    flip: float = 0.5
    affine: float = 0.5
    rotate: float = 45.0  # degrees
    scale: float = 0.1  # sampling-grid scale 1 ± 0.1 (MONAI's convention)
    shift: float = 0.0625  # fraction of the image size
    gain_p: float = 0.5
    gain: float = 0.2  # x * (1 + U(-0.2, 0.2))
    offset_p: float = 0.5
    offset: float = 0.1  # x + U(-0.1, 0.1)
    gamma_p: float = 0.5
    gamma: tuple[float, float] = (0.8, 1.25)  # MONAI's RandAdjustContrast over each image's min-max
    padding = "zeros"
    clip = False
    minmax_gamma = True
    intensity_first = False
    uniforms = 12

    def draw(self, u: np.ndarray, key: np.ndarray, h: int, w: int) -> Draws:
        d = Draws.identity(len(u))
        d.flip = u[:, 0] < self.flip
        d.affined = u[:, 1] < self.affine
        centre = np.array([(w - 1) / 2, (h - 1) / 2])
        shift = _between(u[:, 4:6], self.shift) * np.array([w, h])
        about = _about(centre, np.radians(_between(u[:, 2], self.rotate)), 1 + _between(u[:, 3], self.scale), centre + shift)
        d.affine = np.where(d.affined[:, None, None], about, d.affine)
        d.gain = np.where(u[:, 6] < self.gain_p, 1 + _between(u[:, 7], self.gain), 1.0)
        d.offset = np.where(u[:, 8] < self.offset_p, _between(u[:, 9], self.offset), 0.0)
        d.gamma = np.where(u[:, 10] < self.gamma_p, self.gamma[0] + u[:, 11] * (self.gamma[1] - self.gamma[0]), 1.0)
        return d


@dataclass(frozen=True)
class Study:
    """The study's albumentations list (see the module docstring): probabilities and ranges."""

    flip: float = 0.5
    intensity: float = 0.3  # P(one of contrast, gamma, brightness), each equally likely
    contrast: float = 0.2
    gamma: tuple[float, float] = (0.8, 1.2)
    brightness: float = 0.2
    distort: float = 0.3  # P(one of elastic, grid, optical), each equally likely
    elastic_alpha: float = 120.0  # pixels of `applied_at` per unit of smoothed noise (scales by s²)
    elastic_sigma: float = 6.0  # pixels of `applied_at`
    elastic_affine: float = 3.6  # alpha_affine of the study's saved config, pixels of `applied_at`
    grid_steps: int = 5
    grid_limit: float = 0.3  # a fraction of each cell
    optical_k: float = 2.0  # in units of the image size (the camera's focal length is W, H)
    optical_shift: float = 0.5  # pixels of `applied_at`
    affine: float = 0.5  # ShiftScaleRotate
    shift: float = 0.0625  # fraction of the image size
    scale: float = 0.1  # zoom 1 ± 0.1
    rotate: float = 45.0  # degrees
    applied_at: int = STUDY_SIZE  # the image size (px) the pixel-valued parameters above are in
    padding = "reflection"
    clip = True
    minmax_gamma = False
    intensity_first = True
    uniforms = 14

    def at(self, size: int) -> Study:
        """The same augmentation on images of `size` px: the pixel-valued parameters converted
        from `applied_at` so that each deformation is the same fraction of the image (module
        docstring). at(size) of at(other) is at(size)."""
        s = size / self.applied_at
        return replace(self, elastic_alpha=self.elastic_alpha * s * s, elastic_sigma=self.elastic_sigma * s,
                       elastic_affine=self.elastic_affine * s, optical_shift=self.optical_shift * s,
                       applied_at=size)

    def draw(self, u: np.ndarray, key: np.ndarray, h: int, w: int) -> Draws:
        d = Draws.identity(len(u))
        d.flip = u[:, 0] < self.flip
        sized = self.at(min(h, w))  # training images are square
        op = np.where(u[:, 1] < self.intensity, (u[:, 2] * 3).astype(int), -1)
        d.gain = np.where(op == 0, 1 + _between(u[:, 3], self.contrast), 1.0)
        d.gamma = np.where(op == 1, self.gamma[0] + u[:, 3] * (self.gamma[1] - self.gamma[0]), 1.0)
        d.offset = np.where(op == 2, _between(u[:, 3], self.brightness), 0.0)
        d.warp = np.where(u[:, 4] < self.distort, (u[:, 5] * 3).astype(int), -1)
        for i in np.flatnonzero(d.warp >= 0):
            d.warp_args[int(i)] = sized._warp_args(WARPS[d.warp[i]], u[i, 6:9], key[i], h, w)
        d.affined = u[:, 9] < self.affine
        ssr = ssr_affine(_between(u[:, 10], self.rotate), 1 + _between(u[:, 11], self.scale),
                         _between(u[:, 12], self.shift), _between(u[:, 13], self.shift), h, w)
        d.affine = np.where(d.affined[:, None, None], ssr, d.affine)
        return d

    def _warp_args(self, kind: str, u: np.ndarray, key: np.uint64, h: int, w: int) -> tuple:
        """One warped sample's random values, with the pixel-valued parameters as they are here
        (draw passes the recipe at the image's size)."""
        if kind == "optical":
            dx, dy = (round(float(_between(v, self.optical_shift))) for v in u[1:3])
            return float(_between(u[0], self.optical_k)), w * 0.5 + dx, h * 0.5 + dy
        rng = np.random.default_rng(int(key))  # the sample's own stream for its arrays
        if kind == "elastic":  # albumentations: gaussian_filter(rand * 2 - 1, sigma) * alpha
            noise = _between(rng.random((2, h, w), dtype=np.float32), 1.0)
            jitter = _between(rng.random((3, 2)), self.elastic_affine)
            return noise, elastic_affine_inverse(jitter, h, w)
        n = self.grid_steps
        steps = 1 + _between(rng.random(2 * (n + 1)), self.grid_limit)
        return grid_axis(w, n, steps[: n + 1]), grid_axis(h, n, steps[n + 1 :])


def elastic_affine_inverse(jitter: np.ndarray, h: int, w: int) -> np.ndarray:
    """(2, 3) inverse of ElasticTransform's affine step (albumentations 0.3.1): three points about
    the centre, moved by `jitter` (3, 2) pixels, define the map cv2.warpAffine applies; the
    inverse takes an output pixel back to where it was read."""
    centre = np.array([h // 2, w // 2], dtype=np.float64)  # albumentations' (height, width) order
    size = min(h, w) // 3
    src = np.array([centre + size, [centre[0] + size, centre[1] - size], centre - size])
    dst = src + jitter
    forward = np.linalg.solve(np.c_[src, np.ones(3)], dst).T  # (2, 3): dst = forward @ [x, y, 1]
    full = np.vstack([forward, [0.0, 0.0, 1.0]])
    return np.linalg.inv(full)[:2]


RECIPES = {"standard": Standard(), "study": Study()}


class BatchAugment:
    """The callable a training Step applies to each batch after loading: draws each sample's
    parameters from (seed, epoch, row) and augments image and target on `device`."""

    def __init__(self, recipe: Standard | Study, seed: int, device: torch.device | str) -> None:
        self.recipe, self.seed, self.device = recipe, seed, torch.device(device)

    def draws(self, rows: np.ndarray, epochs: np.ndarray, h: int, w: int) -> Draws:
        key = keys(self.seed, epochs, rows)
        return self.recipe.draw(uniforms(key, self.recipe.uniforms), key, h, w)

    def __call__(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        image = batch["image"].to(self.device, non_blocking=True)
        target = batch.get("target")
        if target is not None:
            target = target.to(self.device, non_blocking=True)
        draws = self.draws(batch["row"].numpy(), batch["epoch"].numpy(), image.shape[-2], image.shape[-1])
        image, target = apply(self.recipe, draws, image, target)
        return {**batch, "image": image} | ({} if target is None else {"target": target})


def batch_augment(name: str, seed: int, device: torch.device | str) -> BatchAugment | None:
    """The batch augmentation of an `augment` setting; None where there is none on the batch
    (`none`, or the per-image `standard-cpu` that RowsDataset applies)."""
    recipe = RECIPES.get(name)
    return None if recipe is None else BatchAugment(recipe, seed, device)


def apply(recipe: Standard | Study, draws: Draws, image: torch.Tensor,
          target: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Augmented copies of image and target under given draws, in the recipe's order."""
    image = image.clone()
    if recipe.intensity_first:
        image = _intensity(recipe, draws, image)
    image, target = _geometry(recipe, draws, image, target)
    if not recipe.intensity_first:
        image = _intensity(recipe, draws, image)
    return image, target


def _per_sample(values: np.ndarray, like: torch.Tensor) -> torch.Tensor:
    return torch.as_tensor(values, dtype=like.dtype).to(like.device).view(-1, 1, 1, 1)


def _index(flags: np.ndarray, device: torch.device) -> torch.Tensor:
    return torch.as_tensor(np.flatnonzero(flags)).to(device)


def _intensity(recipe: Standard | Study, d: Draws, x: torch.Tensor) -> torch.Tensor:
    """Gain and offset (clipped to [0, 1] for `study`, as uint8 pixels are), then gamma (plain, or
    MONAI's over each image's min-max range). Gain 1 and offset 0 leave a sample exactly as it was."""
    if (d.gain != 1).any() or (d.offset != 0).any():
        # x01·gain + offset in [0, 1] terms is this in [-1, 1] terms (min-max gamma needs no change).
        x.mul_(_per_sample(d.gain, x)).add_(_per_sample(d.gain - 1 + 2 * d.offset, x))
        if recipe.clip:
            x.clamp_(-1.0, 1.0)
    at = _index(d.gamma != 1, x.device)
    if len(at):
        gamma, part = _per_sample(d.gamma[d.gamma != 1], x), x.index_select(0, at)
        if recipe.minmax_gamma:
            low = part.amin(dim=(1, 2, 3), keepdim=True)
            span = part.amax(dim=(1, 2, 3), keepdim=True) - low
            part.sub_(low).div_(span + 2e-7)
        else:
            part.add_(1).mul_(0.5).clamp_(0.0, 1.0)
        # t ** gamma for t in [0, 1] as exp(gamma * log t) (0 stays 0): 3.5x faster than pow on a CPU
        part.log_().mul_(gamma).exp_()
        if recipe.minmax_gamma:
            part.mul_(span).add_(low)
        else:
            part.mul_(2).sub_(1)
        x.index_copy_(0, at, part)
    return x


def _geometry(recipe: Standard | Study, d: Draws, x: torch.Tensor,
              target: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor | None]:
    """In place on x (a copy); flip-only samples are flipped, moved ones resampled through their
    composed grid."""
    flip_only, moved = _index(d.flip & ~d.moved, x.device), _index(d.moved, x.device)
    if target is not None and (len(flip_only) or len(moved)):
        target = target.clone()
    if len(flip_only):
        x.index_copy_(0, flip_only, x.index_select(0, flip_only).flip(-1))
        if target is not None:
            target.index_copy_(0, flip_only, target.index_select(0, flip_only).flip(-1))
    if len(moved):
        grid = _grids(recipe, d, np.flatnonzero(d.moved), x.shape[-2], x.shape[-1], x.device)
        sample = lambda t, mode: F.grid_sample(t, grid, mode=mode, padding_mode=recipe.padding,  # noqa: E731
                                               align_corners=True)
        # Zeros padding means black, 0 in [0, 1] terms as MONAI padded: -1 here.
        black = 1.0 if recipe.padding == "zeros" else 0.0
        x.index_copy_(0, moved, sample(x.index_select(0, moved).add_(black), "bilinear").sub_(black))
        if target is not None:
            target.index_copy_(0, moved, sample(target.index_select(0, moved).unsqueeze(1), "nearest").squeeze(1))
    return x, target


def _normalise(affine: np.ndarray, h: int, w: int) -> np.ndarray:
    """(B, 2, 3) pixel maps in grid_sample's align_corners=True units (-1 and 1 are the centres of
    the edge pixels, so its reflection is OpenCV's reflect-101)."""
    to_unit = np.array([[2 / (w - 1), 0, -1], [0, 2 / (h - 1), -1], [0, 0, 1]])
    full = np.concatenate([affine, np.tile([[0.0, 0.0, 1.0]], (len(affine), 1, 1))], axis=1)
    return (to_unit @ full @ np.linalg.inv(to_unit))[:, :2]


def _grids(recipe: Standard | Study, d: Draws, idx: np.ndarray, h: int, w: int, device: torch.device) -> torch.Tensor:
    """(N, H, W, 2) sampling grids of samples `idx`: output -> affine -> (reflected) warp -> flip."""
    theta = _normalise(d.affine[idx], h, w)
    flip, warp = d.flip[idx], d.warp[idx]
    theta[flip & (warp < 0), 0] *= -1  # a flip after a plain affine negates its x row
    # What F.affine_grid computes (align_corners=True), as one batched matmul: 3x faster on a CPU.
    u, v = torch.linspace(-1, 1, w, device=device), torch.linspace(-1, 1, h, device=device)
    points = torch.stack([u.expand(h, w), v[:, None].expand(h, w), torch.ones(h, w, device=device)], -1)
    theta_t = torch.as_tensor(theta, dtype=torch.float32).to(device)
    grid = torch.matmul(points.view(1, h * w, 3), theta_t.transpose(1, 2)).view(len(idx), h, w, 2)
    for code in np.unique(warp[warp >= 0]):
        local = np.flatnonzero(warp == code)
        maps = _warp_maps(recipe.at(min(h, w)), WARPS[code], [d.warp_args[int(i)] for i in idx[local]], h, w, device)
        maps[:, 0] *= _per_sample(np.where(flip[local], -1.0, 1.0), maps)[:, 0]
        # The affine read the warped image with reflected borders: reflect its points into the
        # image before looking up where the warp took them from.
        at = torch.as_tensor(local).to(device)
        points = _reflect(grid.index_select(0, at))
        grid.index_copy_(0, at, F.grid_sample(maps, points, mode="bilinear", padding_mode="border",
                                              align_corners=True).permute(0, 2, 3, 1))
    return grid


def _reflect(u: torch.Tensor) -> torch.Tensor:
    """Normalised coordinates reflected into [-1, 1] about the edge pixels' centres (reflect-101)."""
    r = torch.remainder(u + 1, 4.0)
    return torch.where(r > 2, 4 - r, r) - 1


def _warp_maps(recipe: Study, kind: str, args: list[tuple], h: int, w: int, device: torch.device) -> torch.Tensor:
    """(N, 2, H, W): the source (x, y) of every output pixel under one kind of warp, normalised."""
    ys, xs = torch.meshgrid(torch.arange(h, dtype=torch.float32, device=device),
                            torch.arange(w, dtype=torch.float32, device=device), indexing="ij")
    stack = lambda j: torch.as_tensor(np.stack([a[j] for a in args]), dtype=torch.float32).to(device)  # noqa: E731
    if kind == "elastic":
        moved = torch.stack([xs, ys]) + recipe.elastic_alpha * _gaussian(stack(0), recipe.elastic_sigma)
        inv = stack(1)[:, :, :, None, None]  # (N, 2, 3): where the affine step read each point from
        maps = torch.stack([inv[:, r, 0] * moved[:, 0] + inv[:, r, 1] * moved[:, 1] + inv[:, r, 2] for r in (0, 1)], 1)
    elif kind == "grid":
        xx, yy = stack(0), stack(1)
        maps = torch.stack([xx[:, None, :].expand(-1, h, w), yy[:, :, None].expand(-1, h, w)], 1)
    else:
        maps = _optical(torch.as_tensor(np.array(args), dtype=torch.float32).to(device), xs, ys)
    scale = torch.tensor([2 / (w - 1), 2 / (h - 1)], device=device).view(1, 2, 1, 1)
    return maps * scale - 1


def _optical(args: torch.Tensor, xs: torch.Tensor, ys: torch.Tensor) -> torch.Tensor:
    """cv2.initUndistortRectifyMap for camera matrix [[W, 0, cx], [0, H, cy]] and k1 = k2 = k."""
    h, w = xs.shape
    k, cx, cy = (args[:, i, None, None] for i in range(3))
    x, y = (xs - cx) / w, (ys - cy) / h
    r2 = x * x + y * y
    f = 1 + k * r2 + k * r2 * r2
    return torch.stack([x * f * w + cx, y * f * h + cy], 1)


def _smoothing(size: int, sigma: float, device: torch.device) -> torch.Tensor:
    """(size, size) matrix of scipy's gaussian_filter1d (truncate 4, mode 'reflect': d c b a | a b
    c d, folded as often as the kernel needs): smoothing a row is a product with it."""
    radius = int(4 * sigma + 0.5)
    taps = np.arange(-radius, radius + 1)
    weights = np.exp(-0.5 * (taps / sigma) ** 2)
    source = np.mod(np.arange(size)[:, None] + taps, 2 * size)
    source = np.where(source >= size, 2 * size - 1 - source, source)
    out = np.zeros((size, size))
    np.add.at(out, (np.repeat(np.arange(size), len(taps)), source.ravel()), np.tile(weights / weights.sum(), size))
    return torch.as_tensor(out, dtype=torch.float32).to(device)


def _gaussian(noise: torch.Tensor, sigma: float) -> torch.Tensor:
    """scipy.ndimage.gaussian_filter over the last two axes, as two matrix products."""
    h, w = noise.shape[-2:]
    return _smoothing(h, sigma, noise.device) @ noise @ _smoothing(w, sigma, noise.device).T
