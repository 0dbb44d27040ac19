"""`spurspec evaluate` through the real CLI: outside predictions (Parquet with split, CSV without),
bad ids, up-to-date reruns; and a trained run (1 tiny epoch) evaluated end to end."""

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
from metrics_data import shortcut_scores, study_like

from spurspec.artefacts import schemas


@pytest.fixture
def outside(tmp_path):
    m = study_like(tmp_path / "ds", n=240)
    s = shortcut_scores(m, weight=0.4)
    pq.write_table(pa.table({"image_id": m.column("image_id"), "score": s, "split": m.column("split")}), tmp_path / "p.parquet")
    pacsv.write_csv(pa.table({"image_id": m.column("image_id"), "score": s}), tmp_path / "p.csv")
    return tmp_path, m


@pytest.mark.e2e
def test_outside_predictions(cli, outside):
    d, m = outside
    res = cli(["evaluate", "--predictions", d / "p.parquet", "--dataset", d / "ds", "--out", d / "ev", "--bootstrap", "200"])
    assert "AUROC" in res.stdout and "metrics.parquet" in res.stdout
    metrics = schemas.check(pq.read_table(d / "ev" / "metrics.parquet"), schemas.METRICS)
    rows = {(r["metric"], r["attribute"]): r for r in metrics.to_pylist()}
    assert rows[("robust_auroc", "chest_tube")]["value"] < 0.5 < rows[("auroc", None)]["value"]
    assert rows[("sensitivity", None)]["value"] is not None
    n_test = m.column("split").to_pylist().count("test")
    assert rows[("auroc", None)]["n_pos"] + rows[("auroc", None)]["n_neg"] == n_test
    again = cli(["evaluate", "--predictions", d / "p.parquet", "--dataset", d / "ds", "--out", d / "ev", "--bootstrap", "200"])
    assert "up to date" in again.stdout
    other = cli(["evaluate", "--predictions", d / "p.parquet", "--dataset", d / "ds", "--out", d / "ev", "--bootstrap", "100"], expect=4)
    assert "--force" in other.stderr
    # No split column: every row is scored and sensitivity/specificity say why they are NULL.
    res = cli(["evaluate", "--predictions", d / "p.csv", "--dataset", d / "ds", "--out", d / "ev2", "--bootstrap", "0"])
    assert "no split column" in res.stdout
    rows = {(r["metric"], r["attribute"]): r for r in pq.read_table(d / "ev2" / "metrics.parquet").to_pylist()}
    assert rows[("sensitivity", None)]["value"] is None and "split column" in rows[("sensitivity", None)]["reason"]
    assert rows[("auroc", None)]["n_pos"] + rows[("auroc", None)]["n_neg"] == m.num_rows


@pytest.mark.e2e
def test_bad_outside_predictions(cli, outside):
    d, m = outside
    ids = m.column("image_id").to_pylist()
    pacsv.write_csv(pa.table({"image_id": ids[:5] + ["ghost"], "score": np.arange(6.0)}), d / "unknown.csv")
    res = cli(["evaluate", "--predictions", d / "unknown.csv", "--dataset", d / "ds", "--out", d / "x"], expect=2)
    assert "not in the dataset manifest" in res.stderr and "ghost" in res.stderr
    pacsv.write_csv(pa.table({"image_id": ids[:5] + ids[:1], "score": np.arange(6.0)}), d / "dup.csv")
    res = cli(["evaluate", "--predictions", d / "dup.csv", "--dataset", d / "ds", "--out", d / "x"], expect=2)
    assert "more than once" in res.stderr and ids[0] in res.stderr
    pacsv.write_csv(pa.table({"image_id": ids[:3], "prob": [0.1, 0.2, 0.3]}), d / "nocol.csv")
    res = cli(["evaluate", "--predictions", d / "nocol.csv", "--dataset", d / "ds", "--out", d / "x"], expect=2)
    assert "missing column(s) score" in res.stderr
    assert not (d / "x" / "metrics.parquet").exists()


@pytest.mark.e2e
@pytest.mark.slow
def test_trained_run_evaluates(cli, tmp_path):
    cli(["ingest", "synthetic", "--out", tmp_path / "ds", "--n", "160", "--size", "32"])
    cli(["train", tmp_path / "ds", "--out", tmp_path / "run", "--epochs", "1", "--granularity", "seg", "--workers", "0"])
    res = cli(["evaluate", tmp_path / "run", "--bootstrap", "100"])
    assert "topk:5" in res.stdout
    preds = schemas.check(pq.read_table(tmp_path / "run" / "predictions.parquet"), schemas.PREDICTIONS)
    assert set(preds.column("split").to_pylist()) == {"test", "val"}
    metrics = pq.read_table(tmp_path / "run" / "metrics.parquet").to_pylist()
    assert {r["summary"] for r in metrics} == {"mean", "max", "topk:1", "topk:5", "topk:10"}
    assert any(r["metric"] == "robust_auroc" and r["value"] is not None for r in metrics)
    with np.load(tmp_path / "run" / "saliency.npz", allow_pickle=False) as sal:
        assert len(sal["image_ids"]) > 0 and sal["maps"].dtype == np.float32
    cli(["report", tmp_path / "run", "--out", tmp_path / "rep"])
    assert (tmp_path / "rep" / "report.html").exists()
