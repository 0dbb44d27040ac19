"""Every stage checks its own settings, whoever calls it: the same bad value given to a command
and to `spurspec run` is refused with the same one-line error and exit code, and the pipeline
refuses it before its first job starts (its study directory is never made)."""

from __future__ import annotations

from pathlib import Path

import pytest

PIPELINE = """
[study]
name = "checks"

[datasets.d]
{dataset}

[boxes]
{boxes}

[train]
granularities = {granularities}
epochs = 1

[evaluate]
{evaluate}
"""

SYNTHETIC = 'source = "synthetic"\nn = 40\nsize = 32'


def _siim(root: Path, extra: str) -> str:
    return f'source = "siim"\nroot = "{root}"\n{extra}'


# (case, command line after `spurspec`, pipeline settings); {root} is an empty folder, {ds} and
# {run} are paths that need not exist (settings are checked before inputs are read).
CASES = [
    ("siim size", ["ingest", "siim", "{root}", "--out", "{out}", "--size", "4"], {"dataset": lambda r: _siim(r, "size = 4")}),
    ("siim test_fraction", ["ingest", "siim", "{root}", "--out", "{out}", "--test-fraction", "1.5"],
     {"dataset": lambda r: _siim(r, "test_fraction = 1.5")}),
    ("siim seed", ["ingest", "siim", "{root}", "--out", "{out}", "--seed", "-1"], {"dataset": lambda r: _siim(r, "seed = -1")}),
    ("isic size", ["ingest", "isic", "{root}", "--out", "{out}", "--size", "4"],
     {"dataset": lambda r: f'source = "isic"\nroot = "{r}"\nsize = 4'}),
    ("synthetic correlation", ["ingest", "synthetic", "--out", "{out}", "--correlation", "1.5"],
     {"dataset": lambda r: f"{SYNTHETIC}\ncorrelation = 1.5"}),
    ("synthetic seed", ["ingest", "synthetic", "--out", "{out}", "--seed", "-1"], {"dataset": lambda r: f"{SYNTHETIC}\nseed = -1"}),
    # --mode is a choice on the command line, so the value reaches the stage through --config.
    ("derive-boxes mode", ["derive-boxes", "{ds}", "--config", "{toml}"], {"boxes": 'mode = "diagonal"', "granularities": '["bbox"]'}),
    ("train grid:0", ["train", "{ds}", "--granularity", "grid:0", "--out", "{run}"], {"granularities": '["grid:0"]'}),
    ("evaluate bootstrap", ["evaluate", "{run}", "--bootstrap", "-1"], {"evaluate": "bootstrap = -1"}),
]


def _error_line(output: str) -> str:
    lines = [line for line in output.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1, output
    return lines[0]


@pytest.mark.parametrize(("command", "pipeline"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_command_and_pipeline_refuse_the_same_settings_alike(cli, tmp_path, command, pipeline):
    root = tmp_path / "source"
    root.mkdir()
    toml = tmp_path / "boxes.toml"
    toml.write_text('mode = "diagonal"\n')
    paths = {"root": root, "out": tmp_path / "out", "ds": tmp_path / "ds", "run": tmp_path / "run", "toml": toml}
    direct = cli([arg.format(**paths) for arg in command], expect=None)

    fields = {"dataset": SYNTHETIC, "boxes": "", "granularities": '["binary"]', "evaluate": "", **pipeline}
    fields["dataset"] = fields["dataset"](root) if callable(fields["dataset"]) else fields["dataset"]
    spec = tmp_path / "p.toml"
    spec.write_text(PIPELINE.format(**fields))
    study = tmp_path / "study"
    piped = cli(["run", spec, "--out", study], expect=None)

    assert direct.exit_code == piped.exit_code == 2, (direct.output, piped.output)
    # the same message; the pipeline's names the file and table the value came from
    message = _error_line(direct.stderr).removeprefix("error: ")
    assert _error_line(piped.stderr).startswith(f"error: {spec} [")
    assert _error_line(piped.stderr).endswith(f"]: {message}")
    assert "job 1 of" not in piped.stdout  # refused at plan time: no job started
    assert not study.exists() and not paths["out"].exists() and not paths["run"].exists()
