"""`spurspec evaluate` on ISIC-shaped data (7 spurious attributes) and `spurspec compare`, printed
to a file or pipe (CliRunner: not a terminal) at 80 columns: no "…", every table line within the
width, every number whole; COLUMNS=200 keeps the wide tables. Robust AUROCs on too few images are
marked with their counts; a bootstrap p of 0 prints as below 2/B; one worst-subgroup row per
pair when there is one attribute."""

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from metrics_data import fake_run, write_dataset

from spurspec.datasets.isic import ARTEFACTS
from spurspec.metrics.cells import small_cell

pytestmark = pytest.mark.e2e

EVALUATE_SHOWN = ("auroc", "robust_auroc", "worst_subgroup_auroc", "auprc", "sensitivity", "specificity")


def tokens(stdout: str) -> set[str]:
    return set(stdout.replace("│", " ").replace("┃", " ").split())


def table_lines(stdout: str) -> list[str]:
    return [line for line in stdout.splitlines() if line[:1] in "┏┃┡│└┌├"]


def assert_fits(stdout: str, width: int) -> None:
    assert "…" not in stdout
    assert max(len(line) for line in table_lines(stdout)) <= width


@pytest.fixture(scope="module")
def isic_like(tmp_path_factory):
    """240 images with the 7 ISIC artefacts; in the test split `patches` has robust cells of 1
    positive (without patches) and 2 negatives (with them); predictions under two summaries."""
    d = tmp_path_factory.mktemp("isic")
    rng = np.random.default_rng(0)
    n = 240
    label = rng.integers(0, 2, n)
    split = np.array(["train", "val", "test"])[np.arange(n) % 3]
    attrs = {a: rng.integers(0, 2, n).tolist() for a in ARTEFACTS}
    patches = label.copy()
    test_pos, test_neg = (np.flatnonzero((split == "test") & (label == y)) for y in (1, 0))
    patches[test_pos[:1]] = 0
    patches[test_neg[:2]] = 1
    attrs["patches"] = patches.tolist()
    m = write_dataset(d / "ds", label.tolist(), attrs, split.tolist(), name="isic")
    ids = m.column("image_id").to_pylist()
    scores = [label * 0.6 + 0.8 * np.asarray(attrs["ruler"]) + rng.normal(0, 0.5, n) for _ in range(2)]
    pq.write_table(pa.table({"image_id": ids * 2, "split": split.tolist() * 2, "summary": ["mean"] * n + ["max"] * n,
                             "score": np.concatenate(scores)}), d / "p.parquet")
    return d


def evaluate(cli, monkeypatch, d, columns: str, out: str):
    monkeypatch.setenv("COLUMNS", columns)
    res = cli(["evaluate", "--predictions", d / "p.parquet", "--dataset", d / "ds", "--out", d / out, "--bootstrap", "100"])
    return res.stdout, pq.read_table(d / out / "metrics.parquet").to_pylist()


def assert_every_number_whole(stdout: str, rows: list[dict], keys: tuple[str, ...], formats: tuple[str, ...]) -> None:
    words = tokens(stdout)
    for r in rows:
        for key, fmt in zip(keys, formats, strict=True):
            if r[key] is not None:
                assert any(w.strip("[],*") == fmt.format(r[key]) for w in words), (r, key)


def test_evaluate_seven_attributes_at_80_columns(cli, monkeypatch, isic_like):
    stdout, rows = evaluate(cli, monkeypatch, isic_like, "80", "ev80")
    assert_fits(stdout, 80)
    assert "value [95% CI]" in stdout  # the long format: one row per summary, metric and attribute
    shown = [r for r in rows if r["metric"] in EVALUATE_SHOWN and (r["metric"] == "robust_auroc" or r["attribute"] is None)]
    assert_every_number_whole(stdout, shown, ("value", "ci_low", "ci_high"), ("{:.3f}", "{:.2f}", "{:.2f}"))
    for r in (r for r in shown if r["metric"] == "robust_auroc"):  # each on one line, with its attribute
        line = next(line for line in stdout.splitlines() if f"│ {r['summary']} " in line and f" {r['attribute']} " in line)
        assert f"{r['value']:.3f}" in line


def test_evaluate_marks_robust_cells_too_small_to_tell(cli, monkeypatch, isic_like):
    stdout, rows = evaluate(cli, monkeypatch, isic_like, "80", "ev-small")
    small = {(r["attribute"], r["n_pos"], r["n_neg"]) for r in rows
             if r["metric"] == "robust_auroc" and r["value"] is not None and small_cell(r["n_pos"], r["n_neg"])}
    assert ("patches", 1, 2) in small
    legend = [line for line in stdout.splitlines() if line.startswith("* robust AUROC")]
    assert len(legend) == len(small)
    assert any("(patches): too few images to tell, 3 robust test images: 1 positive, 2 negatives" in line for line in legend)
    marked = [line for line in stdout.splitlines() if " patches " in line and "robust AUROC" in line]
    assert len(marked) == 2 and all(line.rstrip(" │").endswith("*") for line in marked)  # both summaries


def test_evaluate_keeps_the_wide_table_at_200_columns(cli, monkeypatch, isic_like):
    stdout, rows = evaluate(cli, monkeypatch, isic_like, "200", "ev200")
    assert_fits(stdout, 200)
    assert "value [95% CI]" not in stdout
    assert any("summary" in line and "specificity" in line for line in table_lines(stdout))  # one header row
    shown = [r for r in rows if r["metric"] in EVALUATE_SHOWN and (r["metric"] == "robust_auroc" or r["attribute"] is None)]
    assert_every_number_whole(stdout, shown, ("value", "ci_low", "ci_high"), ("{:.3f}", "{:.2f}", "{:.2f}"))


@pytest.fixture(scope="module")
def one_attribute(tmp_path_factory):
    """Image-label and mask runs, two seeds each, on a dataset with one attribute (as the demo)."""
    d = tmp_path_factory.mktemp("one")
    rng = np.random.default_rng(2)
    n = 300
    label = rng.integers(0, 2, n)
    tube = np.where(rng.random(n) < 0.75, label, 1 - label)
    m = write_dataset(d / "ds", label.tolist(), {"chest_tube": tube.tolist()},
                      np.array(["train", "val", "test"])[np.arange(n) % 3].tolist(),
                      patients=[f"p{i // 2:04d}" for i in range(n)])
    for g, shortcut in (("binary", 1.2), ("seg", 0.1)):
        for seed in (0, 1):
            fake_run(d / "runs" / f"{g}-{seed}", d / "ds", m, g, seed, shortcut,
                     summaries=("image",) if g == "binary" else ("mean",))
    return d


def compare(cli, monkeypatch, d, columns: str, out: str):
    monkeypatch.setenv("COLUMNS", columns)
    res = cli(["compare", d / "runs" / "binary-0", d / "runs", "--bootstrap", "200", "--out", d / out])
    return res.stdout, pq.read_table(d / out).to_pylist()


def test_compare_at_80_columns(cli, monkeypatch, one_attribute):
    stdout, rows = compare(cli, monkeypatch, one_attribute, "80", "c80.parquet")
    assert_fits(stdout, 80)
    assert "seg vs binary, seed 0" in stdout and "seg vs binary, seed 1" in stdout  # one table per pair
    shown = [r for r in rows if r["metric"] in ("auroc", "robust_auroc", "worst_subgroup_auroc")]
    assert_every_number_whole(stdout, shown, ("a", "b", "diff", "ci_low", "ci_high"),
                              ("{:.3f}", "{:.3f}", "{:+.3f}", "{:+.3f}", "{:+.3f}"))
    # A p of 0 (no replicate crossed 0) is below the 200 replicates' resolution, 2/200.
    zero = sum(r["p_value"] == 0 for r in shown)
    assert zero and stdout.count("< 0.01") == zero


def test_compare_has_one_row_per_pair_and_metric(cli, monkeypatch, one_attribute):
    stdout, rows = compare(cli, monkeypatch, one_attribute, "80", "c-dup.parquet")
    keys = [(r["group"], r["replicate"], r["metric"], r["attribute"]) for r in rows]
    assert len(keys) == len(set(keys))
    # With one attribute, the worst subgroup over all attributes is that attribute's: one row, named.
    assert [k for k in keys if k[2] == "worst_subgroup_auroc"] == [
        ("seg", "seed 0", "worst_subgroup_auroc", "chest_tube"), ("seg", "seed 1", "worst_subgroup_auroc", "chest_tube")]
    assert stdout.count("worst_subgroup_auroc") == 2


def test_compare_keeps_the_wide_table_at_200_columns(cli, monkeypatch, one_attribute):
    stdout, rows = compare(cli, monkeypatch, one_attribute, "200", "c200.parquet")
    assert_fits(stdout, 200)
    assert any("group" in line and "replicate" in line and "DeLong p" in line for line in table_lines(stdout))
    assert sum(line.startswith("│ seg ") for line in stdout.splitlines()) == 3 * 2 + 2  # 3 metrics x 2 seeds; 2 means
