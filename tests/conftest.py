"""Shared fixtures: the real label files under ../shared/data (skip with a reason if absent),
a CLI runner over the real Typer app, and single-threaded torch so tests share 2 cores well."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("OMP_NUM_THREADS", "1")

PROJECT_ROOT = Path(__file__).resolve().parents[1]


def real_data_dir() -> Path:
    return Path(os.environ.get("SPURSPEC_REAL_DATA", PROJECT_ROOT.parent / "shared" / "data"))


@pytest.fixture
def real_data() -> Path:
    root = real_data_dir()
    if not (root / "README.md").exists():
        pytest.skip(f"real label files not found at {root} (set SPURSPEC_REAL_DATA)")
    return root


@pytest.fixture
def cli():
    """Invoke the real CLI in-process: cli(["ingest", "synthetic", ...]) -> click Result."""
    from typer.testing import CliRunner

    from spurspec.cli.main import app

    runner = CliRunner()

    def invoke(args: list[str], expect: int | None = 0):
        result = runner.invoke(app, [str(a) for a in args])
        if expect is not None and result.exit_code != expect:
            raise AssertionError(
                f"spurspec {' '.join(map(str, args))} exited {result.exit_code}, expected {expect}\n"
                f"stdout:\n{result.stdout}\nstderr:\n{getattr(result, 'stderr', '')}\n"
                f"exception: {result.exception!r}"
            )
        return result

    return invoke
