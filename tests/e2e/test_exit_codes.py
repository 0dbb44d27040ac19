"""README's exit codes through the real CLI, one row per case: 2 for bad input or settings, 3 for
a missing or stale artefact, 4 for an existing output the user did not ask to replace; each
failure prints exactly one line on stderr, starting with `error:`. The runs come from one tiny
synthetic dataset, trained for one epoch once per module; each case works on its own copy."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from spurspec.artefacts.layout import RunLayout

pytestmark = pytest.mark.e2e
FAST = ["--epochs", "1", "--batch-size", "8", "--workers", "0", "--device", "cpu"]
SMALL = ["--n", "64", "--size", "32"]


@pytest.fixture(scope="module")
def study(tmp_path_factory) -> Path:
    """ds (a dataset), trained (a finished run, not evaluated), run (the same, evaluated) and
    report (a report of run)."""
    from typer.testing import CliRunner

    from spurspec.cli.main import app

    d = tmp_path_factory.mktemp("exit_codes")
    runner = CliRunner()

    def ok(*args: object) -> None:
        res = runner.invoke(app, [str(a) for a in args])
        assert res.exit_code == 0, f"spurspec {' '.join(map(str, args))}: {res.output}{res.exception!r}"

    ok("ingest", "synthetic", "--out", d / "ds", *SMALL)
    ok("train", d / "ds", "--out", d / "trained", *FAST)
    shutil.copytree(d / "trained", d / "run")
    ok("evaluate", d / "run", "--bootstrap", "0", "--device", "cpu")
    ok("report", d / "run", "--out", d / "report")
    return d


def _copy(study: Path, name: str, tmp: Path) -> Path:
    return Path(shutil.copytree(study / name, tmp / name))


def no_config(study: Path, tmp: Path) -> list:
    (tmp / "empty").mkdir()
    return ["evaluate", tmp / "empty"]


def no_checkpoint(study: Path, tmp: Path) -> list:
    run = _copy(study, "trained", tmp)
    RunLayout(run).checkpoint("best").unlink()
    return ["evaluate", run, "--bootstrap", "0", "--device", "cpu"]


def not_evaluated(study: Path, tmp: Path) -> list:
    return ["report", _copy(study, "trained", tmp), "--out", tmp / "report"]


def predictions_without_manifest(study: Path, tmp: Path) -> list:
    (tmp / "no-dataset").mkdir()
    pq.write_table(pa.table({"image_id": ["a", "b"], "score": [0.1, 0.9]}), tmp / "p.parquet")
    return ["evaluate", "--predictions", tmp / "p.parquet", "--dataset", tmp / "no-dataset", "--out", tmp / "ev"]


def train_without_manifest(study: Path, tmp: Path) -> list:
    (tmp / "no-dataset").mkdir()
    return ["train", tmp / "no-dataset", "--out", tmp / "run", *FAST]


def metrics_of_another_version(study: Path, tmp: Path) -> list:
    run = _copy(study, "run", tmp)
    table = pq.read_table(RunLayout(run).metrics)
    meta = {**(table.schema.metadata or {}), b"spurspec.schema_version": b"0"}
    pq.write_table(table.replace_schema_metadata(meta), RunLayout(run).metrics)
    return ["report", run, "--out", tmp / "report"]


def train_with(*flags: str) -> Callable[[Path, Path], list]:
    return lambda study, tmp: ["train", study / "ds", "--out", tmp / "run", *FAST, *flags]


def bad_threshold(study: Path, tmp: Path) -> list:
    return ["evaluate", _copy(study, "trained", tmp), "--threshold", "bogus", "--bootstrap", "0", "--device", "cpu"]


def ingest_into_foreign_dir(study: Path, tmp: Path) -> list:
    (tmp / "mine").mkdir()
    (tmp / "mine" / "notes.txt").write_text("not a dataset")
    return ["ingest", "synthetic", "--out", tmp / "mine", *SMALL]


def train_over_finished_run(study: Path, tmp: Path) -> list:
    return ["train", study / "ds", "--out", _copy(study, "trained", tmp), *FAST]


def report_over_other_runs(study: Path, tmp: Path) -> list:
    other = Path(shutil.copytree(study / "run", tmp / "other-run"))
    return ["report", other, "--out", _copy(study, "report", tmp)]


CASES = [
    ("evaluate a directory without config.toml", 3, no_config),
    ("evaluate a run whose checkpoint is missing", 3, no_checkpoint),
    ("report a trained but unevaluated run", 3, not_evaluated),
    ("evaluate predictions of a dataset without manifest", 3, predictions_without_manifest),
    ("train on a directory without manifest", 3, train_without_manifest),
    ("report a run whose metrics have another schema version", 3, metrics_of_another_version),
    ("train --lr 0", 2, train_with("--lr", "0")),
    ("train --granularity grid:0", 2, train_with("--granularity", "grid:0")),
    ("train --granularity grid", 2, train_with("--granularity", "grid")),
    ("evaluate --threshold bogus", 2, bad_threshold),
    ("ingest synthetic into a non-empty foreign directory", 4, ingest_into_foreign_dir),
    ("train into a finished run without --resume or --force", 4, train_over_finished_run),
    ("report into a report of other runs", 4, report_over_other_runs),
]


@pytest.mark.parametrize(("case", "code", "args"), CASES, ids=[c for c, _, _ in CASES])
def test_exit_code_and_one_error_line(cli, study, tmp_path, case, code, args):
    argv = args(study, tmp_path)
    res = cli(argv, expect=None)
    lines = res.stderr.strip().splitlines()
    assert (res.exit_code, len(lines)) == (code, 1) and lines[0].startswith("error: "), (
        f"{case}: spurspec {' '.join(map(str, argv))}\nexit {res.exit_code} (README: {code}); stderr:\n{res.stderr}"
        f"\nexception: {res.exception!r}"
    )


@pytest.mark.parametrize("workers", [1, 2])
def test_full_disk_is_one_line_and_leaves_nothing(cli, tmp_path, monkeypatch, workers):
    """A disk that fills while ingest writes its arrays (in this process, or in forked workers
    that write their own rows): exit 1, one `error:` line naming the file and the system's
    reason, and no dataset folder or staging leftover (a writable memmap would have died of
    SIGBUS here instead)."""
    import errno
    import os

    def full(fd, data, offset):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "pwrite", full)
    res = cli(["ingest", "synthetic", "--out", tmp_path / "ds", *SMALL, "--workers", str(workers)], expect=1)
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "No space left on device" in lines[0], res.stderr
    assert "images.npy" in lines[0]
    assert list(tmp_path.iterdir()) == []


def test_worker_that_cannot_open_the_arrays_is_one_line_and_leaves_nothing(cli, tmp_path, monkeypatch):
    """A worker process that cannot open the arrays it writes into (too many open files, a
    permission changed underneath): exit 1, one `error:` line naming the file, nothing left; not a
    BrokenProcessPool traceback, which is what an exception in the pool's initializer becomes."""
    import errno
    import os

    from spurspec.artefacts import io

    def refuse(self):
        raise OSError(errno.EMFILE, os.strerror(errno.EMFILE), str(self.path))

    monkeypatch.setattr(io.RowFile, "reopened", refuse)  # forked workers inherit the patch
    res = cli(["ingest", "synthetic", "--out", tmp_path / "ds", *SMALL, "--workers", "2"], expect=1)
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Too many open files" in lines[0], res.stderr
    assert "images.npy" in lines[0]
    assert list(tmp_path.iterdir()) == []
