"""Pixel targets come only from positive images. On data like ISIC, where negatives (benign
lesions) have masks too, the old targets (every mask positive) teach "where is the lesion", and
the mean score then ranks lesion area; the study's three-class head scores malignancy."""

import numpy as np
import pyarrow as pa
import pytest

from spurspec.artefacts.dataset import Dataset, DatasetWriter
from spurspec.training.data import granularity
from spurspec.training.models.heads import (
    PixelHead,
    classes_for,
    negatives_have_regions,
    target_classes,
)


def _lesions(out, n=240, size=32, seed=0, old_way=False):
    """A third of the images show no lesion; the others a lesion with a mask: malignant ones
    small and bright, benign ones three times wider and dimmer. `old_way` labels every training
    image with a mask positive, which is what treating every mask as a positive target amounts
    to. Returns the true labels and which images have a lesion."""
    rng = np.random.default_rng(seed)
    kind = np.arange(n) % 3  # 0 no lesion, 1 benign, 2 malignant
    label = (kind == 2).astype(np.int8)
    split = np.array(["train"] * (n // 2) + ["val"] * (n // 4) + ["test"] * (n - n // 2 - n // 4))
    yy, xx = np.mgrid[:size, :size]
    with DatasetWriter(out, n=n, size=size, channels=1) as w:
        for i in range(n):
            radius, level = {0: (0, 60), 1: (9, 130), 2: (3, 200)}[int(kind[i])]
            cy, cx = rng.integers(radius + 1, size - radius - 1, 2)
            mask = ((yy - cy) ** 2 + (xx - cx) ** 2 <= radius**2).astype(np.uint8) * (kind[i] > 0)
            img = np.where(mask, level, 60) + rng.normal(0, 10, (size, size))
            w.put(i, np.clip(img, 0, 255).astype(np.uint8)[None], mask)
        train_label = np.where((split == "train") & (kind > 0), 1, label) if old_way else label
        cols = {"image_id": [f"l{i:04d}" for i in range(n)], "patient_id": [f"p{i:04d}" for i in range(n)],
                "split": split.tolist(), "label": pa.array(train_label, pa.int8()), "has_mask": (kind > 0).tolist(),
                "source": ["test"] * n, "orig_height": pa.array([size] * n, pa.int32()),
                "orig_width": pa.array([size] * n, pa.int32())}
        w.finish(pa.table(cols), spurious=[], info={"name": "lesions", "source": "test"}, settings={}, inputs={})
    return label, kind > 0


def test_a_negative_images_target_never_holds_the_positive_class():
    mask = np.ones((4, 4), np.uint8)
    assert target_classes(mask, 0, 2).max() == 0
    assert set(np.unique(target_classes(mask, 0, 3))) == {1}
    assert set(np.unique(target_classes(mask, 1, 3))) == {2} and target_classes(mask, 1, 2).max() == 1
    assert classes_for("auto", True) == 3 and classes_for("auto", False) == 2
    assert classes_for("two-class", True) == 2 and classes_for("three-class", False) == 3
    masks = np.zeros((4, 3, 3), np.uint8)
    masks[0, 1, 1] = 1  # a positive's region
    # SIIM-like: every image has a (possibly empty) mask; only a negative's non-empty mask counts.
    assert not negatives_have_regions(masks, np.ones(4, bool), np.array([1, 0, 0, 0]), chunk=1)
    masks[3, 0, 0] = 1
    assert negatives_have_regions(masks, np.ones(4, bool), np.array([1, 0, 0, 0]), chunk=1)
    assert not negatives_have_regions(masks, np.array([True, True, True, False]), np.array([1, 0, 0, 0]))
    assert PixelHead(3).out_channels == 3 and PixelHead(2).out_channels == 1


def test_targets_of_a_dataset_with_benign_masks(tmp_path):
    labels, lesion = _lesions(tmp_path / "ds", n=18)
    ds = Dataset.open(tmp_path / "ds")
    targets = granularity.prepare(ds, granularity.parse("seg"), "union", say=lambda t: None)
    assert targets.classes == 3
    for row in range(18):
        t = targets(row)
        assert (t == 2).any() == bool(labels[row]) and (t == 1).any() == (lesion[row] and not labels[row])


def test_the_count_of_negatives_with_regions_is_written_at_ingest_and_read_without_a_scan(tmp_path, monkeypatch):
    """dataset.json counts the negatives whose mask holds a pixel (12 of 18 images here have
    lesions, 6 benign), so choosing the head reads one number; a dataset written before the count
    existed is still scanned, with the same answer."""
    import json

    from spurspec.training.models import heads

    _lesions(tmp_path / "ds", n=18)
    info = json.loads((tmp_path / "ds" / "dataset.json").read_text())
    assert info["negatives_with_regions"] == 6
    monkeypatch.setattr(heads, "negatives_have_regions", lambda *a, **k: pytest.fail("scanned masks.npy"))
    assert heads.dataset_classes("auto", Dataset.open(tmp_path / "ds")) == 3
    monkeypatch.undo()
    del info["negatives_with_regions"]
    (tmp_path / "ds" / "dataset.json").write_text(json.dumps(info))
    assert heads.dataset_classes("auto", Dataset.open(tmp_path / "ds")) == 3


def _test_auroc(root, run):
    import pyarrow.parquet as pq

    from spurspec.metrics.auroc import auroc

    preds = pq.read_table(run / "predictions.parquet").to_pylist()
    truth = dict(zip(*(pq.read_table(root / "truth.parquet").column(c).to_pylist() for c in ("image_id", "label")),
                     strict=True))
    rows = [r for r in preds if r["split"] == "test" and r["summary"] == "mean" and r["image_id"] in truth]
    return auroc(np.array([r["score"] for r in rows]), np.array([truth[r["image_id"]] for r in rows]))


@pytest.mark.e2e
@pytest.mark.slow
def test_three_class_head_scores_malignancy_not_lesion_size(tmp_path, cli):
    truth, lesion = _lesions(tmp_path / "new")
    _lesions(tmp_path / "old", old_way=True)
    import pyarrow.parquet as pq

    # Scored on the images with a lesion: does the score tell malignant from benign?
    ids = [f"l{i:04d}" for i in range(len(truth)) if lesion[i]]
    pq.write_table(pa.table({"image_id": ids, "label": truth[lesion].astype(int)}), tmp_path / "truth.parquet")
    common = ["--granularity", "seg", "--epochs", "6", "--batch-size", "16", "--augment", "none", "--lr", "0.003",
              "--balance", "none", "--select-metric", "auroc"]
    scores = {}
    for name in ("new", "old"):
        run = tmp_path / f"run-{name}"
        cli(["train", tmp_path / name, "--out", run, *common])
        cli(["evaluate", run, "--bootstrap", "0"], expect=None)
        scores[name] = _test_auroc(tmp_path, run)
    # The old targets rank benign (larger) lesions above malignant ones; the new head does not.
    assert scores["old"] < 0.35, scores
    assert scores["new"] > 0.8, scores
