"""The study's cells have one definition (spurspec.metrics.cells); the SQL metric path and the
numpy path (bootstrap subsets at unit weights, the report's robust mask) must agree on it for
random data with ties, unknown attribute values and one-class subgroups."""

import numpy as np
import pyarrow as pa
import pytest
from metrics_data import write_dataset

from spurspec.artefacts.layout import DatasetLayout
from spurspec.metrics import bootstrap, cells
from spurspec.metrics.auroc import auroc, weighted_auroc
from spurspec.metrics.compute import MetricSettings, compute_metrics


def _numpy_point_values(score, label, attrs):
    sample = bootstrap.Sample(score, label, np.arange(len(score)), attrs)
    ones = np.ones((1, len(score)))
    values = {key: weighted_auroc(r, ones) for key, r in bootstrap.subsets(sample).items()}
    bootstrap.add_worst(values, list(attrs))
    return {k: (None if np.isnan(v[0]) else float(v[0])) for k, v in values.items()}


@pytest.mark.parametrize("seed", range(6))
def test_sql_and_numpy_agree(tmp_path, seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(30, 120))
    y = rng.integers(0, 2, n)
    # `tube`: unknown values and ties; `rare`: only one class where it is 1 (one-class subgroup).
    tube = [None if rng.random() < 0.2 else int(v) for v in rng.integers(0, 2, n)]
    rare = [int(v == 1 and rng.random() < 0.3) for v in y]
    m = write_dataset(tmp_path / "ds", y.tolist(), {"tube": tube, "rare": rare}, ["test"] * n)
    score = rng.integers(0, 5, n) / 5.0 + 0.3 * y
    ids = m.column("image_id").to_pylist()
    preds = pa.table({"image_id": ids, "summary": ["image"] * n, "role": ["eval"] * n, "score": score})
    sql = {(r["metric"], r["attribute"]): r["value"] for r in compute_metrics(
        DatasetLayout(tmp_path / "ds").manifest, preds, ["tube", "rare"], MetricSettings(n_boot=0)).to_pylist()}
    attrs = {"tube": np.array([-1 if v is None else v for v in tube]), "rare": np.array(rare)}
    numpy_values = _numpy_point_values(score.astype(float), y, attrs)
    for key, value in numpy_values.items():
        if value is None:
            assert sql[key] is None, key
        else:
            assert sql[key] == pytest.approx(value, abs=1e-12), key
    for name, a in attrs.items():  # the plain mask + plain AUROC path (report, predict) agrees too
        keep = cells.robust_mask(y, a)
        assert sql[("robust_auroc", name)] == pytest.approx(auroc(score[keep], y[keep]), abs=1e-12) \
            if sql[("robust_auroc", name)] is not None else auroc(score[keep], y[keep]) is None


def test_robust_mask_is_the_two_cells():
    y = np.array([1, 1, 0, 0, 1, 0])
    a = np.array([0, 1, 1, 0, -1, -1])
    assert cells.robust_mask(y, a).tolist() == [True, False, True, False, False, False]
    assert cells.cell_of(1, 0) == (1, 0) and cells.cell_of(0, None) is None


def test_worst_subgroup_skips_undefined():
    v = np.array([[0.7, np.nan, np.nan], [0.6, 0.9, np.nan]])
    out = cells.worst_subgroup(v)
    assert out[0] == 0.6 and out[1] == 0.9 and np.isnan(out[2])
