"""DICOM decoding: the JPEG-Baseline fast path against pydicom's full decode, the general path
for other syntaxes and bit depths (window, percentile, MONOCHROME1), header facts, the real
MONOCHROME1 16-bit radiograph RG1_UNCR.dcm, and clear errors for broken files."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pydicom
import pytest
from PIL import Image
from pydicom.dataset import FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage
from siim_builder import chest_like, jpeg_dicom_bytes

from spurspec.errors import InputError
from spurspec.imaging import dicom
from spurspec.imaging.resize import resize_image


def _write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def _raw_dicom(tmp_path: Path, arr: np.ndarray, photometric: str = "MONOCHROME2", bits: int = 16, **tags) -> Path:
    """An uncompressed (Explicit VR Little Endian) DICOM of `arr`."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    meta.MediaStorageSOPInstanceUID = "1.2.3.4"
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = pydicom.Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = SecondaryCaptureImageStorage, "1.2.3.4"
    ds.Rows, ds.Columns = arr.shape
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, photometric
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, bits, bits - 1, 0
    for key, value in tags.items():
        setattr(ds, key, value)
    ds.PixelData = arr.astype(np.uint16).tobytes()
    path = tmp_path / "raw.dcm"
    ds.save_as(path, enforce_file_format=True)
    return path


@pytest.mark.parametrize(
    ("text", "years"),
    [("38", 38), ("038Y", 38), (" 61 ", 61), ("6M", 0), ("030M", 2), ("14D", 0), ("413", None), ("", None), ("abc", None), (None, None)],
)
def test_parse_age(text, years):
    assert dicom.parse_age(text) == years


def test_fast_path_matches_full_decode_at_1024(tmp_path):
    pixels = chest_like(1024, 1024, 3)
    path = _write(tmp_path, "a.dcm", jpeg_dicom_bytes(pixels, "1.2.3", "P7", view="AP", sex="F", age="038Y"))
    fast, facts = dicom.decode(path, 256)
    assert facts.fast_path and fast.shape == (256, 256) and fast.dtype == np.uint8
    reference = resize_image(pydicom.dcmread(path).pixel_array, 256)[0]
    assert np.abs(fast.astype(int) - reference).mean() < 1.0
    assert (facts.patient_id, facts.view_position, facts.sex, facts.age, facts.rows, facts.cols) == ("P7", "AP", "F", 38, 1024, 1024)


def test_fast_path_without_draft_and_full_size(tmp_path):
    pixels = chest_like(96, 128, 1)
    path = _write(tmp_path, "a.dcm", jpeg_dicom_bytes(pixels, "1.2.3", "P"))
    full, facts = dicom.decode(path)
    assert full.shape == (96, 128) and facts.fast_path
    assert np.abs(full.astype(int) - pydicom.dcmread(path).pixel_array).max() <= 2
    small, _ = dicom.decode(path, 64)  # 64 > 96 / 2: no DCT scaling, plain resize
    assert np.abs(small.astype(int) - resize_image(full, 64)[0]).max() <= 1


def test_fast_path_inverts_monochrome1(tmp_path):
    pixels = chest_like(64, 64, 2)
    m2 = _write(tmp_path, "m2.dcm", jpeg_dicom_bytes(pixels, "1.2.3", "P"))
    m1 = _write(tmp_path, "m1.dcm", jpeg_dicom_bytes(pixels, "1.2.4", "P", photometric="MONOCHROME1"))
    a, _ = dicom.decode(m2)
    b, _ = dicom.decode(m1)
    assert np.array_equal(b, 255 - a)


def test_16bit_without_window_uses_percentiles(tmp_path):
    arr = np.arange(64 * 64, dtype=np.uint16).reshape(64, 64) * 10
    out, facts = dicom.decode(_raw_dicom(tmp_path, arr))
    assert not facts.fast_path and out.dtype == np.uint8
    lo, hi = np.percentile(arr, dicom.PERCENTILES)
    assert out[arr <= lo].max() == 0 and out[arr >= hi].min() == 255
    assert np.all(np.diff(out.reshape(-1).astype(int)) >= 0)  # monotone in the stored value


def test_12bit_window_and_monochrome1(tmp_path):
    arr = np.tile(np.linspace(0, 4095, 64).astype(np.uint16), (8, 1))
    out2, _ = dicom.decode(_raw_dicom(tmp_path, arr, bits=12, WindowCenter=2048, WindowWidth=1024))
    assert out2[0, arr[0] < 1536].max() == 0 and out2[0, arr[0] > 2560].min() == 255
    inside = (arr[0] > 1600) & (arr[0] < 2500)  # PS3.3 C.11.2.1.2: (x - (c - 0.5)) / (w - 1) + 0.5
    expected = ((arr[0, inside] - 2047.5) / 1023 + 0.5) * 255
    assert np.abs(out2[0, inside] - expected).max() <= 0.5 + 1e-9
    out1, _ = dicom.decode(_raw_dicom(tmp_path, arr, photometric="MONOCHROME1", bits=12, WindowCenter=2048, WindowWidth=1024))
    assert np.array_equal(out1, 255 - out2)


@pytest.mark.parametrize("name", ["CT_small.dcm", "MR_small_jpeg_ls_lossless.dcm", "MR_small_RLE.dcm", "SC_rgb.dcm"])
def test_other_transfer_syntaxes(name):
    out, facts = dicom.decode(Path(pydicom.data.get_testdata_file(name)), 32)
    assert out.shape == (32, 32) and out.dtype == np.uint8 and not facts.fast_path
    assert int(out.max()) - int(out.min()) > 100


def test_real_radiograph_rg1_uncr():
    """CR chest PA, MONOCHROME1, 16-bit stored: high stored values must come out dark."""
    path = Path(pydicom.data.get_testdata_file("RG1_UNCR.dcm"))
    raw = pydicom.dcmread(path).pixel_array.astype(np.float64)
    out, facts = dicom.decode(path)
    assert out.shape == raw.shape == (1955, 1841) and out.dtype == np.uint8
    assert (facts.sex, facts.view_position, facts.patient_id) == ("F", "PA", "9RG1")
    assert int(out.max()) - int(out.min()) > 180  # uses most of the 8-bit range
    assert np.corrcoef(raw[::8, ::8].ravel(), out[::8, ::8].ravel().astype(float))[0, 1] < -0.99
    assert out[raw >= np.percentile(raw, 99.9)].mean() < out.mean() < out[raw <= np.percentile(raw, 0.1)].mean()
    small, _ = dicom.decode(path, 256)
    lungs = np.r_[small[80:150, 50:95].ravel(), small[80:150, 160:205].ravel()]
    spine = small[80:150, 120:136]
    assert lungs.mean() < spine.mean() - 20  # air is dark, bone is bright: shown the right way round


def _jpeg_cut_in_half(tmp_path: Path) -> Path:
    data = jpeg_dicom_bytes(chest_like(128, 128, 0), "1.2.3", "P")
    ds = pydicom.dcmread(io.BytesIO(data))
    buf = io.BytesIO()
    Image.fromarray(chest_like(128, 128, 0)).save(buf, format="JPEG")
    ds.PixelData = pydicom.encaps.encapsulate([buf.getvalue()[: len(buf.getvalue()) // 2]])
    path = tmp_path / "cut.dcm"
    ds.save_as(path)
    return path


def _no_pixels(tmp_path: Path) -> Path:
    ds = pydicom.dcmread(io.BytesIO(jpeg_dicom_bytes(chest_like(32, 32, 0), "1.2.3", "P")))
    del ds.PixelData
    path = tmp_path / "nopix.dcm"
    ds.save_as(path)
    return path


@pytest.mark.parametrize(
    ("make", "why"),
    [
        (lambda d: _write(d, "text.dcm", b"not a dicom at all" * 20), "not a DICOM file"),
        (lambda d: _write(d, "empty.dcm", b""), "not a DICOM file"),
        (lambda d: _write(d, "trunc.dcm", jpeg_dicom_bytes(chest_like(128, 128, 0), "1.2.3", "P")[:3000]), "truncated DICOM"),
        (_no_pixels, "no pixel data"),
        (_jpeg_cut_in_half, "corrupt JPEG pixel data"),
        (lambda d: Path(pydicom.data.get_testdata_file("JPEG-lossy.dcm")), "cannot decode pixel data"),
    ],
)
def test_broken_files_raise_input_error_naming_the_file(tmp_path, make, why):
    path = make(tmp_path)
    for size in (None, 32):
        with pytest.raises(InputError, match=why) as info:
            dicom.decode(path, size)
        message = str(info.value)
        assert message.startswith(f"{path}: ") and "\n" not in message
