"""Decode one DICOM file into an 8-bit grey image plus the header facts the manifest keeps.

Reads a .dcm path; returns uint8 pixels (full size or resized to the training size) and
PatientID / ViewPosition / sex / age / rows / cols. SIIM's JPEG-Baseline 8-bit frames take a fast
path (Pillow with scaled DCT decoding); every other transfer syntax goes through pydicom."""

from __future__ import annotations

import io
import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
from PIL import Image
from pydicom.errors import InvalidDicomError

from spurspec.errors import InputError
from spurspec.imaging.limits import check_pixels, input_fault, why
from spurspec.imaging.resize import resize_image

JPEG_BASELINE = "1.2.840.10008.1.2.4.50"
MONOCHROME = ("MONOCHROME1", "MONOCHROME2")
# Percentiles that map to black and white when a >8-bit image carries no window or VOI LUT:
# ignoring the extreme 0.5% keeps burned-in labels and collimator edges from flattening contrast.
PERCENTILES = (0.5, 99.5)
# Ages beyond this are data-entry errors (SIIM holds a few, e.g. 413): recorded as unknown.
MAX_AGE = 120
_AGE = re.compile(r"^\s*0*(\d{1,3})\s*([DWMY]?)\s*$", re.IGNORECASE)
_DAYS_PER_UNIT = {"D": 1.0, "W": 7.0, "M": 365.25 / 12, "Y": 365.25, "": 365.25}


@dataclass(frozen=True)
class DicomFacts:
    """Header facts kept in the manifest (None where the tag is absent or unusable)."""

    patient_id: str | None
    view_position: str | None
    sex: str | None
    age: int | None
    rows: int
    cols: int
    fast_path: bool

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def parse_age(value: object) -> int | None:
    """Age in whole years from a lenient PatientAge: '38' -> 38, '038Y' -> 38, '6M' -> 0."""
    if value is None:
        return None
    m = _AGE.match(str(value))
    if not m:
        return None
    years = int(int(m.group(1)) * _DAYS_PER_UNIT[m.group(2).upper()] // 365.25)
    return years if years <= MAX_AGE else None


def _text(ds: pydicom.Dataset, keyword: str) -> str | None:
    value = ds.get(keyword)
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def _facts(ds: pydicom.Dataset, fast: bool) -> DicomFacts:
    return DicomFacts(
        patient_id=_text(ds, "PatientID"),
        view_position=_text(ds, "ViewPosition"),
        sex=_text(ds, "PatientSex"),
        age=parse_age(ds.get("PatientAge")),
        rows=int(ds.Rows),
        cols=int(ds.Columns),
        fast_path=fast,
    )


def read_header(path: Path) -> pydicom.Dataset:
    """Parse the file (pixel data stays encoded); InputError naming the file if it is not a
    readable DICOM image."""
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            ds = pydicom.dcmread(path)
    except InvalidDicomError:
        raise InputError(f"{path}: not a DICOM file (no DICM preamble)") from None
    except FileNotFoundError:
        raise InputError(f"{path}: file not found") from None
    except OSError as exc:  # a symbolic link loop, no permission: named as such
        raise (input_fault(exc, path) or InputError(f"{path}: unreadable DICOM ({why(exc)})")) from None
    # pydicom raises many exception types on truncated or corrupt element streams.
    except Exception as exc:
        raise InputError(f"{path}: unreadable DICOM ({why(exc)})") from None
    # pydicom reads a cut-off file up to the cut and only warns; a missing end is corruption.
    if any("End of file reached" in str(w.message) for w in caught):
        raise InputError(f"{path}: truncated DICOM (the file ends inside an element)")
    if "PixelData" not in ds:
        if "Rows" not in ds:
            raise InputError(f"{path}: DICOM has no image (no pixel data or image tags; truncated?)")
        raise InputError(f"{path}: DICOM has no pixel data")
    for tag in ("Rows", "Columns", "PhotometricInterpretation"):
        if tag not in ds:
            raise InputError(f"{path}: DICOM image lacks {tag}")
    try:
        frames = int(ds.get("NumberOfFrames", 1) or 1)
        check_pixels(path, int(ds.Rows), int(ds.Columns), frames)  # pydicom decodes every frame
    except (TypeError, ValueError):
        raise InputError(f"{path}: DICOM Rows, Columns or NumberOfFrames is not a number") from None
    return ds


def _fast_path_ok(ds: pydicom.Dataset) -> bool:
    """SIIM's case: one JPEG-Baseline frame, 8-bit, one sample, monochrome."""
    meta = getattr(ds, "file_meta", None)
    syntax = str(getattr(meta, "TransferSyntaxUID", "")) if meta is not None else ""
    return (
        syntax == JPEG_BASELINE
        and int(ds.get("SamplesPerPixel", 1)) == 1
        and int(ds.get("BitsAllocated", 8)) == 8
        and int(ds.get("NumberOfFrames", 1) or 1) == 1
        and str(ds.PhotometricInterpretation) in MONOCHROME
    )


def _decode_jpeg(path: Path, ds: pydicom.Dataset, size: int | None) -> np.ndarray:
    """Decode the encapsulated JPEG frame with Pillow. When the target is at most half the source,
    `draft` asks libjpeg for a reduced DCT scale (1/2, 1/4, 1/8), which skips most of the inverse
    DCT work and acts as an area average; a final resize lands exactly on `size`."""
    try:
        frame = pydicom.encaps.get_frame(ds.PixelData, 0, number_of_frames=1)
        img = Image.open(io.BytesIO(frame))
        if img.size != (int(ds.Columns), int(ds.Rows)):
            raise InputError(f"{path}: JPEG frame is {img.size[0]}x{img.size[1]} but the header says {ds.Columns}x{ds.Rows}")
        if size is not None and 2 * size <= min(img.size):
            img.draft("L", (size, size))
        img.load()
    except InputError:
        raise
    # Pillow/libjpeg raise OSError, ValueError or SyntaxError on truncated or corrupt streams.
    except Exception as exc:
        raise InputError(f"{path}: corrupt JPEG pixel data ({why(exc)})") from None
    if img.mode != "L":
        img = img.convert("L")
    return np.asarray(img, dtype=np.uint8)


def _window(arr: np.ndarray, ds: pydicom.Dataset) -> np.ndarray | None:
    """The DICOM VOI window (PS3.3 C.11.2.1.2) mapped straight to [0, 1]; None if absent/unusable."""
    center, width = ds.get("WindowCenter"), ds.get("WindowWidth")
    if center is None or width is None:
        return None
    c = float(center[0] if isinstance(center, pydicom.multival.MultiValue) else center)
    w = float(width[0] if isinstance(width, pydicom.multival.MultiValue) else width)
    function = str(ds.get("VOILUTFunction", "LINEAR")).upper()
    x = arr.astype(np.float64)
    if function == "SIGMOID":
        return 1.0 / (1.0 + np.exp(-4.0 * (x - c) / max(w, 1e-6)))
    if function == "LINEAR_EXACT":
        return np.clip((x - c) / max(w, 1e-6) + 0.5, 0.0, 1.0) if w > 0 else None
    if w < 1:
        return None
    return np.clip((x - (c - 0.5)) / max(w - 1.0, 1e-6) + 0.5, 0.0, 1.0)


def to_uint8(arr: np.ndarray, ds: pydicom.Dataset) -> np.ndarray:
    """Stored values -> display grey levels: 8-bit data as stored; deeper data through the
    modality LUT, then the VOI LUT or window, else percentile scaling. MONOCHROME1 is inverted
    last, so black is always 'no attenuation'."""
    if arr.dtype == np.uint8:
        out = arr
    else:
        values = pydicom.pixels.apply_modality_lut(arr, ds)
        unit = None
        if "VOILUTSequence" in ds:
            lut = pydicom.pixels.apply_voi_lut(values, ds, prefer_lut=True)
            bits = int(ds.VOILUTSequence[0].LUTDescriptor[2]) or 16
            unit = np.clip(lut.astype(np.float64) / (2**bits - 1), 0.0, 1.0)
        if unit is None:
            unit = _window(values, ds)
        if unit is None:
            lo, hi = np.percentile(values, PERCENTILES)
            unit = np.clip((values.astype(np.float64) - lo) / max(hi - lo, 1e-6), 0.0, 1.0)
        out = np.rint(unit * 255.0).astype(np.uint8)
    if str(ds.PhotometricInterpretation) == "MONOCHROME1":
        out = 255 - out
    return out


def _decode_general(path: Path, ds: pydicom.Dataset) -> np.ndarray:
    try:
        arr = ds.pixel_array
    # Each pixel-data handler raises its own exception types for missing decoders or bad data.
    except Exception as exc:
        raise InputError(f"{path}: cannot decode pixel data ({why(exc)})") from None
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    samples = int(ds.get("SamplesPerPixel", 1))
    if frames > 1:
        arr = arr[0]  # a radiograph series stores one projection per frame; keep the first
    if samples > 1:
        # pydicom returns RGB for colour data; the study's images are grey, so take luminance.
        arr = np.rint(arr[..., :3].astype(np.float64) @ np.array([0.299, 0.587, 0.114])).astype(np.uint8)
        return arr
    if arr.ndim != 2:
        raise InputError(f"{path}: expected a 2-D image, got pixel array of shape {arr.shape}")
    return to_uint8(arr, ds)


def decode(path: Path, size: int | None = None) -> tuple[np.ndarray, DicomFacts]:
    """uint8 (H, W) at full resolution (size None) or (size, size), plus the header facts."""
    path = Path(path)
    ds = read_header(path)
    fast = _fast_path_ok(ds)
    if fast:
        pixels = _decode_jpeg(path, ds, size)
        if str(ds.PhotometricInterpretation) == "MONOCHROME1":
            pixels = 255 - pixels
    else:
        pixels = _decode_general(path, ds)
    if size is not None:
        pixels = resize_image(pixels, size)[0]
    return pixels, _facts(ds, fast)
