"""A pipeline is checked whole before any job starts: a bad value in any stage's table, beside an
ingest that would run, stops `spurspec run` (and its dry run) with exit 2 and one `error:` line
naming the pipeline file and the table, and nothing is written: no study directory, no job."""

from __future__ import annotations

from pathlib import Path

import pytest

VALID = """
[study]
name = "checked"

[datasets.syn]
source = "synthetic"
n = 40
size = 32
seed = 0

[train]
granularities = ["binary"]
seeds = [0]
epochs = 1
batch_size = 8
workers = 0

[evaluate]
bootstrap = 10
"""

# case: (the edits to VALID, each (text, replacement); the table the error names; what it says)
BAD = {
    "grid_k_zero": ([('["binary"]', '["grid:0"]')], "train", "granularity grid:0: K must be at least 1"),
    "unknown_method": ([("seeds = [0]", 'seeds = [0]\nmethods = ["nope"]')], "train", "unknown method 'nope'"),
    "bad_method_setting": ([("seeds = [0]", 'seeds = [0]\nmethods = ["rrr"]\nrrr_weight = -1.0')], "train",
                           "rrr_weight must be >= 0"),
    "bad_summary": ([('["binary"]', '["seg"]\nsummary = "top"')], "train", "unknown summarising function 'top'"),
    "negative_mask_budget": ([('["binary"]', '["seg"]\nmask_budgets = [-3]')], "train", "mask budget -3"),
    "bad_train_fraction": ([("epochs = 1", "epochs = 1\ntrain_fraction = 1.5")], "train", "train fraction 1.5"),
    "epochs_this_run": ([("epochs = 1", "epochs = 2\nepochs_this_run = 1")], "train", "epochs_this_run pauses a run"),
    "negative_seed": ([("seeds = [0]", "seeds = [0, -1]")], "train", "seed must be between 0 and"),
    # a U-Net halves the image 5 times: 40 px images cannot train seg, as the dataset's size says
    "pixel_size": ([('["binary"]', '["seg"]'), ("size = 32", "size = 40")], "datasets.syn",
                   "images of 40 px cannot train a pixel model"),
    "bad_ingest_setting": ([("n = 40", "n = 4")], "datasets.syn", "need at least 8 images"),
    "bad_evaluate_setting": ([("bootstrap = 10", "bootstrap = -1")], "evaluate", "bootstrap must be >= 0"),
    "bad_probe_setting": ([("[evaluate]", '[probe]\ninsert = ["tube"]\nplacement = "left"\n\n[evaluate]')], "probe",
                          "placement 'left'"),
    "bad_boxes_setting": ([('["binary"]', '["bbox"]'), ("[evaluate]", '[boxes]\nmode = "tight"\n\n[evaluate]')], "boxes",
                          "unknown box mode 'tight'"),
}


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "study.toml"
    path.write_text(text)
    return path


def _refused(cli, tmp_path: Path, path: Path, args: list[str], table: str, message: str) -> None:
    study = tmp_path / "study"
    result = cli(["run", path, "--out", study, *args], expect=2)
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {path} [{table}]: "), result.stderr
    assert message in lines[0]
    assert "job 1 of" not in result.stdout  # nothing started
    assert not study.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name]  # nothing written anywhere


@pytest.mark.parametrize("case", sorted(BAD))
@pytest.mark.parametrize("dry_run", [False, True], ids=["run", "dry-run"])
def test_a_bad_value_stops_the_study_before_its_ingest(cli, tmp_path, case, dry_run):
    edits, table, message = BAD[case]
    text = VALID
    for old, new in edits:
        assert old in text
        text = text.replace(old, new, 1)
    _refused(cli, tmp_path, _write(tmp_path, text), ["--dry-run"] if dry_run else [], table, message)


def test_a_missing_folder_table_stops_a_run_and_warns_a_dry_run(cli, tmp_path):
    """Paths that must exist are checked too: a real run stops; a dry run, often made before the
    data paths are set, warns and lists the jobs."""
    text = VALID.replace('source = "synthetic"\nn = 40', f'source = "folder"\ntable = "{tmp_path / "no-such.csv"}"')
    path = _write(tmp_path, text)
    _refused(cli, tmp_path, path, [], "datasets.syn", "no-such.csv' does not exist")
    result = cli(["run", path, "--out", tmp_path / "study", "--dry-run"])
    assert f"warning: {path} [datasets.syn]: table = " in result.stdout and "a real run would stop here" in result.stdout
    assert not (tmp_path / "study").exists()


def test_a_bad_set_value_is_named_with_the_table_it_lands_in(cli, tmp_path):
    path = _write(tmp_path, VALID)
    _refused(cli, tmp_path, path, ["--set", "evaluate.threshold=sensitivity:2"], "evaluate", "sensitivity")


def test_the_valid_study_plans(cli, tmp_path):
    """The file every case above breaks is itself valid: its dry run lists its jobs."""
    result = cli(["run", _write(tmp_path, VALID), "--out", tmp_path / "study", "--dry-run"])
    assert "syn binary seed=0" in result.stdout and "error" not in result.stdout
    assert not (tmp_path / "study").exists()
