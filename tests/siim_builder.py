"""Test and benchmark helper: write SIIM-format folders (JPEG-Baseline 8-bit MONOCHROME2 DICOMs
in the stage-1 nested or stage-2 flat layout, plus an RLE label CSV) around real label rows.
`write_folder` paints the same kind of film whatever the label (for ingest tests);
`write_learnable` paints each film's pneumothorax inside its real mask and a chest tube where it
has one, so models can learn from it (tests/benchmarks/study_sim.py)."""

from __future__ import annotations

import csv
import gzip
import io
from collections import defaultdict
from dataclasses import dataclass
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


# A learnable SIIM-format set. The writers above paint one smooth image whatever the label, so no
# model can learn from them. The renderer below paints each film's pneumothorax inside the image's
# real (1024-px) SIIM mask and draws a chest tube where the image has one, so a model can learn
# the abnormality from pixels, and an image-label model can learn the tube instead of it.

# P(tube | label) among the study's 1,951 tube-labelled images: 333 of 453 pneumothorax images,
# 192 of 1,498 negatives. Unlabelled (training) images draw tubes at these rates, so the training
# split is confounded as the real one is; tube-labelled images keep their real labels.
STUDY_TUBE_RATES = {1: 333 / 453, 0: 192 / 1498}


@dataclass(frozen=True)
class Look:
    """Strengths in grey levels (0-255) at the film's own size. The defaults make the
    pneumothorax a faint, texture-free darker region with a faint pleural line, and the tube a
    clear bright line: the study's situation, where the tube is the easier feature to read."""

    air: float = 14.0  # how much darker the pneumothorax is than the lung around it
    pleura: float = 18.0  # brightness of the pleural line along the region's edge
    texture: float = 10.0  # sd of the lung markings, which the pneumothorax region loses
    tube: float = 55.0  # peak brightness of the tube's radio-opaque stripe


def _smooth_noise(shape: tuple[int, int], rng: np.random.Generator, low: float, high: float) -> np.ndarray:
    """Unit-sd noise keeping spatial frequencies between `low` and `high` cycles per image."""
    f = np.hypot(*np.meshgrid(np.fft.fftfreq(shape[0]) * shape[0], np.fft.rfftfreq(shape[1]) * shape[1], indexing="ij"))
    spectrum = np.fft.rfft2(rng.standard_normal(shape)) * ((f >= low) & (f <= high))
    out = np.fft.irfft2(spectrum, s=shape)
    return (out / (out.std() + 1e-9)).astype(np.float32)


def _upsample(small: np.ndarray, size: int) -> np.ndarray:
    from scipy.ndimage import zoom

    return zoom(small, size / small.shape[0], order=1)[:size, :size]


def chest_film(size: int, rng: np.random.Generator, look: Look) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A radiograph-like film as float32 layers (soft tissue and lungs, lung markings, ribs), each
    (size, size): the pneumothorax removes markings but not ribs, which lie in front. The smooth
    layers are drawn at 256 px and upsampled (they hold no finer detail)."""
    from scipy.special import expit

    y, x = np.mgrid[0:256, 0:256].astype(np.float32) / 256
    base = 25 + 150 * expit((0.47 - np.abs(x - 0.5)) / 0.01)  # dark air beside the body
    lungs = np.zeros_like(base)
    for cx in (0.29, 0.71):
        cx += rng.uniform(-0.01, 0.01)
        # Where the real SIIM masks lie: lungs from about 0.1 to 0.47 of the width, 0.06 to 0.86 of the height.
        r = ((x - cx) / (0.19 * rng.uniform(0.95, 1.05))) ** 2 + ((y - 0.46) / (0.40 * rng.uniform(0.95, 1.05))) ** 2
        lungs = np.maximum(lungs, expit((1 - np.sqrt(r)) / 0.04))
    base -= 80 * lungs
    base += 40 * np.exp(-(((x - 0.5) / 0.06) ** 2)) + 30 * np.exp(-(((x - 0.57) / 0.12) ** 2 + ((y - 0.66) / 0.12) ** 2))
    ribs = np.zeros_like(base)
    for side in (-1, 1):
        ux = (x - 0.5) * side  # 0 at the spine, positive toward this side's chest wall
        for k in range(9):
            centre = 0.1 + 0.075 * k + 0.55 * (ux - 0.2) ** 2 - 0.15 * ux + rng.uniform(-0.01, 0.01)
            ribs += 12 * np.exp(-(((y - centre) / 0.011) ** 2)) * (ux > 0.03) * (ux < 0.47)
    markings = look.texture * lungs * _smooth_noise((256, 256), rng, 8, 60)
    return _upsample(base, size), _upsample(markings, size), _upsample(ribs * (0.3 + 0.7 * lungs), size)


def paint_pneumothorax(base: np.ndarray, markings: np.ndarray, mask: np.ndarray, look: Look) -> None:
    """In place: inside `mask` (bool, the film's size) the lung loses its markings and darkens
    (air), and a thin bright pleural line runs along the region's edge."""
    from scipy.ndimage import binary_erosion, gaussian_filter

    rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
    pad = 8
    r0, r1 = max(rows[0] - pad, 0), min(rows[-1] + pad + 1, mask.shape[0])
    c0, c1 = max(cols[0] - pad, 0), min(cols[-1] + pad + 1, mask.shape[1])
    m = mask[r0:r1, c0:c1]
    soft = gaussian_filter(m.astype(np.float32), 1.5)
    edge = gaussian_filter((m & ~binary_erosion(m, iterations=3)).astype(np.float32), 1.0)
    markings[r0:r1, c0:c1] *= 1 - soft
    base[r0:r1, c0:c1] += -look.air * soft + look.pleura * edge


def _bezier(points: list[tuple[float, float]], n: int) -> np.ndarray:
    t = np.linspace(0, 1, n)[:, None]
    p0, p1, p2 = (np.array(p, dtype=np.float64) for p in points)
    return (1 - t) ** 2 * p0 + 2 * (1 - t) * t * p1 + t**2 * p2


def draw_tube(img: np.ndarray, side: int, rng: np.random.Generator, look: Look) -> None:
    """In place: a chest tube on `side` (-1 image left, 1 image right): outside tubing from the
    lower image edge to the lateral chest wall, then curving up inside the chest toward the apex.
    Profile: a faint lumen, brighter walls, and a bright radio-opaque stripe along its centre."""
    from scipy.ndimage import distance_transform_edt
    from scipy.special import expit

    size = img.shape[0]
    at = lambda u, v: (0.5 + side * (0.5 - u), v)  # noqa: E731 (u measured from that side's wall)
    entry = at(rng.uniform(0.06, 0.12), rng.uniform(0.55, 0.72))
    tip = at(rng.uniform(0.2, 0.34), rng.uniform(0.1, 0.22))
    bend = at(rng.uniform(0.08, 0.14), rng.uniform(0.25, 0.4))
    outside = [at(rng.uniform(0.0, 0.08), 1.0), at(rng.uniform(0.0, 0.05), rng.uniform(0.8, 0.9)), entry]
    path = np.concatenate([_bezier(outside, 2 * size), _bezier([entry, bend, tip], 2 * size)]) * size
    radius = rng.uniform(6, 10) * size / 1024
    c0, r0 = (np.floor(path.min(0)) - 4 * radius).astype(int).clip(0)  # path is (x, y)
    c1, r1 = (np.ceil(path.max(0)) + 4 * radius).astype(int).clip(max=size)
    line = np.ones((r1 - r0, c1 - c0), dtype=bool)
    pts = np.round(path - [c0, r0]).astype(int)
    ok = (pts[:, 0] >= 0) & (pts[:, 0] < c1 - c0) & (pts[:, 1] >= 0) & (pts[:, 1] < r1 - r0)
    line[pts[ok, 1], pts[ok, 0]] = False
    d = distance_transform_edt(line).astype(np.float32)
    width = max(radius / 5, 0.8)
    profile = (0.25 * expit((radius - d) / 0.7) + 0.45 * np.exp(-(((d - radius) / width) ** 2))
               + np.exp(-((d / (1.5 * width)) ** 2)))
    img[r0:r1, c0:c1] += look.tube * rng.uniform(0.8, 1.2) * profile


def render_film(mask: np.ndarray | None, tube: bool, seed: int, size: int = 1024, look: Look = Look()) -> np.ndarray:
    """One uint8 film: pneumothorax inside `mask` (bool (size, size), None for a negative), a
    chest tube when `tube` (on the pneumothorax's side, else either), noise and exposure jitter."""
    rng = np.random.default_rng(seed)
    base, markings, ribs = chest_film(size, rng, look)
    side = int(rng.choice([-1, 1]))
    if mask is not None and mask.any():
        paint_pneumothorax(base, markings, mask, look)
        side = -1 if np.flatnonzero(mask.any(0)).mean() < size / 2 else 1
    img = base + markings + ribs
    if tube:
        draw_tube(img, side, rng, look)
    img += 4 * _upsample(_smooth_noise((128, 128), rng, 8, 64), size) + rng.normal(0, 3, img.shape).astype(np.float32)
    img = rng.uniform(0.85, 1.15) * (img - 110) + 110 + rng.uniform(-12, 12)
    return np.clip(img, 0, 255).astype(np.uint8)


def learnable_pick(real_data: Path, train_pos: int, train_neg: int, labelled: int | None, seed: int) -> list[str]:
    """ImageIds: `train_pos` + `train_neg` images without a tube label (these train) and
    `labelled` tube-labelled images (all 1,951 when None), the latter stratified by label x tube
    so val/test keep the study's robust-cell proportions. Seeded."""
    rows, tubes = real_rows(real_data), real_tubes(real_data)
    rng = np.random.default_rng(seed)
    free = sorted(i for i in rows if i not in tubes)
    pos = [i for i in free if rows[i] != ["-1"]]
    neg = [i for i in free if rows[i] == ["-1"]]
    chosen = list(rng.choice(pos, train_pos, replace=False)) + list(rng.choice(neg, train_neg, replace=False))
    cells: dict[tuple[int, int], list[str]] = defaultdict(list)
    for i in sorted(tubes):
        cells[(int(rows[i] != ["-1"]), tubes[i])].append(i)
    for key in sorted(cells):
        n = len(cells[key]) if labelled is None else round(labelled * len(cells[key]) / len(tubes))
        chosen += list(rng.choice(cells[key], n, replace=False))
    return [str(i) for i in chosen]


def _learnable_item(args: tuple) -> tuple[str, bytes]:
    image_id, texts, tube, seed, look = args
    from spurspec.imaging import rle

    mask = None if texts == ["-1"] else rle.union(texts, 1024, 1024)
    pixels = render_film(mask, tube, seed, 1024, look)
    patient = generate_uid(entropy_srcs=[image_id, "patient"]).rsplit(".", 1)[-1]
    return image_id, jpeg_dicom_bytes(pixels, image_id, patient)


def write_learnable(root: Path, real_data: Path, image_ids: list[str], seed: int = 0, look: Look = Look(),
                    workers: int = 1) -> dict[str, int]:
    """Write a stage-1 SIIM folder of 1024-px films (the real masks' size) for `image_ids`, with
    their real RLE rows in train-rle.csv and `tube_labels.csv` (ImageId,chest_tube) for the
    tube-labelled ones only, as the real data has. Returns every image's drawn tube (0/1)."""
    from concurrent.futures import ProcessPoolExecutor

    rows, tubes = real_rows(real_data), real_tubes(real_data)
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    drawn = {}
    for image_id in image_ids:
        label = int(rows[image_id] != ["-1"])
        drawn[image_id] = tubes[image_id] if image_id in tubes else int(rng.uniform() < STUDY_TUBE_RATES[label])
    with open(root / "train-rle.csv", "w", newline="") as fh:
        fh.write("ImageId, EncodedPixels\n")
        fh.writelines(f"{i},{text}\n" for i in image_ids for text in rows[i])
    with open(root / "tube_labels.csv", "w", newline="") as fh:
        fh.write("ImageId,chest_tube\n")
        fh.writelines(f"{i},{tubes[i]}\n" for i in image_ids if i in tubes)
    jobs = [(i, rows[i], bool(drawn[i]), seed * 1_000_003 + k, look) for k, i in enumerate(image_ids)]
    with ProcessPoolExecutor(workers) as pool:
        for image_id, data in pool.map(_learnable_item, jobs, chunksize=8):
            path = dicom_path(root, image_id, "stage1")
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
    return drawn
