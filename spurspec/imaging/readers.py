"""Read one image or mask file of any supported format into a numpy array: PNG/JPEG/BMP/TIFF via
Pillow, NIfTI (.nii, .nii.gz) via nibabel, DICOM via spurspec.imaging.dicom; masks also from
SIIM-style RLE. Masks must hold only {0, 1} or {0, 255}; anything else is an InputError. Every
format's header is read first and an image of more than MAX_PIXELS pixels is refused before a
byte of it is decoded (a 100 kB PNG can claim 30000 x 30000)."""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from spurspec.errors import InputError
from spurspec.imaging import limits, rle
from spurspec.imaging.limits import check_pixels, input_fault, why

PILLOW_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
NIFTI_SUFFIXES = (".nii", ".nii.gz")
DICOM_SUFFIXES = (".dcm", ".dicom")
# ITU-R 601 luma, the weights Pillow's convert("L") uses: RGB -> grey for single-channel datasets.
_LUMA = np.array([0.299, 0.587, 0.114])


def kind_of(path: Path) -> str:
    """'pillow' | 'nifti' | 'dicom' from the suffix; files without a known suffix are sniffed
    for the DICOM preamble (PACS exports often have no extension)."""
    name = path.name.lower()
    if name.endswith(NIFTI_SUFFIXES):
        return "nifti"
    if name.endswith(PILLOW_SUFFIXES):
        return "pillow"
    if name.endswith(DICOM_SUFFIXES):
        return "dicom"
    try:
        with open(path, "rb") as fh:
            head = fh.read(132)
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc.strerror or exc})") from None
    if head[128:132] == b"DICM":
        return "dicom"
    raise InputError(f"{path}: unknown image format (expected PNG, JPEG, BMP, TIFF, NIfTI or DICOM)")


def _exists(path: Path) -> None:
    """A regular file this process may read, or an InputError saying which it is not: a loop of
    symbolic links and a file or folder without permission are named as such, not as missing."""
    try:
        mode = path.stat().st_mode
    except OSError as exc:
        raise (input_fault(exc, path) or InputError(f"{path}: file not found")) from None
    if not stat.S_ISREG(mode):
        raise InputError(f"{path}: file not found")
    if not os.access(path, os.R_OK):
        raise InputError(f"{path}: permission denied")


def read_image(path: Path, draft_size: int | None = None) -> tuple[np.ndarray, tuple[int, int]]:
    """-> (pixels (H', W') or (H', W', 3), original (height, width)). With `draft_size`, a JPEG
    is decoded at a reduced DCT scale no smaller than that size (the caller resizes anyway), so
    (H', W') may be smaller than the original; other formats come back at full size."""
    path = Path(path)
    _exists(path)
    kind = kind_of(path)
    if kind == "dicom":
        from spurspec.imaging import dicom

        # dicom.decode resizes itself (with a scaled-DCT fast path for JPEG Baseline).
        pixels, facts = dicom.decode(path, draft_size)
        return pixels, (int(facts.rows), int(facts.cols))
    if kind == "nifti":
        arr = _read_nifti(path)
        return arr, (arr.shape[0], arr.shape[1])
    return _read_pillow(path, draft_size)


@contextlib.contextmanager
def open_pillow(path: Path, what: str) -> Iterator[Image.Image]:
    """The image with only its header read, its size checked against limits.MAX_PIXELS. Pillow's own
    decompression-bomb guard (a warning, then an error, far above limits.MAX_PIXELS, without saying the
    size) is off while the header is read: the check here supersedes it."""
    guard = Image.MAX_IMAGE_PIXELS
    try:
        Image.MAX_IMAGE_PIXELS = None
        with Image.open(path) as img:
            Image.MAX_IMAGE_PIXELS = guard
            check_pixels(path, img.height, img.width, getattr(img, "n_frames", 1) if img.format == "TIFF" else 1)
            yield img
    except Image.DecompressionBombError:
        raise InputError(f"{path}: image header claims over spurspec's limit of {limits.MAX_PIXELS:,} pixels; not decoded") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise InputError(f"{path}: unreadable {what} ({why(exc)})") from None
    finally:
        Image.MAX_IMAGE_PIXELS = guard


def _read_pillow(path: Path, draft_size: int | None) -> tuple[np.ndarray, tuple[int, int]]:
    with open_pillow(path, "image") as img:
        orig = (img.height, img.width)
        if draft_size is not None and img.format == "JPEG":
            img.draft(img.mode, (draft_size, draft_size))
        img.load()
        arr = _pillow_array(img)
    return arr, orig


def _pillow_array(img: Image.Image) -> np.ndarray:
    if img.mode in ("L", "I;16", "I;16B", "I", "F"):
        return np.asarray(img)
    if img.mode == "1":
        return np.asarray(img, dtype=np.uint8) * 255
    if img.mode in ("LA", "La"):
        return np.asarray(img.convert("L"))
    return np.asarray(img.convert("RGB"))


def _read_nifti(path: Path) -> np.ndarray:
    """A 2-D NIfTI, or one slice of a volume. Axes are kept as stored (first axis = rows), so an
    image and a mask written the same way line up. Singleton axes are dropped; a true volume gives
    its middle slice along the last axis, for images and masks alike. Only that slice is read (its
    size checked first), so a header claiming a huge volume costs nothing."""
    import nibabel as nib

    try:
        img = nib.load(str(path))
        shape = tuple(int(d) for d in img.shape)
    except Exception as exc:  # nibabel raises many types for corrupt or truncated files
        raise InputError(f"{path}: unreadable NIfTI ({why(exc)})") from None
    axes = [i for i, d in enumerate(shape) if d != 1]
    if len(axes) not in (2, 3):
        raise InputError(f"{path}: expected a 2-D NIfTI image or one volume, got shape {shape}")
    check_pixels(path, shape[axes[0]], shape[axes[1]])
    index: list[int | slice] = [0] * len(shape)
    index[axes[0]] = index[axes[1]] = slice(None)
    if len(axes) == 3:
        index[axes[2]] = shape[axes[2]] // 2
    try:
        arr = np.asanyarray(img.dataobj[tuple(index)])
    except Exception as exc:  # a truncated or corrupt data block, in assorted types
        raise InputError(f"{path}: unreadable NIfTI ({why(exc)})") from None
    return np.ascontiguousarray(np.squeeze(arr).reshape(shape[axes[0]], shape[axes[1]]))


def to_channels(arr: np.ndarray, channels: int) -> np.ndarray:
    """(H, W) or (H, W, 3) -> (H, W) for channels=1 (luma) or (H, W, 3) for channels=3."""
    if channels == 1:
        if arr.ndim == 3:
            return np.clip(np.rint(arr[..., :3].astype(np.float64) @ _LUMA), 0, 255).astype(np.uint8)
        return arr
    if arr.ndim == 2:
        return np.repeat(arr[:, :, None], 3, axis=2)
    return arr[..., :3]


def check_mask_values(arr: np.ndarray, where: object) -> np.ndarray:
    """0/1 or 0/255 -> bool; any other value set is an InputError saying what was found."""
    values = np.unique(arr)
    if np.isin(values, (0, 1)).all() or np.isin(values, (0, 255)).all():
        return arr > 0
    shown = ", ".join(f"{v:g}" for v in values[:8].astype(float)) + (", ..." if len(values) > 8 else "")
    raise InputError(f"{where}: mask values must be {{0,1}} or {{0,255}}, found {{{shown}}}")


def read_mask(path: Path) -> np.ndarray:
    """A binary mask file (PNG/other Pillow formats, NIfTI, DICOM) -> bool (H, W)."""
    path = Path(path)
    _exists(path)
    kind = kind_of(path)
    if kind == "nifti":
        arr = _read_nifti(path)
    elif kind == "dicom":
        arr = _dicom_mask(path)
    else:
        with open_pillow(path, "mask") as img:
            img.load()
            arr = np.asarray(img.convert("L")) if img.mode in ("RGB", "RGBA", "P", "LA") else _pillow_array(img)
    if arr.ndim != 2:
        raise InputError(f"{path}: a mask must be 2-D, got shape {arr.shape}")
    return check_mask_values(arr, path)


def _dicom_mask(path: Path) -> np.ndarray:
    """A DICOM mask's stored values, unscaled (decode() would stretch 0/1 to 0/255 anyway)."""
    from spurspec.imaging import dicom

    ds = dicom.read_header(path)
    try:
        return np.asarray(ds.pixel_array)
    except Exception as exc:  # pydicom's decoders raise many types on corrupt pixel data
        raise InputError(f"{path}: unreadable DICOM pixel data ({why(exc)})") from None


def mask_from_rle(text: str, height: int, width: int, where: object) -> np.ndarray:
    """A SIIM-style RLE string at the image's original size -> bool (H, W)."""
    try:
        return rle.decode(text, height, width)
    except InputError as exc:
        raise InputError(f"{where}: {exc}") from None
