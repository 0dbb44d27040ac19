"""A SIIM-format folder (JPEG-Baseline DICOMs around real label rows and real tube labels)
through ingest -> train at every granularity -> evaluate, via the real CLI."""

from __future__ import annotations

import pyarrow.parquet as pq
import pytest
from siim_builder import pick_real, write_folder

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def test_siim_format_dataset_trains_at_every_granularity_and_evaluates(real_data, tmp_path, cli):
    rows, tubes = pick_real(real_data, per_cell=4, untubed=12, multi_row=4)
    root = tmp_path / "siim"
    write_folder(root, rows, "stage1", size=1024)  # the real RLE rows are for 1024 x 1024
    tube_csv = root / "tubes.csv"
    tube_csv.write_text("ImageId,chest_tube\n" + "".join(f"{k},{v}\n" for k, v in tubes.items()))
    ds = tmp_path / "ds"
    cli(["ingest", "siim", root, "--out", ds, "--tube-labels", tube_csv, "--size", "32", "--workers", "1"])
    for gran in ("binary", "bbox", "seg", "grid:4"):
        run = tmp_path / gran.replace(":", "")
        result = cli(["train", ds, "--granularity", gran, "--out", run, "--epochs", "1", "--batch-size", "8"])
        assert (run / "done").exists() and (run / "checkpoints" / "best.pt").exists(), result.stdout
        if gran == "bbox":
            assert "deriving boxes" in result.stdout, result.stdout  # it made the boxes, and said so
    assert (ds / "boxes.parquet").exists()  # bbox derived the boxes it needed, saying so
    for gran in ("binary", "seg"):
        cli(["evaluate", tmp_path / gran, "--bootstrap", "50"])
        metrics = pq.read_table(tmp_path / gran / "metrics.parquet").to_pylist()
        robust = [m for m in metrics if m["metric"] == "robust_auroc" and m["attribute"] == "chest_tube"]
        assert robust
        test_ids = {r["image_id"] for r in pq.read_table(ds / "manifest.parquet").to_pylist() if r["split"] == "test"}
        # The robust cells: positives without a tube and negatives with one, in the test split.
        cells = {(1, 0), (0, 1)}
        n_cells = sum(1 for i in test_ids if (int(dict(rows)[i] != "-1"), tubes.get(i)) in cells)
        assert robust[0]["n_pos"] + robust[0]["n_neg"] == n_cells
