"""Patient-level stratified bootstrap: draws keep each label stratum's patient count, images of one
patient move together, results are seeded, and 95% intervals cover a known AUROC most of the time."""

import numpy as np
from scipy.stats import norm

from spurspec.metrics.bootstrap import (
    Sample,
    patient_counts,
    patient_strata,
    percentile_interval,
    replicates,
)


def test_counts_are_stratified_by_patient_label():
    strata = np.array([0, 0, 0, 1, 1, 0, 1])
    for counts in patient_counts(strata, 120, np.random.default_rng(0), block=50):
        assert np.all(counts[:, strata == 0].sum(axis=1) == 4)
        assert np.all(counts[:, strata == 1].sum(axis=1) == 3)


def test_patient_with_any_positive_is_positive_stratum():
    assert patient_strata(np.array([0, 0, 1, 2]), np.array([0, 1, 0, 0]), 3).tolist() == [1, 0, 0]


def test_seeded_and_patient_level():
    rng = np.random.default_rng(3)
    n = 120
    y = rng.integers(0, 2, n)
    s = rng.normal(size=n) + y
    patients = [f"p{i // 3}" for i in range(n)]  # three images per patient
    a = Sample.from_ids(s, y, patients, {"t": rng.integers(-1, 2, n)})
    r1, r2 = replicates(a, 60, 7, threshold=0.5), replicates(a, 60, 7, threshold=0.5)
    assert all(np.array_equal(r1[k], r2[k], equal_nan=True) for k in r1)
    assert not np.array_equal(r1[("auroc", None)], replicates(a, 60, 8)[("auroc", None)])
    # Resampling whole patients: with one image per patient the spread differs from resampling triples.
    single = Sample.from_ids(s, y, [f"q{i}" for i in range(n)])
    assert not np.allclose(replicates(single, 60, 7)[("auroc", None)], r1[("auroc", None)])


def test_interval_covers_true_auroc_in_most_repetitions():
    """Binormal model: positives ~ N(d, 1), negatives ~ N(0, 1); true AUROC = Phi(d / sqrt 2)."""
    d = 1.0
    truth = norm.cdf(d / np.sqrt(2))
    rng = np.random.default_rng(11)
    covered = 0
    reps = 200
    for k in range(reps):
        y = np.r_[np.ones(60, int), np.zeros(60, int)]
        s = rng.normal(size=120) + d * y
        vals = replicates(Sample.from_ids(s, y, np.arange(120)), 200, k)[("auroc", None)]
        lo, hi, n_ok = percentile_interval(vals, 0.95)
        assert n_ok == 200
        covered += lo <= truth <= hi
    assert 0.88 <= covered / reps <= 0.995, covered / reps


def test_undefined_replicates_are_left_out():
    vals = np.array([0.2, np.nan, 0.4, 0.6])
    lo, hi, n_ok = percentile_interval(vals, 0.5)
    assert n_ok == 3 and 0.2 <= lo <= hi <= 0.6
    assert percentile_interval(np.array([np.nan]), 0.95) == (None, None, 0)
