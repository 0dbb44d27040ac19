"""Provenance beside every stage's output: the command line, resolved settings, package
versions and fingerprints of the inputs, written to OUTPUT/provenance/<stage>.json. Whether an
output is still up to date with its record is freshness.py's question. Reads the files it
fingerprints."""

from __future__ import annotations

import hashlib
import importlib.metadata
import os
import platform
import sys
from pathlib import Path
from typing import Any

from spurspec.artefacts import io

PACKAGES = ("spurspec", "torch", "monai", "numpy", "pyarrow", "duckdb", "pydicom", "scikit-learn")


def file_digest(path: Path, chunk: int = 1 << 20) -> str:
    """sha256 of a file's contents."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return "sha256:" + h.hexdigest()


def tree_digest(paths: list[Path], root: Path | None = None) -> str:
    """A cheap fingerprint of many files (e.g. 12,000 DICOMs): names, sizes and mtimes, not
    contents, so checking whether an ingest is up to date costs a directory walk, not a decode."""
    h = hashlib.sha256()
    for p in sorted(paths):
        st = os.stat(p)
        name = str(p.relative_to(root)) if root else str(p)
        h.update(f"{name}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return f"stat-sha256:{len(paths)}:" + h.hexdigest()


def versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return out


def record(stage: str, settings: dict[str, Any], inputs: dict[str, str], **facts: Any) -> dict[str, Any]:
    """`facts`: what the stage found rather than was told (e.g. a run's completion); freshness
    compares settings and inputs only."""
    return {
        "stage": stage,
        "argv": list(sys.argv),
        "settings": settings,
        "inputs": inputs,
        "versions": versions(),
        **facts,
    }


def write(path: Path, stage: str, settings: dict[str, Any], inputs: dict[str, str], **facts: Any) -> None:
    io.write_json(path, record(stage, settings, inputs, **facts))
