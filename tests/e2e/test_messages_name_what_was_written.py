"""What the CLI says names what the user wrote, through the real CLI: a wrong key in a pipeline
table or a --config file is one `error:` line naming the file, the table and the closest valid
key; an unknown `ingest` source lists the sources; each exits 2 and writes nothing. `spurspec
run`'s job table never hides a job's directory name behind "…"."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

SOURCES = "siim, isic, folder, synthetic"


def _only_error_line(result) -> str:
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert not result.stdout, result.stdout
    return lines[0]


OWN = """
[study]
name = "own"

[datasets.mine]
source = "folder"
table = "labels.csv"
image_col = "image"
label_col = "abnormal"
spurious_col = ["tube"]

[train]
granularities = ["binary"]
seeds = [0]
"""


@pytest.mark.parametrize("dry_run", [False, True], ids=["run", "dry-run"])
def test_a_wrong_key_in_a_pipeline_dataset_names_the_file_table_and_closest_key(cli, tmp_path, monkeypatch, dry_run):
    monkeypatch.chdir(tmp_path)
    Path("own.toml").write_text(OWN)
    result = cli(["run", "own.toml", *(["--dry-run"] if dry_run else [])], expect=2)
    assert _only_error_line(result) == \
        "error: own.toml [datasets.mine]: unknown key 'spurious_col'; did you mean 'spurious_cols'?"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["own.toml"]  # no study directory, no job


def test_a_wrong_key_nothing_is_close_to_lists_the_valid_keys(cli, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    Path("own.toml").write_text(OWN.replace("spurious_col = ", "zzz = "))
    line = _only_error_line(cli(["run", "own.toml"], expect=2))
    assert line.startswith("error: own.toml [datasets.mine]: unknown key 'zzz'; valid: allow_outside_root, channels, ")
    assert "spurious_cols" in line and "did you mean" not in line


def test_a_wrong_key_in_a_config_file_names_the_file_and_closest_key(cli, tmp_path):
    config = tmp_path / "settings.toml"
    config.write_text("sise = 64\n")
    result = cli(["ingest", "synthetic", "--out", tmp_path / "ds", "--config", config], expect=2)
    assert _only_error_line(result) == f"error: {config}: unknown key 'sise'; did you mean 'size'?"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["settings.toml"]


@pytest.mark.parametrize(("args", "said"), [
    (["nih"], f"unknown source 'nih'; sources: {SOURCES}"),
    (["nih", "data", "--out", "ds"], f"unknown source 'nih'; sources: {SOURCES}"),
    (["sim", "data", "--out", "ds"], f"unknown source 'sim'; did you mean 'siim'? sources: {SOURCES}"),
], ids=["alone", "with-arguments", "close-to-one"])
def test_an_unknown_ingest_source_lists_the_sources(tmp_path, args, said):
    result = _spurspec(["ingest", *args], tmp_path)
    assert result.returncode == 2
    assert _only_error_line(result) == f"error: spurspec ingest: {said} (see spurspec ingest --help)"
    assert list(tmp_path.iterdir()) == []


def test_an_unknown_command_names_the_closest(tmp_path):
    result = _spurspec(["trian"], tmp_path)
    assert result.returncode == 2
    assert _only_error_line(result).startswith(
        "error: spurspec: unknown command 'trian'; did you mean 'train'? commands: ingest, derive-boxes, train, ")


def _spurspec(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """The installed command itself (the in-process runner names the program "root")."""
    return subprocess.run([sys.executable, "-m", "spurspec.cli.main", *args], cwd=cwd, capture_output=True, text=True,
                          check=False)


LONG = """
[study]
name = "wide"

[datasets.chest_films]
source = "synthetic"
n = 40
size = 32

[train]
granularities = ["binary", "seg", "grid:4"]
seeds = [0]
"""


def _job_cells(stdout: str) -> list[str]:
    """The job column's text, line by line of the table's body (a folded id spans lines)."""
    return [line.split("│")[-2].strip() for line in stdout.splitlines() if line.startswith("│")]


@pytest.mark.parametrize("columns", ["80", "44"])
def test_the_job_table_hides_no_job_name(cli, tmp_path, monkeypatch, columns):
    """At 80 columns every id is whole on its line; at 44 an id folds onto the next line, and the
    column read top to bottom is still every id, character for character. Never "…"."""
    from spurspec.pipeline import plan, spec

    monkeypatch.setenv("COLUMNS", columns)
    path = tmp_path / "wide.toml"
    path.write_text(LONG)
    result = cli(["run", path, "--dry-run", "--out", tmp_path / "study"])
    ids = [job.key for job in plan.plan(spec.load(path, out=tmp_path / "study"))]
    assert "…" not in result.stdout
    assert max(len(line) for line in result.stdout.splitlines() if line[:1] in "┏┃┡│└") <= int(columns)
    assert "".join(_job_cells(result.stdout)) == "".join(ids)
    whole = [key for key in ids if re.search(rf"│ {re.escape(key)} +│$", result.stdout, flags=re.M)]
    assert whole == ids if columns == "80" else len(whole) < len(ids)
