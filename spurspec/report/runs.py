"""Find evaluated runs (a run directory, or any directory holding runs) and read each one's
identity from RUN/config.toml and its metrics from RUN/metrics.parquet into one long table."""

from __future__ import annotations

import json
import re
import tomllib
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import pyarrow as pa

from spurspec.artefacts import io, schemas
from spurspec.artefacts.layout import DatasetLayout, RunLayout
from spurspec.errors import InputError

# The study's published robust AUROC (Saab et al., MLHC 2022), shown beside ours as the reference.
REFERENCE = {
    "SIIM-ACR pneumothorax (chest tubes)": {"binary": 0.46, "bbox": 0.72, "seg": 0.82},
    "ISIC 2018 melanoma (trap sets)": {"binary": 0.36, "seg": 0.73},
}


@dataclass
class Run:
    root: Path
    config: dict[str, Any]
    metrics: pa.Table

    @cached_property
    def metric_rows(self) -> list[dict[str, Any]]:
        """metrics.parquet as dicts, converted once (the report looks values up many times)."""
        return self.metrics.to_pylist()

    @property
    def granularity(self) -> str:
        return str(self.config.get("granularity", "?"))

    @property
    def method(self) -> str:
        return str(self.config.get("method", "erm"))

    @property
    def seed(self) -> int:
        return int(self.config.get("seed", 0))

    @property
    def budget(self) -> str:
        b = self.config.get("mask_budget")
        return "all" if b is None else str(b)

    @property
    def group(self) -> str:
        """What seeds are averaged over: granularity, plus method and budget when not default."""
        parts = [self.granularity]
        if self.method != "erm":
            parts.append(self.method)
        if self.budget != "all":
            parts.append(f"masks={self.budget}")
        return " ".join(parts)

    @property
    def dataset(self) -> Path | None:
        d = self.config.get("dataset")
        if d is None:
            return None
        p = Path(d)
        return p if p.is_absolute() or p.exists() else (self.root / p)


def granularity_key(group: str) -> tuple:
    """Order of spatial specificity: binary < bbox < grid:K (by K) < seg; then the rest of the label."""
    g = group.split(" ")[0]
    rank = {"binary": (0, 0), "bbox": (1, 0), "seg": (3, 0)}.get(g)
    if rank is None:
        m = re.match(r"grid:(\d+)$", g)
        rank = (2, int(m.group(1))) if m else (4, 0)
    return (*rank, group)


def find_runs(paths: list[Path]) -> tuple[list[Run], list[str]]:
    """Evaluated runs under `paths` (sorted), and notes about runs skipped as not evaluated."""
    runs, notes, seen = [], [], set()
    for path in paths:
        path = Path(path)
        if not path.exists():
            raise InputError(f"{path}: no such run or directory")
        candidates = [path] if RunLayout(path).config.exists() else sorted(p.parent for p in path.rglob(RunLayout(path).config.name))
        if not candidates:
            raise InputError(f"{path}: holds no training runs (no config.toml found)")
        for root in candidates:
            layout = RunLayout(root)
            if root.resolve() in seen:
                continue
            seen.add(root.resolve())
            if not layout.metrics.exists():
                if root == path:
                    raise InputError(f"{root}: not evaluated yet; run `spurspec evaluate {root}` first")
                notes.append(f"skipped {root}: not evaluated")
                continue
            try:
                with open(layout.config, "rb") as fh:
                    config = tomllib.load(fh)
            except tomllib.TOMLDecodeError as exc:
                raise InputError(f"{layout.config}: not valid TOML: {exc}") from None
            metrics = schemas.check(io.read_table(layout.metrics, "metrics"), schemas.METRICS, layout.metrics)
            runs.append(Run(root, config, metrics))
    if not runs:
        raise InputError("no evaluated runs found; run `spurspec evaluate RUN` on each run first")
    runs.sort(key=lambda r: (granularity_key(r.group), r.seed, str(r.root)))
    return runs, notes


def combined(runs: list[Run]) -> pa.Table:
    """Every run's metric rows with the run's identity columns in front."""
    tables = []
    for r in runs:
        n = r.metrics.num_rows
        ident = {"run": [str(r.root)] * n, "group": [r.group] * n, "granularity": [r.granularity] * n,
                 "method": [r.method] * n, "mask_budget": [r.budget] * n,
                 "seed": pa.array([r.seed] * n, pa.int64()), "model": [str(r.config.get("model", ""))] * n}
        t = pa.table(ident)
        for name in r.metrics.column_names:
            t = t.append_column(name, r.metrics.column(name))
        tables.append(t)
    return pa.concat_tables(tables)


def reference_for(runs: list[Run]) -> tuple[str | None, dict[str, float]]:
    """The study's reference row set for these runs' dataset (by dataset name or attributes)."""
    hints = []
    for r in runs:
        hints += [str(a) for a in r.metrics.column("attribute").to_pylist() if a]
        if r.dataset is not None and DatasetLayout(r.dataset).info.exists():
            try:
                hints.append(str(json.loads(DatasetLayout(r.dataset).info.read_text()).get("name", "")))
            except (OSError, ValueError):
                continue
    text = " ".join(hints).lower()
    if "siim" in text or "chest_tube" in text or "pneumothorax" in text:
        name = "SIIM-ACR pneumothorax (chest tubes)"
    elif "isic" in text or any(a in text for a in ("dark_corner", "gel_bubble", "ruler", "hair")):
        name = "ISIC 2018 melanoma (trap sets)"
    else:
        return None, {}
    return name, REFERENCE[name]
