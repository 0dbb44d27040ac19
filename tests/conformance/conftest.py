"""Every test under tests/conformance/ carries the `conformance` marker (`pytest -m conformance`
runs the suite alone; `make test` runs it with the rest)."""

from __future__ import annotations

from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(items):
    for item in items:
        if HERE in Path(str(item.fspath)).resolve().parents:
            item.add_marker(pytest.mark.conformance)
