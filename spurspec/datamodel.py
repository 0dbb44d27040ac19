"""The study's generative data model, shared by `ingest synthetic` (which renders it as images)
and `spurspec theory` (which computes its measures exactly and by sampling it). Reads and
writes nothing; it draws labels and region placements from a seeded numpy Generator.

The model
---------
An image is an m x m grid of n = m^2 pixels. A label pair (y, s) is drawn from a joint
P(y, s), given by its four cells p00, p01, p10, p11 (p_ys = P(y=a, s=b)) or by an agreement
c = P(s = y) and a prevalence P(y = 1). When y = 1 an abnormal region Y (a footprint F_Y, a
boolean h x w array) is translated to a position drawn uniformly from the (m-h+1)(m-w+1) that
fit; when s = 1 a spurious region S (footprint F_S) is translated uniformly among the positions
where it shares no pixel with Y (rejection sampling gives exactly this conditional uniform).
With `overlap=True` S ignores Y. Y_ij, S_ij are the region indicators (all zero when y = 0 or
s = 0). Pixel values depend on Y, S and noise; `theory` uses X_ij = mu_y Y_ij + mu_s S_ij +
sigma eps_ij, `ingest synthetic` renders a texture change inside Y and a bright stroke for S.

Spatial specificity r: the grid is cut into r equal square blocks (r = g^2, block side m/g);
a block's label is 1 iff it holds an abnormal pixel, and Ỹ_ij is the label of pixel ij's block.
r = 1 gives Ỹ_ij = y (the image label), r = n gives Ỹ_ij = Y_ij (the pixel mask).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from spurspec.errors import ConfigError


@dataclass(frozen=True)
class JointLabels:
    """P(y, s) as its four cells; checked on construction."""

    p00: float
    p01: float
    p10: float
    p11: float

    def __post_init__(self) -> None:
        cells = self.cells
        if (cells < 0).any() or abs(cells.sum() - 1.0) > 1e-6:
            raise ConfigError(f"P(y,s) cells must be non-negative and sum to 1, got {self.text}")

    @classmethod
    def from_agreement(cls, agreement: float, p_y: float = 0.5) -> JointLabels:
        """P(s = y) = agreement with P(y=1) = p_y, so P(s=1|y=1) = agreement = P(s=0|y=0)."""
        if not 0.0 <= agreement <= 1.0 or not 0.0 < p_y < 1.0:
            raise ConfigError(f"agreement must be in [0, 1] and P(y=1) in (0, 1); got {agreement}, {p_y}")
        return cls(
            p00=(1 - p_y) * agreement,
            p01=(1 - p_y) * (1 - agreement),
            p10=p_y * (1 - agreement),
            p11=p_y * agreement,
        )

    @classmethod
    def parse(cls, text: str) -> JointLabels:
        """'p00,p01,p10,p11' -> JointLabels (a ConfigError names the text when malformed)."""
        try:
            values = [float(v) for v in text.replace(" ", "").split(",")]
        except ValueError:
            raise ConfigError(f"P(y,s) {text!r}: expected four numbers p00,p01,p10,p11") from None
        if len(values) != 4:
            raise ConfigError(f"P(y,s) {text!r}: expected four numbers p00,p01,p10,p11, got {len(values)}")
        return cls(*values)

    @classmethod
    def independent(cls, p_y: float, p_s: float) -> JointLabels:
        return cls((1 - p_y) * (1 - p_s), (1 - p_y) * p_s, p_y * (1 - p_s), p_y * p_s)

    @property
    def cells(self) -> np.ndarray:
        return np.array([self.p00, self.p01, self.p10, self.p11], dtype=np.float64)

    @property
    def text(self) -> str:
        return ",".join(f"{v:g}" for v in (self.p00, self.p01, self.p10, self.p11))

    @property
    def p_y(self) -> float:
        return self.p10 + self.p11

    @property
    def p_s_given_y1(self) -> float:
        """The only feature of P(y,s) the measures depend on, since Ỹ_ij = 1 implies y = 1."""
        return self.p11 / self.p_y if self.p_y > 0 else 0.0

    @property
    def agreement(self) -> float:
        return self.p00 + self.p11

    def reversed(self) -> JointLabels:
        """Flip s: the spurious feature now points the other way (the test-time shift)."""
        return JointLabels(self.p01, self.p00, self.p11, self.p10)

    def exact_counts(self, n: int) -> np.ndarray:
        """Cell counts summing to n, as close to n * P as integers allow (largest remainder),
        so even a small split holds every cell its probability implies."""
        raw = self.cells * n
        counts = np.floor(raw).astype(np.int64)
        order = np.argsort(-(raw - counts), kind="stable")
        counts[order[: n - int(counts.sum())]] += 1
        return counts

    def labels(self, rng: np.random.Generator, n: int, exact: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """n (y, s) pairs: exactly `exact_counts(n)` in a seeded random order, or iid draws."""
        if exact:
            cell = np.repeat(np.arange(4), self.exact_counts(n))
            cell = cell[rng.permutation(n)]
        else:
            cell = rng.choice(4, size=n, p=self.cells)
        return (cell // 2).astype(np.int8), (cell % 2).astype(np.int8)


@dataclass(frozen=True)
class Scene:
    """One draw of the model: labels and the top-left corners of the placed regions."""

    y: int
    s: int
    y_pos: tuple[int, int] | None  # (row, col) of F_Y's top-left corner, None when y = 0
    s_pos: tuple[int, int] | None


def paste(size: int, footprint: np.ndarray, pos: tuple[int, int] | None) -> np.ndarray:
    """The (size, size) boolean mask of `footprint` translated to `pos` (empty when pos is None)."""
    mask = np.zeros((size, size), dtype=bool)
    if pos is not None:
        h, w = footprint.shape
        mask[pos[0] : pos[0] + h, pos[1] : pos[1] + w] = footprint
    return mask


def _uniform_pos(rng: np.random.Generator, size: int, footprint: np.ndarray) -> tuple[int, int]:
    h, w = footprint.shape
    if h > size or w > size:
        raise ConfigError(f"a region of {h}x{w} pixels does not fit a {size}x{size} image")
    return int(rng.integers(0, size - h + 1)), int(rng.integers(0, size - w + 1))


def place(
    rng: np.random.Generator,
    size: int,
    y: int,
    s: int,
    y_footprint: np.ndarray,
    s_footprint: np.ndarray,
    overlap: bool = False,
    max_tries: int = 10_000,
) -> Scene:
    """Place Y (if y) uniformly, then S (if s) uniformly among positions not touching Y.

    Rejection sampling draws S's position from exactly the uniform distribution over the
    non-overlapping positions, which is what `theory`'s exact enumeration assumes.
    """
    y_pos = _uniform_pos(rng, size, y_footprint) if y else None
    if not s:
        return Scene(int(y), 0, y_pos, None)
    if y_pos is None or overlap:
        return Scene(int(y), 1, y_pos, _uniform_pos(rng, size, s_footprint))
    y_mask = paste(size, y_footprint, y_pos)
    h, w = s_footprint.shape
    for _ in range(max_tries):
        pos = _uniform_pos(rng, size, s_footprint)
        if not (y_mask[pos[0] : pos[0] + h, pos[1] : pos[1] + w] & s_footprint).any():
            return Scene(int(y), 1, y_pos, pos)
    raise ConfigError(
        f"could not place a {h}x{w} spurious region beside the abnormal one in a {size}x{size} image; "
        "use smaller regions or allow overlap"
    )


def block_labels(mask: np.ndarray, r: int) -> np.ndarray:
    """Ỹ at spatial specificity r: each pixel gets its block's 'any abnormal pixel' label.

    `mask` is (..., m, m); r must be g^2 with g dividing m. Returns the same shape.
    """
    m = mask.shape[-1]
    g = region_side(r, m)
    b = m // g
    lead = mask.shape[:-2]
    blocks = mask.reshape(*lead, g, b, g, b).any(axis=(-3, -1))
    return np.repeat(np.repeat(blocks, b, axis=-2), b, axis=-1)


def region_side(r: int, m: int) -> int:
    """g with r = g^2 regions of an m x m grid (g must divide m); ConfigError otherwise."""
    g = int(round(r**0.5))
    if r < 1 or g * g != r or m % g:
        valid = [k * k for k in range(1, m + 1) if m % k == 0]
        raise ConfigError(f"r={r} is not a number of equal square regions of a {m}x{m} grid; valid: {valid}")
    return g
