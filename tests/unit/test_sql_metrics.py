"""The DuckDB metric SQL on small datasets written with DatasetWriter: AUROC equals sklearn (ties
included), robust cells match a hand computation, degenerate subgroups give NULL with a reason,
the validation threshold is Youden's, and bad ids or identifiers are refused."""

import numpy as np
import pyarrow as pa
import pytest
from metrics_data import write_dataset
from sklearn.metrics import average_precision_score, roc_auc_score

from spurspec.artefacts.layout import DatasetLayout
from spurspec.errors import InputError
from spurspec.metrics.compute import MetricSettings, compute_metrics
from spurspec.metrics.db import quote_attributes


def preds_for(ids, scores, summary="image", role="eval"):
    n = len(ids)
    return pa.table({"image_id": list(ids), "summary": [summary] * n, "role": [role] * n, "score": np.asarray(scores, float)})


def rows_by_key(table):
    return {(r["summary"], r["metric"], r["attribute"]): r for r in table.to_pylist()}


def test_auroc_matches_sklearn_with_ties(tmp_path):
    rng = np.random.default_rng(0)
    n = 300
    y = rng.integers(0, 2, n)
    tube = [None if rng.random() < 0.15 else int(v) for v in rng.integers(0, 2, n)]
    m = write_dataset(tmp_path / "ds", y.tolist(), {"tube": tube}, ["test"] * n)
    ids = m.column("image_id").to_pylist()
    s1 = rng.integers(0, 7, n) / 7.0  # heavy ties
    s2 = rng.normal(size=n) + y
    preds = pa.concat_tables([preds_for(ids, s1, "a"), preds_for(ids, s2, "b")])
    got = rows_by_key(compute_metrics(DatasetLayout(tmp_path / "ds").manifest, preds, ["tube"], MetricSettings(n_boot=50)))
    a = np.array([-1 if v is None else v for v in tube])
    for name, s in (("a", s1), ("b", s2)):
        assert abs(got[(name, "auroc", None)]["value"] - roc_auc_score(y, s)) < 1e-9
        assert abs(got[(name, "auprc", None)]["value"] - average_precision_score(y, s)) < 1e-9
        for metric, keep in (("robust_auroc", ((y == 1) & (a == 0)) | ((y == 0) & (a == 1))),
                             ("auroc_attr0", a == 0), ("auroc_attr1", a == 1)):
            row = got[(name, metric, "tube")]
            assert abs(row["value"] - roc_auc_score(y[keep], s[keep])) < 1e-9
            assert (row["n_pos"], row["n_neg"]) == (int(y[keep].sum()), int((y[keep] == 0).sum()))
            assert row["ci_low"] <= row["value"] <= row["ci_high"]


def test_robust_cells_by_hand(tmp_path):
    # label, tube, score: a model that scores tubes high. Robust cells: (1,0) and (0,1) only.
    data = [(1, 1, 0.9), (1, 1, 0.8), (1, 0, 0.3), (1, 0, 0.6), (0, 1, 0.7), (0, 1, 0.5), (0, 0, 0.1), (0, 0, 0.2)]
    m = write_dataset(tmp_path / "ds", [d[0] for d in data], {"tube": [d[1] for d in data]}, ["test"] * 8)
    preds = preds_for(m.column("image_id").to_pylist(), [d[2] for d in data])
    got = rows_by_key(compute_metrics(DatasetLayout(tmp_path / "ds").manifest, preds, ["tube"], MetricSettings(n_boot=0)))
    # Positives without tube {0.3, 0.6} vs negatives with tube {0.7, 0.5}: pairs won = (0.6 > 0.5) = 1 of 4.
    assert got[("image", "robust_auroc", "tube")]["value"] == pytest.approx(0.25)
    assert got[("image", "robust_auroc", "tube")]["n_pos"] == 2
    assert got[("image", "auroc_attr0", "tube")]["value"] == pytest.approx(1.0)  # {0.3,0.6} vs {0.1,0.2}
    assert got[("image", "auroc_attr1", "tube")]["value"] == pytest.approx(1.0)  # {0.9,0.8} vs {0.7,0.5}
    assert got[("image", "worst_subgroup_auroc", "tube")]["value"] == pytest.approx(1.0)


def test_degenerate_subgroups_are_null_with_reason(tmp_path):
    y = [1, 0, 1, 0, 1, 0]
    m = write_dataset(tmp_path / "ds", y, {"always": [1] * 6, "pos_only": [0, None, 0, None, 0, None]}, ["test"] * 6)
    preds = preds_for(m.column("image_id").to_pylist(), [0.9, 0.1, 0.8, 0.4, 0.3, 0.2])
    got = rows_by_key(compute_metrics(DatasetLayout(tmp_path / "ds").manifest, preds, ["always", "pos_only"], MetricSettings(n_boot=30)))
    empty = got[("image", "auroc_attr0", "always")]
    assert empty["value"] is None and empty["reason"] == "no images in this subgroup" and empty["n_pos"] == 0
    only_neg = got[("image", "robust_auroc", "always")]  # label=0 & a=1 only
    assert only_neg["value"] is None and "no positive" in only_neg["reason"] and only_neg["ci_low"] is None
    assert got[("image", "robust_auroc", "pos_only")]["value"] is None
    worst = got[("image", "worst_subgroup_auroc", "always")]
    assert worst["value"] == got[("image", "auroc_attr1", "always")]["value"] and "always=0" in worst["reason"]
    assert got[("image", "worst_subgroup_auroc", "pos_only")]["value"] is None
    sens = got[("image", "sensitivity", None)]
    assert sens["value"] is None and "validation" in sens["reason"]


def test_threshold_is_youden_on_validation(tmp_path):
    y = [1, 1, 0, 0, 1, 0, 1, 0]
    m = write_dataset(tmp_path / "ds", y, {"t": [0] * 8}, ["val"] * 4 + ["test"] * 4)
    ids = m.column("image_id").to_pylist()
    # val: positives 0.8, 0.6; negatives 0.7, 0.2 -> best J at t=0.8 (1/2 + 1) ties t=0.6 (1 + 1/2): the higher wins.
    preds = pa.concat_tables([preds_for(ids[:4], [0.8, 0.6, 0.7, 0.2], role="val"),
                              preds_for(ids[4:], [0.9, 0.75, 0.7, 0.85])])
    got = rows_by_key(compute_metrics(DatasetLayout(tmp_path / "ds").manifest, preds, ["t"], MetricSettings(n_boot=0)))
    assert got[("image", "threshold", None)]["value"] == pytest.approx(0.8)
    assert got[("image", "sensitivity", None)]["value"] == pytest.approx(0.5)  # test positives 0.9, 0.7
    assert got[("image", "specificity", None)]["value"] == pytest.approx(0.5)  # test negatives 0.75, 0.85
    target = rows_by_key(compute_metrics(DatasetLayout(tmp_path / "ds").manifest, preds, ["t"],
                                         MetricSettings(n_boot=0, threshold="sensitivity:1.0")))
    assert target[("image", "threshold", None)]["value"] == pytest.approx(0.6)


def test_unknown_and_duplicate_ids_are_errors(tmp_path):
    m = write_dataset(tmp_path / "ds", [1, 0], {"t": [0, 1]}, ["test"] * 2)
    ids = m.column("image_id").to_pylist()
    manifest = DatasetLayout(tmp_path / "ds").manifest
    with pytest.raises(InputError, match="1 image_id.*not in the dataset manifest.*nope"):
        compute_metrics(manifest, preds_for(ids + ["nope"], [0.1, 0.2, 0.3]), ["t"], MetricSettings(n_boot=0))
    with pytest.raises(InputError, match="more than once.*img0000"):
        compute_metrics(manifest, preds_for(ids + ids[:1], [0.1, 0.2, 0.3]), ["t"], MetricSettings(n_boot=0))


def test_identifiers_are_validated():
    assert quote_attributes(["chest_tube", "hair"], ["chest_tube", "hair"]) == '"chest_tube", "hair"'
    with pytest.raises(InputError, match="not a spurious attribute"):
        quote_attributes(["label"], ["chest_tube"])
    with pytest.raises(InputError, match="plain identifier"):
        quote_attributes(['x"; DROP TABLE manifest; --'], ['x"; DROP TABLE manifest; --'])
