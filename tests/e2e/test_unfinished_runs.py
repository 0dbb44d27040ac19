"""Completeness is part of a result, through the real CLI on tiny trained runs: `evaluate` of a
paused run says it scored an unfinished model and records how far it had trained; `report` and
`compare` mark unfinished runs and leave them out of means and pairs unless
--include-unfinished; two runs of one group and replicate are refused (exit 2, naming both)
unless --keep names the one to count."""

from __future__ import annotations

import json
import shutil
import statistics
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import torch
from tiny_dataset import make

pytestmark = pytest.mark.e2e
FAST = ["--batch-size", "8", "--workers", "0", "--device", "cpu"]
BOOT = ["--bootstrap", "20"]
# The tiny dataset's robust cells are under the report's cell-size rule: every run's note says so.
SMALL = "too few images to tell (7 robust test images: 4 positives, 3 negatives)"


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> Path:
    """binary seeds 0 (finished) and 1 (paused after 1 of 3 epochs), seg seeds 0 and 1
    (finished), each evaluated; runs/ holds them, the dataset is ds/."""
    from typer.testing import CliRunner

    from spurspec.cli.main import app

    torch.set_num_threads(1)
    d = tmp_path_factory.mktemp("completion")
    make(d / "ds")
    commands = [
        ["train", d / "ds", "--out", d / "runs" / "b0", "--epochs", "1", "--seed", "0", *FAST],
        ["train", d / "ds", "--out", d / "runs" / "b1", "--epochs", "3", "--epochs-this-run", "1", "--seed", "1", *FAST],
        ["train", d / "ds", "--out", d / "runs" / "s0", "--granularity", "seg", "--epochs", "1", "--seed", "0", *FAST],
        ["train", d / "ds", "--out", d / "runs" / "s1", "--granularity", "seg", "--epochs", "1", "--seed", "1", *FAST],
    ]
    commands += [["evaluate", d / "runs" / r, *BOOT] for r in ("b0", "b1", "s0", "s1")]
    runner = CliRunner()
    for args in commands:
        res = runner.invoke(app, [str(a) for a in args])
        assert res.exit_code == 0, (args, res.output)
    return d


def _robust(run: Path, summary: str) -> float:
    rows = pq.read_table(run / "metrics.parquet").to_pylist()
    return next(r["value"] for r in rows if r["metric"] == "robust_auroc" and r["attribute"] == "chest_tube"
                and r["summary"] == summary)


def _table_row(md: str, heading: str, first_cell: str) -> list[str]:
    """The cells of the row starting with `first_cell` in the first table after `heading`."""
    section = md.split(f"## {heading}\n", 1)[1].split("\n## ", 1)[0]
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("|") and cells[0] == first_cell:
            return cells
    raise AssertionError(f"no row {first_cell!r} under {heading!r}:\n{section}")


def _one_error(res) -> str:
    lines = [line for line in res.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "Traceback" not in res.output, res.output
    return lines[0]


def test_evaluate_of_a_paused_run_says_so_and_records_what_it_scored(runs, cli):
    b1, b0 = runs / "runs" / "b1", runs / "runs" / "b0"
    facts = json.loads((b1 / "provenance" / "evaluate.json").read_text())
    assert facts["completion"] == {"finished": False, "epochs": 1, "planned": 3, "stopped_early": False}
    assert json.loads((b0 / "provenance" / "evaluate.json").read_text())["completion"]["finished"] is True
    # Up to date: nothing is recomputed, and the note is still there.
    res = cli(["evaluate", b1, *BOOT])
    assert "up to date" in res.stdout
    notes = [line for line in res.stdout.splitlines() if line.startswith("note:")]
    assert len(notes) == 1 and f"{b1}: unfinished: 1 of 3 epochs; scored its best checkpoint so far" in notes[0]
    assert f"--out {b1} --resume" in notes[0] and "--force" in notes[0]
    assert "note:" not in cli(["evaluate", b0, *BOOT]).stdout


def test_report_leaves_an_unfinished_run_out_of_the_mean_and_marks_it(runs, cli):
    b0, b1, out = runs / "runs" / "b0", runs / "runs" / "b1", runs / "rep"
    res = cli(["report", b0, b1, "--out", out])
    assert "report of 1 run (1 unfinished left out)" in res.stdout
    assert f"{b1} (unfinished: 1 of 3 epochs)" in res.stdout and "--include-unfinished" in res.stdout
    md = (out / "report.md").read_text()
    assert "1 unfinished run left out of means, pairs and figures" in md
    # The mean over seeds is the finished run's own value: one seed counted, not two.
    assert _table_row(md, "Mean ± sd over seeds", "binary")[1:4:2] == ["1", f"{_robust(b0, 'image'):.3f}"]
    assert _table_row(md, "Every run", "b1")[-1] == f"unfinished 1/3; left out of means; {SMALL}"
    assert _table_row(md, "Every run", "b0")[-1] == SMALL
    table = pq.read_table(out / "results.parquet").to_pylist()
    assert {(Path(r["run"]).name, r["finished"], r["epochs"], r["planned_epochs"], r["counted"]) for r in table} == {
        ("b0", True, 1, 1, True), ("b1", False, 1, 3, False)}
    again = cli(["report", b0, b1, "--out", out])  # up to date, and still says what it leaves out
    assert "up to date" in again.stdout and f"{b1} (unfinished: 1 of 3 epochs)" in again.stdout

    res = cli(["report", b0, b1, "--out", runs / "rep-all", "--include-unfinished"])
    assert "report of 2 runs:" in res.stdout and "counted although unfinished" in res.stdout
    md = (runs / "rep-all" / "report.md").read_text()
    both = [_robust(b0, "image"), _robust(b1, "image")]
    mean = f"{statistics.mean(both):.3f} ± {statistics.stdev(both):.3f}"
    assert _table_row(md, "Mean ± sd over seeds", "binary (1 unfinished)")[1:4:2] == ["2", mean]
    assert _table_row(md, "Every run", "b1")[-1] == f"unfinished 1/3; {SMALL}"


def test_a_group_without_a_finished_run_is_said_plainly(runs, cli):
    r = runs / "runs"
    res = cli(["report", r / "s0", r / "s1", r / "b1", "--out", runs / "rep-seg"])
    assert "binary has no finished run" in res.stdout
    md = (runs / "rep-seg" / "report.md").read_text()
    assert "| binary |" not in md.split("## Every run", 1)[0]  # in no mean, pair or figure
    assert _table_row(md, "Every run", "b1")[-1] == f"unfinished 1/3; left out of means; {SMALL}"
    # Only unfinished runs: nothing to report until they finish or are asked for.
    res = cli(["report", r / "b1", "--out", runs / "rep-none"], expect=3)
    assert "no finished runs" in _one_error(res) and not (runs / "rep-none").exists()


def test_two_runs_of_one_group_and_seed_are_refused_unless_one_is_kept(runs, cli, tmp_path):
    b0 = runs / "runs" / "b0"
    twin = tmp_path / "b0-again"
    shutil.copytree(b0, twin)
    out = tmp_path / "rep"
    res = cli(["report", b0, twin, "--out", out], expect=2)
    error = _one_error(res)
    assert str(b0) in error and str(twin) in error and "binary seed 0" in error and "--keep" in error
    assert not out.exists() and not any(p.name.startswith(".rep") for p in tmp_path.iterdir())
    res = cli(["report", b0, twin, "--out", out, "--keep", twin])
    assert f"left out {b0}: the same binary seed 0 as {twin}" in res.stdout
    assert {Path(r["run"]).name for r in pq.read_table(out / "results.parquet").to_pylist()} == {"b0-again"}
    res = cli(["report", b0, twin, "--out", tmp_path / "rep2", "--keep", tmp_path / "elsewhere"], expect=2)
    assert "--keep" in _one_error(res) and not (tmp_path / "rep2").exists()


def test_compare_counts_runs_as_the_report_does(runs, cli, tmp_path, monkeypatch):
    monkeypatch.setenv("COLUMNS", "250")  # the printed tables' cells unwrapped
    r = runs / "runs"
    res = cli(["compare", r / "b0", r / "b1", r / "s0", r / "s1", *BOOT, "--out", tmp_path / "c.parquet"])
    assert f"{r / 'b1'} (unfinished: 1 of 3 epochs)" in res.stdout and "no binary run with seed 1" in res.stdout
    assert {row["replicate"] for row in pq.read_table(tmp_path / "c.parquet").to_pylist()} == {"seed 0"}
    res = cli(["compare", r / "b0", r / "b1", r / "s0", r / "s1", *BOOT, "--include-unfinished",
               "--out", tmp_path / "all.parquet"])
    assert "seed 1, reference unfinished 1/3" in res.stdout and "2 (1 unfinished)" in res.stdout
    assert {row["replicate"] for row in pq.read_table(tmp_path / "all.parquet").to_pylist()} == {"seed 0", "seed 1"}

    twin = tmp_path / "s0-again"
    shutil.copytree(r / "s0", twin)
    res = cli(["compare", r / "b0", r / "s0", twin, *BOOT, "--out", tmp_path / "dup.parquet"], expect=2)
    error = _one_error(res)
    assert str(r / "s0") in error and str(twin) in error and "seg seed 0" in error
    assert not (tmp_path / "dup.parquet").exists()
    res = cli(["compare", r / "b0", r / "s0", twin, *BOOT, "--keep", r / "s0", "--out", tmp_path / "dup.parquet"])
    assert {row["run"] for row in pq.read_table(tmp_path / "dup.parquet").to_pylist()} == {str(r / "s0")}


def test_a_run_finished_since_its_evaluation_is_reported_as_evaluated(runs, cli, tmp_path):
    """As before, report reads the metrics evaluate wrote, stale or not; it counts the run by the
    model those metrics describe (unfinished) and says how to score it as it is now."""
    resumed = runs / "runs" / "b1-resumed"
    shutil.copytree(runs / "runs" / "b1", resumed)
    cli(["train", runs / "ds", "--out", resumed, "--resume", *FAST])
    res = cli(["report", runs / "runs" / "b0", resumed, "--out", tmp_path / "rep"])
    assert "1 unfinished left out" in res.stdout
    assert f"{resumed} was evaluated at unfinished: 1 of 3 epochs and is now finished: 3 of 3 epochs" in res.stdout
    assert f"spurspec evaluate {resumed} --force" in res.stdout
