"""The limits every image reader applies before decoding, the one-line form of a third-party
decoder's error, and which OSErrors on an input are the user's to fix (exit 2) rather than the
system's (exit 1): shared by `readers` (Pillow, NIfTI), `dicom` and the ingests that list input
folders, below all of them. Reads and writes nothing."""

from __future__ import annotations

import errno
from pathlib import Path

from spurspec.errors import InputError

# The largest image (or one slice of a volume) any reader decodes: 8192 x 8192. Radiographs and
# dermoscopy are at most about 5000 x 5000; a decoded 16-bit image of this size already takes
# 128 MiB and its float conversions 512 MiB. Bad inputs like any other (--skip-bad skips them).
MAX_PIXELS = 8192 * 8192

# The OSErrors that say an input the user gave is unusable as it stands (bad input, exit 2), in
# the words an error line gives them; any other (an I/O error) is the system's, exit 1.
INPUT_FAULTS = {errno.ELOOP: "symbolic link loop", errno.EACCES: "permission denied", errno.EPERM: "permission denied"}


def input_fault(exc: OSError, path: object = None) -> InputError | None:
    """`exc`, raised on the user's input, as an InputError naming the path (`exc`'s own if not
    given), or None when it is not one of INPUT_FAULTS."""
    words = INPUT_FAULTS.get(exc.errno)  # type: ignore[arg-type]
    if words is None:
        return None
    return InputError(f"{path if path is not None else exc.filename}: {words}")


def why(exc: BaseException) -> str:
    """One line for an error from a third-party decoder (some span several lines)."""
    return f"{type(exc).__name__}: {' '.join(str(exc).split())}"[:300]


def check_pixels(path: Path, height: int, width: int, frames: int = 1) -> None:
    """Refuse, before decoding, an image whose header claims more than MAX_PIXELS pixels."""
    if height * width * max(frames, 1) > MAX_PIXELS:
        shape = f"{height} x {width}" + (f" x {frames} frames" if frames > 1 else "")
        raise InputError(f"{path}: image of {shape} pixels is over spurspec's limit of {MAX_PIXELS:,} pixels; not decoded")
