"""Test helper: write ISIC-2018-format folders (JPEG images and `_segmentation.png` lesion masks
under the challenge's folder names), artefact annotations in Bissoto et al.'s published format
(isic_bias.csv, ';'-separated) and trap-set files (isic_annotated_{split}{seed}.csv), all made up."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
from PIL import Image

from spurspec.datasets.isic import ARTEFACTS, IMAGES_DIR, MASKS_DIR

H, W = 12, 16  # the images' size: small, and not square, as ISIC's are not
HEADER = ["", "image", *ARTEFACTS, "label", "label_string"]  # isic_bias.csv
TRAP_HEADER = ["", "image", *ARTEFACTS, "vasc", "label", "label_string"]  # the trap-set files


def write_folder(root: Path, ids: list[str], segmentation_caps: set[str] | tuple = ()) -> None:
    """One random RGB JPEG and one lesion mask (a rectangle that varies with the image) per id;
    ids in `segmentation_caps` get the `_Segmentation` spelling some released masks have."""
    (root / IMAGES_DIR).mkdir(parents=True)
    (root / MASKS_DIR).mkdir(parents=True)
    rng = np.random.default_rng(0)
    for n, image_id in enumerate(ids):
        Image.fromarray(rng.integers(0, 255, (H, W, 3), dtype=np.uint8)).save(root / IMAGES_DIR / f"{image_id}.jpg", quality=90)
        m = np.zeros((H, W), np.uint8)
        m[2 + n % 3 : 9, 3 : 12 - n % 4] = 255
        spelling = "_Segmentation" if image_id in segmentation_caps else "_segmentation"
        Image.fromarray(m).save(root / MASKS_DIR / f"{image_id}{spelling}.png")


def bias_rows(ids: list[str]) -> list[list]:
    """isic_bias.csv rows: image n has the artefacts of n's bits and label n % 2."""
    rows = []
    for n, i in enumerate(ids):
        arts = [(n >> b) & 1 for b in range(len(ARTEFACTS))]
        rows.append([n, f"{i}.png", *arts, n % 2, "malignant" if n % 2 else "benign"])
    return rows


def write_csv(path: Path, header: list[str], rows: list[list], delimiter: str) -> None:
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh, delimiter=delimiter)
        w.writerow(header)
        w.writerows(rows)


def write_trap_set(folder: Path, seed: int, train: list[list], val: list[list], test: list[list]) -> None:
    """The three files of trap set `seed` from bias_rows rows (a `vasc` column added, as published;
    the published val rows are a subset of train)."""
    folder.mkdir(parents=True, exist_ok=True)
    with_vasc = lambda rows: [[*r[:9], 0, *r[9:]] for r in rows]  # noqa: E731
    for split, rows in (("train", train), ("val", val), ("test", test)):
        write_csv(folder / f"isic_annotated_{split}{seed}.csv", TRAP_HEADER, with_vasc(rows), ",")
