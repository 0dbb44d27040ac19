"""Dataset sources: each module turns one kind of input into a dataset directory through the
artefact contract. Looked up by name; each module exposes `Config` (its defaults),
`check(cfg)` (refuses bad settings, whoever calls it) and
`ingest(cfg, force=False, progress=None) -> IngestResult`, which calls `check` first.
Beside them, `boxes` is the derive-boxes stage, which writes boxes and grids into a dataset
directory, `common` holds what the sources share and `tables` reads the user's text tables
(bounded, UTF-8, unique column names)."""

from __future__ import annotations

import importlib
from types import ModuleType

from spurspec.registry import Registry

SOURCES: Registry[str] = Registry("dataset source")
SOURCES.add("siim", "spurspec.datasets.siim")
SOURCES.add("synthetic", "spurspec.datasets.synthetic")
SOURCES.add("isic", "spurspec.datasets.isic")
SOURCES.add("folder", "spurspec.datasets.folder")


def get_source(name: str) -> ModuleType:
    return importlib.import_module(SOURCES.get(name))
