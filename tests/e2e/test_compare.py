"""Paired comparisons (`spurspec compare`, spurspec.evaluation.paired): the same resamples for both
runs, a run against itself differs by exactly 0, swapping runs flips the sign, different test
sets are refused, and DeLong's test agrees with the paired bootstrap on a large sample."""

import shutil

import numpy as np
import pyarrow.parquet as pq
import pytest
from metrics_data import fake_run, study_like

from spurspec.artefacts.run import RunRecord
from spurspec.evaluation import paired
from spurspec.metrics import bootstrap


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    d = tmp_path_factory.mktemp("cmp")
    m = study_like(d / "ds", n=400)
    for g, shortcut in (("binary", 1.2), ("seg", 0.1)):
        for seed in (0, 1):
            fake_run(d / "runs" / f"{g}-{seed}", d / "ds", m, g, seed, shortcut,
                     summaries=("image",) if g == "binary" else ("mean",))
    return d


def test_a_run_against_itself_differs_by_exactly_zero(runs):
    rec = RunRecord.open(runs / "runs" / "seg-0")
    s = paired.scored(rec, "mean")
    for d in paired.differences(s, s, n_boot=200, seed=3):
        if d.diff is not None:
            assert d.diff == 0 and d.ci_low == 0 and d.ci_high == 0 and d.p_value == 1.0


@pytest.mark.e2e
def test_compare_cli_pairs_by_seed_and_swapping_flips_the_sign(runs, cli, tmp_path):
    res = cli(["compare", runs / "runs" / "binary-0", runs / "runs", "--bootstrap", "300", "--out", tmp_path / "c.parquet"])
    assert "paired differences" in res.stdout and "seed 1" in res.stdout
    rows = pq.read_table(tmp_path / "c.parquet").to_pylist()
    robust = [r for r in rows if r["metric"] == "robust_auroc" and r["attribute"] == "chest_tube"]
    assert {r["replicate"] for r in robust} == {"seed 0", "seed 1"}
    assert all(r["diff"] > 0 and r["ci_low"] > 0 for r in robust)  # masks read the tube less
    cli(["compare", runs / "runs" / "seg-0", runs / "runs", "--bootstrap", "300", "--out", tmp_path / "s.parquet"])
    swapped = {(r["replicate"], r["metric"], r["attribute"]): r for r in pq.read_table(tmp_path / "s.parquet").to_pylist()}
    for r in rows:
        other = swapped[(r["replicate"], r["metric"], r["attribute"])]
        if r["diff"] is not None:
            assert other["diff"] == pytest.approx(-r["diff"], abs=1e-12)
            assert other["ci_low"] == pytest.approx(-r["ci_high"], abs=1e-12)


@pytest.mark.e2e
def test_different_test_sets_are_refused(runs, cli, tmp_path):
    m = study_like(tmp_path / "other", n=300, seed=5)
    fake_run(tmp_path / "r" / "seg-0", tmp_path / "other", m, "seg", 0, 0.1, summaries=("mean",))
    shutil.copytree(runs / "runs" / "binary-0", tmp_path / "r" / "binary-0")
    res = cli(["compare", tmp_path / "r" / "binary-0", tmp_path / "r" / "seg-0"], expect=2)
    assert "not scored on the same test images" in res.stderr


def test_delong_agrees_with_the_paired_bootstrap_on_a_large_sample():
    rng = np.random.default_rng(0)
    n = 4000
    y = rng.integers(0, 2, n)
    a = y * 0.8 + rng.normal(size=n)
    b = y * 1.0 + 0.6 * a + rng.normal(size=n)  # correlated with a, a little better
    diff, se, p = paired.delong(a, b, y)
    sa = paired.Scored(np.arange(n).astype(str), bootstrap.Sample.from_ids(a, y, np.arange(n).astype(str)))
    sb = paired.Scored(np.arange(n).astype(str), bootstrap.Sample.from_ids(b, y, np.arange(n).astype(str)))
    d = next(x for x in paired.differences(sa, sb, n_boot=1000, seed=1) if x.metric == "auroc")
    assert d.diff == pytest.approx(diff, abs=1e-12)
    boot_se = (d.ci_high - d.ci_low) / (2 * 1.96)
    assert boot_se == pytest.approx(se, rel=0.15)
