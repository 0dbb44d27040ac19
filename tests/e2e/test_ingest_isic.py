"""`spurspec ingest isic` end to end. With the real artefact annotations and trap sets (real_data)
around tiny generated JPEGs and masks named by the real ids: split sizes match the published
files (val removed from train), artefacts equal the annotation file, and ruler correlates with
melanoma positively in train and negatively in test. Then bad input on a small made-up folder."""

from __future__ import annotations

import csv

import numpy as np
import pyarrow.parquet as pq
import pytest
from isic_builder import HEADER, H, W, bias_rows, write_csv, write_folder, write_trap_set
from PIL import Image

from spurspec.artefacts.dataset import Dataset
from spurspec.artefacts.layout import DatasetLayout
from spurspec.datasets.isic import ARTEFACTS, IMAGES_DIR, MASKS_DIR


def _read(path, delimiter):
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh, delimiter=delimiter))


@pytest.fixture(scope="module")
def trap_dataset(tmp_path_factory):
    from tests.conftest import real_data_dir

    real = real_data_dir()
    if not (real / "README.md").exists():
        pytest.skip(f"real label files not found at {real} (set SPURSPEC_REAL_DATA)")
    bias = _read(real / "isic/isic_bias.csv", ";")
    ids = [r["image"].removesuffix(".png") for r in bias]
    root = tmp_path_factory.mktemp("isic")
    write_folder(root / "in", ids, segmentation_caps=set(ids[:5]))
    from typer.testing import CliRunner

    from spurspec.cli.main import app

    out = root / "ds"
    args = ["ingest", "isic", str(root / "in"), "--out", str(out), "--artefacts", str(real / "isic/isic_bias.csv"),
            "--trap-sets", str(real / "isic/trap-sets"), "--trap-seed", "1", "--size", "8", "--workers", "2"]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    return real, bias, out, res.stdout


@pytest.mark.slow
def test_trap_splits_match_published_files(trap_dataset):
    real, _, out, stdout = trap_dataset
    traps = {s: _read(real / f"isic/trap-sets/isic_annotated_{s}1.csv", ",") for s in ("train", "val", "test")}
    ids = {s: {r["image"].removesuffix(".png") for r in rows} for s, rows in traps.items()}
    m = Dataset.open(out).manifest.to_pydict()
    got = {s: {i for i, sp in zip(m["image_id"], m["split"], strict=True) if sp == s} for s in ("train", "val", "test")}
    assert got["val"] == ids["val"] and got["test"] == ids["test"]
    assert got["train"] == ids["train"] - ids["val"]
    assert len(got["train"]) == len(traps["train"]) - len(traps["val"]) == 1563
    assert f"removed {len(traps['val'])} val image(s) from train" in stdout


@pytest.mark.slow
def test_artefacts_and_labels_equal_annotation_file(trap_dataset):
    _, bias, out, _ = trap_dataset
    ds = Dataset.open(out)
    assert ds.spurious == list(ARTEFACTS) and ds.channels == 3
    assert ds.images().shape == (len(bias), 3, 8, 8)
    m = ds.manifest.to_pydict()
    row = {i: k for k, i in enumerate(m["image_id"])}
    for r in bias:
        k = row[r["image"].removesuffix(".png")]
        assert m["label"][k] == int(r["label"])
        for a in ARTEFACTS:
            assert m[a][k] == int(r[a]), (r["image"], a)
    assert all(m["has_mask"]) and m["orig_height"][0] == H and m["orig_width"][0] == W
    assert pq.read_table(DatasetLayout(out).mask_rle).num_rows == len(bias)  # _Segmentation spelling found too
    # Pixels: RGB stays in channel order (H, W, 3 -> 3, S, S) and masks match their files.
    from spurspec.imaging.resize import resize_image, resize_mask

    images, masks = ds.images(), ds.masks()
    for image_id in m["image_id"][:10]:
        k = row[image_id]
        rgb = np.asarray(Image.open(out.parent / "in" / IMAGES_DIR / f"{image_id}.jpg").convert("RGB"))
        assert np.abs(images[k].astype(int) - resize_image(rgb, 8).astype(int)).max() <= 2, image_id
        mask_file = next((out.parent / "in" / MASKS_DIR).glob(f"{image_id}_*egmentation.png"))
        assert np.array_equal(masks[k], resize_mask(np.asarray(Image.open(mask_file)) > 0, 8)), image_id
    # Counted by the worker processes (--workers 2) that wrote the masks: benign lesions with a region.
    benign_regions = sum(1 for k, label in enumerate(m["label"]) if label == 0 and masks[k].any())
    assert ds.info["negatives_with_regions"] == benign_regions > 0


@pytest.mark.slow
def test_ruler_correlation_reverses_between_train_and_test(trap_dataset):
    _, _, out, _ = trap_dataset
    m = Dataset.open(out).manifest.to_pydict()
    split = np.array(m["split"])
    ruler, label = np.array(m["ruler"], float), np.array(m["label"], float)
    corr = {s: np.corrcoef(ruler[split == s], label[split == s])[0, 1] for s in ("train", "test")}
    assert corr["train"] > 0.3 and corr["test"] < -0.3, corr


# ---- bad input on a small made-up folder (the published format, made-up rows) ----------------

IDS = [f"ISIC_{n:07d}" for n in range(8)]


@pytest.fixture
def small(tmp_path):
    write_folder(tmp_path / "in", IDS)
    write_csv(tmp_path / "bias.csv", HEADER, bias_rows(IDS), ";")
    rows = bias_rows(IDS)
    write_trap_set(tmp_path / "traps", 2, rows[:6], rows[4:6], rows[6:])
    return tmp_path


def _args(t, *extra):
    return ["ingest", "isic", t / "in", "--out", t / "ds", "--artefacts", t / "bias.csv", "--size", 8, *extra]


def test_small_trap_set_and_drawn_splits(small, cli):
    res = cli(_args(small, "--trap-sets", small / "traps", "--trap-seed", 2))
    assert "removed 2 val image(s) from train" in res.stdout
    m = Dataset.open(small / "ds").manifest.to_pydict()
    assert m["split"] == ["train"] * 4 + ["val"] * 2 + ["test"] * 2
    assert "up to date" in cli(_args(small, "--trap-sets", small / "traps", "--trap-seed", 2)).stdout
    res = cli(_args(small, "--seed", 4, "--force"))
    assert "drawn by image" in res.stdout
    assert Dataset.open(small / "ds").manifest.num_rows == len(IDS)


@pytest.mark.parametrize(
    "edit,needle",
    [
        (lambda t: (t / "in" / IMAGES_DIR / "ISIC_0000003.jpg").unlink(), "bias.csv line 5: annotation for ISIC_0000003, which is not among the images"),
        (lambda t: (t / "in" / IMAGES_DIR / "ISIC_0000002.jpg").write_bytes(b"\xff\xd8 truncated"), "ISIC_0000002 (ISIC_0000002.jpg): "),
        (lambda t: Image.fromarray(np.zeros((3, 3), np.uint8)).save(t / "in" / MASKS_DIR / "ISIC_0000001_segmentation.png"), "is 3x3 but its image is 12x16"),
        (lambda t: Image.fromarray(np.full((H, W), 128, np.uint8)).save(t / "in" / MASKS_DIR / "ISIC_0000001_segmentation.png"), "found {128}"),
        (lambda t: write_csv(t / "bias.csv", [*HEADER, "colour"], [[*r, 1] for r in bias_rows(IDS)], ";"), "unknown column(s) 'colour'"),
        (lambda t: write_csv(t / "traps" / "isic_annotated_test2.csv", ["", "image", "label"], [[0, "ISIC_0099999.png", 1]], ","), "isic_annotated_test2.csv line 2: trap-set id ISIC_0099999 is not among"),
    ],
)
def test_bad_input_names_the_row_and_writes_nothing(small, cli, edit, needle):
    edit(small)
    res = cli(_args(small, "--trap-sets", small / "traps", "--trap-seed", 2), expect=2)
    assert needle in res.output
    assert not (small / "ds").exists()


def test_skip_bad_keeps_good_rows(small, cli):
    (small / "in" / IMAGES_DIR / "ISIC_0000003.jpg").unlink()
    Image.fromarray(np.full((H, W), 9, np.uint8)).save(small / "in" / MASKS_DIR / "ISIC_0000001_segmentation.png")
    res = cli(_args(small, "--skip-bad"))
    assert f"{len(IDS) - 2} images" in res.stdout and "rejected 2" in res.stdout
    rej = pq.read_table(DatasetLayout(small / "ds").rejects).to_pydict()
    assert any("ISIC_0000003" in r for r in rej["reason"]) and any("ISIC_0000001" in r for r in rej["input"])
