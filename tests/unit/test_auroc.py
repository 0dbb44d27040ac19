"""The numpy rank AUROC / average precision (used by the bootstrap) against sklearn, ties included,
and the weighted form against sklearn with repeated rows."""

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score

from spurspec.metrics.auroc import (
    Ranked,
    auroc,
    average_precision,
    roc_points,
    weighted_auroc,
    weighted_average_precision,
)


@pytest.mark.parametrize("levels", [3, 10, 1000])
def test_auroc_and_ap_match_sklearn_with_ties(levels):
    rng = np.random.default_rng(levels)
    for _ in range(30):
        n = int(rng.integers(4, 400))
        y = rng.integers(0, 2, n)
        if y.min() == y.max():
            continue
        s = rng.integers(0, levels, n) / levels + 0.2 * y * rng.random(n).round(1)
        assert abs(auroc(s, y) - roc_auc_score(y, s)) < 1e-9
        assert abs(average_precision(s, y) - average_precision_score(y, s)) < 1e-9


def test_weighted_equals_repeated_rows():
    rng = np.random.default_rng(1)
    n = 60
    s, y = rng.integers(0, 6, n).astype(float), rng.integers(0, 2, n)
    w = rng.integers(0, 4, size=(5, n)).astype(float)
    r = Ranked.build(s, y)
    got_auc, got_ap = weighted_auroc(r, w), weighted_average_precision(r, w)
    for b in range(5):
        rep = np.repeat(np.arange(n), w[b].astype(int))
        assert abs(got_auc[b] - roc_auc_score(y[rep], s[rep])) < 1e-9
        assert abs(got_ap[b] - average_precision_score(y[rep], s[rep])) < 1e-9


def test_one_class_is_none_not_half():
    assert auroc(np.array([0.1, 0.2, 0.3]), np.array([1, 1, 1])) is None
    assert auroc(np.array([]), np.array([])) is None
    r = Ranked.build(np.array([0.1, 0.9]), np.array([0, 1]))
    assert np.isnan(weighted_auroc(r, np.array([[1.0, 0.0]])))[0]


def test_roc_points_area_is_auroc():
    rng = np.random.default_rng(2)
    s, y = rng.integers(0, 5, 200).astype(float), rng.integers(0, 2, 200)
    fpr, tpr = roc_points(s, y)
    assert fpr[0] == tpr[0] == 0 and fpr[-1] == tpr[-1] == 1
    assert abs(np.trapezoid(tpr, fpr) - roc_auc_score(y, s)) < 1e-9
