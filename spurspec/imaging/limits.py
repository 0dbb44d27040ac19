"""The limits every image reader applies before decoding, and the one-line form of a third-party
decoder's error: shared by `readers` (Pillow, NIfTI) and `dicom`, below both. Reads and writes
nothing."""

from __future__ import annotations

from pathlib import Path

from spurspec.errors import InputError

# The largest image (or one slice of a volume) any reader decodes: 8192 x 8192. Radiographs and
# dermoscopy are at most about 5000 x 5000; a decoded 16-bit image of this size already takes
# 128 MiB and its float conversions 512 MiB. Bad inputs like any other (--skip-bad skips them).
MAX_PIXELS = 8192 * 8192


def why(exc: BaseException) -> str:
    """One line for an error from a third-party decoder (some span several lines)."""
    return f"{type(exc).__name__}: {' '.join(str(exc).split())}"[:300]


def check_pixels(path: Path, height: int, width: int, frames: int = 1) -> None:
    """Refuse, before decoding, an image whose header claims more than MAX_PIXELS pixels."""
    if height * width * max(frames, 1) > MAX_PIXELS:
        shape = f"{height} x {width}" + (f" x {frames} frames" if frames > 1 else "")
        raise InputError(f"{path}: image of {shape} pixels is over spurspec's limit of {MAX_PIXELS:,} pixels; not decoded")
