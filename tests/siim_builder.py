"""Test and benchmark helper: write SIIM-format folders (JPEG-Baseline 8-bit MONOCHROME2 DICOMs
in the stage-1 nested or stage-2 flat layout, plus an RLE label CSV) around real label rows."""

from __future__ import annotations

import csv
import gzip
import io
from collections import defaultdict
from pathlib import Path

import numpy as np
import pydicom
from PIL import Image
from pydicom.dataelem import DataElement
from pydicom.dataset import FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.uid import JPEGBaseline8Bit, SecondaryCaptureImageStorage, generate_uid


def chest_like(height: int, width: int, seed: int) -> np.ndarray:
    """A smooth radiograph-like uint8 image (two dark lung fields, bright spine, mild noise)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    y, x = y / height, x / width
    img = 170 - 60 * np.exp(-(((x - 0.3) / 0.14) ** 2 + ((y - 0.5) / 0.3) ** 2))
    img -= 60 * np.exp(-(((x - 0.7) / 0.14) ** 2 + ((y - 0.5) / 0.3) ** 2))
    img += 50 * np.exp(-(((x - 0.5) / 0.05) ** 2))
    img += 25 * np.sin(2 * np.pi * (x * 7 + rng.uniform())) * np.cos(2 * np.pi * y * 5)
    img += rng.normal(0, 4, size=img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def jpeg_dicom_bytes(pixels: np.ndarray, sop_uid: str, patient_id: str, view: str = "PA", sex: str = "M",
                     age: str = "38", photometric: str = "MONOCHROME2", quality: int = 90) -> bytes:
    """A JPEG-Baseline 8-bit DICOM like SIIM's: the Pillow-encoded JPEG as one encapsulated frame."""
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="JPEG", quality=quality)
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    meta.MediaStorageSOPInstanceUID = sop_uid
    meta.TransferSyntaxUID = JPEGBaseline8Bit
    ds = pydicom.Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = SecondaryCaptureImageStorage
    ds.SOPInstanceUID = sop_uid
    ds.StudyInstanceUID = generate_uid(entropy_srcs=[sop_uid, "study"])
    ds.SeriesInstanceUID = generate_uid(entropy_srcs=[sop_uid, "series"])
    ds.Modality = "CR"
    ds.PatientID = patient_id
    ds.PatientSex = sex
    # SIIM writes ages like '38', which is not valid DICOM AS: store it as SIIM does, unchecked.
    ds.add(DataElement(0x00101010, "AS", age, validation_mode=pydicom.config.IGNORE))
    ds.ViewPosition = view
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = photometric
    ds.BitsAllocated = ds.BitsStored = 8
    ds.HighBit = 7
    ds.PixelRepresentation = 0
    ds.PixelData = encapsulate([buf.getvalue()])
    ds["PixelData"].VR = "OB"
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()


def dicom_path(root: Path, image_id: str, layout: str) -> Path:
    if layout == "stage1":
        study = generate_uid(entropy_srcs=[image_id, "study"])
        series = generate_uid(entropy_srcs=[image_id, "series"])
        return root / "dicom-images-train" / study / series / f"{image_id}.dcm"
    return root / "stage_2_images" / f"{image_id}.dcm"


def write_folder(root: Path, rows: list[tuple[str, str]], layout: str = "stage1", size: int = 1024,
                 patients: dict[str, str] | None = None, photometric: str = "MONOCHROME2") -> dict[str, Path]:
    """Write one DICOM per ImageId of `rows` ((ImageId, EncodedPixels), CSV order kept, the
    Kaggle header with its leading space) and the label CSV. Returns ImageId -> DICOM path."""
    root.mkdir(parents=True, exist_ok=True)
    csv_name = "train-rle.csv" if layout == "stage1" else "stage_2_train.csv"
    with open(root / csv_name, "w", newline="") as fh:
        fh.write("ImageId, EncodedPixels\n")
        for image_id, text in rows:
            fh.write(f"{image_id},{text}\n")
    paths = {}
    for k, image_id in enumerate(dict.fromkeys(r[0] for r in rows)):
        path = dicom_path(root, image_id, layout)
        path.parent.mkdir(parents=True, exist_ok=True)
        patient = (patients or {}).get(image_id, f"P{k:04d}")
        path.write_bytes(jpeg_dicom_bytes(chest_like(size, size, k), image_id, patient, sex="MF"[k % 2],
                                          age=str(20 + k), photometric=photometric))
        paths[image_id] = path
    return paths


def real_rows(real_data: Path) -> dict[str, list[str]]:
    """ImageId -> its EncodedPixels rows (stripped), from the real train-rle.csv.gz."""
    rows: dict[str, list[str]] = defaultdict(list)
    with gzip.open(real_data / "siim" / "train-rle.csv.gz", "rt") as fh:
        reader = csv.reader(fh)
        next(reader)
        for image_id, text in reader:
            rows[image_id.strip()].append(text.strip())
    return dict(rows)


def real_tubes(real_data: Path) -> dict[str, int]:
    with open(real_data / "siim" / "chest_tube_labels.csv") as fh:
        return {r["ImageId"]: int(r["chest_tube"]) for r in csv.DictReader(fh)}


def pick_real(real_data: Path, per_cell: int, untubed: int, multi_row: int = 1) -> tuple[list[tuple[str, str]], dict[str, int]]:
    """Real label rows for `per_cell` images of each label x chest_tube cell, `untubed` images
    without a tube label, and `multi_row` positives with several RLE rows (all in a stable order)."""
    rows, tubes = real_rows(real_data), real_tubes(real_data)
    chosen: list[str] = []
    cells: dict[tuple[int, int], list[str]] = defaultdict(list)
    for image_id in sorted(tubes):
        label = int(rows[image_id] != ["-1"])
        cells[(label, tubes[image_id])].append(image_id)
    for key in sorted(cells):
        chosen += cells[key][:per_cell]
    free = [i for i in sorted(rows) if i not in tubes]
    chosen += [i for i in free if len(rows[i]) > 1][:multi_row]
    chosen += [i for i in free if rows[i] == ["-1"]][: max(untubed - multi_row, 0)]
    out = [(i, text) for i in chosen for text in rows[i]]
    return out, {i: tubes[i] for i in chosen if i in tubes}
