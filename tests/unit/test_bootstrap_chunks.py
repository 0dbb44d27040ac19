"""The bootstrap's memory bound (issue 17, item 3) changes no value: drawing a block of patient
counts a few rows at a time continues the generator exactly as drawing it at once did, and
evaluating replicates in row chunks from one-byte counts gives bit-identical metric values to
evaluating whole float64 blocks (the loop before, rebuilt here as the oracle), however the rows
are chunked. (Against the code before issue 17, AUPRC replicates differ in the 14th digit: its
sums now run row by row, which is what makes them independent of the chunking.)"""

from __future__ import annotations

import numpy as np
import pytest

from spurspec.metrics import bootstrap
from spurspec.metrics.auroc import weighted_auroc, weighted_average_precision


def whole_block_counts(strata: np.ndarray, n_boot: int, rng: np.random.Generator, block: int = bootstrap.BLOCK):
    """patient_counts as it was: every stratum's draws for a whole block in one call, float64."""
    members = [np.flatnonzero(strata == s) for s in np.unique(strata)]
    done = 0
    while done < n_boot:
        b = min(block, n_boot - done)
        counts = np.zeros((b, len(strata)))
        for idx in members:
            n = len(idx)
            draws = rng.integers(0, n, size=(b, n), dtype=np.int64) + np.arange(b)[:, None] * n
            counts[:, idx] = np.bincount(draws.ravel(), minlength=b * n).reshape(b, n)
        done += b
        yield counts


def whole_block_replicates(sample: bootstrap.Sample, n_boot: int, seed: int, threshold: float) -> dict:
    """replicates as it was: each float64 block of counts evaluated at once."""
    rng = np.random.default_rng(seed)
    n_patients = int(sample.patient.max()) + 1
    strata = bootstrap.patient_strata(sample.patient, sample.label, n_patients)
    ranked = bootstrap.subsets(sample)
    pos, called = sample.label == 1, sample.score >= threshold
    per_patient = np.stack([np.bincount(sample.patient, weights=m.astype(float), minlength=n_patients)
                            for m in (pos, pos & called, ~pos, ~pos & ~called)], axis=1)
    out: dict = {k: [] for k in [*ranked, ("auprc", None), ("sensitivity", None), ("specificity", None)]}
    for counts in whole_block_counts(strata, n_boot, rng):
        for key, r in ranked.items():
            out[key].append(weighted_auroc(r, counts))
        out[("auprc", None)].append(weighted_average_precision(ranked[("auroc", None)], counts))
        n_p, tp, n_n, tn = (counts @ per_patient).T
        with np.errstate(invalid="ignore", divide="ignore"):
            out[("sensitivity", None)].append(tp / np.where(n_p > 0, n_p, np.nan))
            out[("specificity", None)].append(tn / np.where(n_n > 0, n_n, np.nan))
    return {k: np.concatenate(v) for k, v in out.items()}


def sample_of(n: int, seed: int) -> bootstrap.Sample:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    attrs = {"a": rng.integers(-1, 2, n), "b": np.where(rng.random(n) < 0.7, y, 1 - y)}
    patients = [f"p{k}" for k in rng.integers(0, max(2, int(n * 0.6)), n)]
    return bootstrap.Sample.from_ids(np.round(rng.normal(size=n) + y, 1), y, patients, attrs)  # ties


@pytest.mark.parametrize("cells", [7, 1000, 2**21])
def test_chunked_draws_continue_the_same_stream(monkeypatch, cells):
    monkeypatch.setattr(bootstrap, "CELLS", cells)
    strata = (np.random.default_rng(0).random(301) < 0.4).astype(np.int8)  # odd stratum sizes
    new = list(bootstrap.patient_counts(strata, 120, np.random.default_rng(5)))
    old = list(whole_block_counts(strata, 120, np.random.default_rng(5)))
    assert [len(b) for b in new] == [50, 50, 20]
    assert all(np.array_equal(a, b) for a, b in zip(new, old, strict=True))


@pytest.mark.parametrize(("n", "cells"), [(400, 7), (400, 2**21), (3000, 4000), (100_000, 100_000)])
def test_chunked_replicates_are_bit_identical(monkeypatch, n, cells):
    monkeypatch.setattr(bootstrap, "CELLS", cells)
    sample = sample_of(n, n)
    new = bootstrap.replicates(sample, 120, 3, threshold=0.5)
    old = whole_block_replicates(sample, 120, 3, 0.5)
    assert set(old) <= set(new)
    for key, values in old.items():
        assert np.array_equal(new[key], values, equal_nan=True), key


def test_integer_weights_give_the_float_values():
    """Counts too large for a byte stay uint32 (bootstrap's fallback); either way the metrics
    equal those of the same counts as float64."""
    sample = sample_of(2000, 1)
    r = bootstrap.subsets(sample)[("auroc", None)]
    counts = np.random.default_rng(2).integers(0, 1000, (6, int(sample.patient.max()) + 1)).astype(np.uint32)
    assert np.array_equal(weighted_auroc(r, counts), weighted_auroc(r, counts.astype(np.float64)))
    small = counts % 7
    assert np.array_equal(weighted_average_precision(r, small.astype(np.uint8)),
                          weighted_average_precision(r, small.astype(np.float64)))
