"""The report's maps through the real CLI: `evaluate` of an image-label run keeps integrated-
gradients maps at the image's resolution (saliency.npz says so) of positives without the
spurious feature and negatives with it, and `report` draws them beside a pixel run's maps."""

from __future__ import annotations

import numpy as np
import pyarrow.parquet as pq
import pytest

from spurspec.artefacts.run import read_saliency, read_saliency_kind

pytestmark = pytest.mark.e2e
FAST = ["--epochs", "1", "--batch-size", "16", "--workers", "0", "--device", "cpu"]


def test_binary_maps_are_integrated_gradients_of_both_robust_cells(cli, tmp_path):
    cli(["ingest", "synthetic", "--out", tmp_path / "ds", "--n", "120", "--size", "32"])
    for gran in ("binary", "seg"):
        cli(["train", tmp_path / "ds", "--out", tmp_path / "runs" / gran, "--granularity", gran, *FAST])
        cli(["evaluate", tmp_path / "runs" / gran, "--bootstrap", "0"])
    path = tmp_path / "runs" / "binary" / "saliency.npz"
    assert read_saliency_kind(path) == "integrated_gradients"
    assert read_saliency_kind(tmp_path / "runs" / "seg" / "saliency.npz") == "probability"
    maps = read_saliency(path)
    assert maps and all(m.shape == (32, 32) and 0 <= m.min() <= m.max() <= 1 for _, m in maps.values())
    manifest = pq.read_table(tmp_path / "ds" / "manifest.parquet").to_pydict()
    cell = {i: (y, a) for i, y, a in zip(manifest["image_id"], manifest["label"], manifest["chest_tube"], strict=True)}
    kept = [cell[i] for i in maps]
    assert set(kept) == {(1, 0), (0, 1)} and abs(kept.count((1, 0)) - kept.count((0, 1))) <= 1
    assert set(maps) == set(read_saliency(tmp_path / "runs" / "seg" / "saliency.npz"))  # the same images
    cli(["report", tmp_path / "runs", "--out", tmp_path / "rep"])
    assert (tmp_path / "rep" / "figures" / "saliency.png").exists()
    assert "integrated gradients" in (tmp_path / "rep" / "report.md").read_text()
    assert np.load(path, allow_pickle=False)["kind"].ndim == 0
