"""The SIIM-ACR competition's run-length encoding: numbers come in (gap, run) pairs relative to
the end of the previous run, over the mask flattened column-major (Fortran order). "-1" (or an
empty string) is an empty mask."""

from __future__ import annotations

import numpy as np

from spurspec.errors import InputError

EMPTY = "-1"


def decode(rle: str, height: int, width: int) -> np.ndarray:
    """RLE string -> bool mask of shape (height, width). Raises InputError on malformed input."""
    text = rle.strip()
    mask = np.zeros(height * width, dtype=bool)
    if text in ("", EMPTY):
        return mask.reshape(width, height).T
    try:
        numbers = np.array(text.split(), dtype=np.int64)
    except ValueError:
        raise InputError(f"RLE has a token that is not an integer: {text[:40]!r}") from None
    if len(numbers) % 2:
        raise InputError(f"RLE has an odd number of tokens ({len(numbers)})")
    if (numbers < 0).any():
        raise InputError("RLE has a negative gap or run")
    gaps, runs = numbers[0::2], numbers[1::2]
    starts = np.cumsum(gaps + np.concatenate(([0], runs[:-1])))
    ends = starts + runs
    if len(ends) and ends[-1] > height * width:
        raise InputError(f"RLE runs past the image: ends at pixel {int(ends[-1])} of {height * width}")
    # A difference array marks run starts (+1) and ends (-1); its cumsum is the mask.
    delta = np.zeros(height * width + 1, dtype=np.int32)
    np.add.at(delta, starts, 1)
    np.add.at(delta, ends, -1)
    mask = np.cumsum(delta[:-1]) > 0
    return mask.reshape(width, height).T


def encode(mask: np.ndarray) -> str:
    """bool/0-1 mask (height, width) -> RLE string; "-1" for an empty mask."""
    flat = np.asarray(mask).T.reshape(-1) > 0
    if not flat.any():
        return EMPTY
    padded = np.concatenate(([False], flat, [False]))
    edges = np.flatnonzero(padded[1:] != padded[:-1])
    starts, ends = edges[0::2], edges[1::2]
    runs = ends - starts
    prev_end = np.concatenate(([0], ends[:-1]))
    gaps = starts - prev_end
    return " ".join(f"{g} {r}" for g, r in zip(gaps.tolist(), runs.tolist(), strict=True))


def union(rles: list[str], height: int, width: int) -> np.ndarray:
    """OR several RLE rows of one image (SIIM lists one row per mask component)."""
    mask = np.zeros((height, width), dtype=bool)
    for r in rles:
        mask |= decode(r, height, width)
    return mask
