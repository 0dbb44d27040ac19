"""Find evaluated runs (a run directory, or any directory holding runs) and read each one through
the run record (spurspec.artefacts.run): identity from RUN/config.toml, metrics from
RUN/metrics.parquet; `combined` joins them into one long table."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa

from spurspec.artefacts.layout import RunLayout
from spurspec.artefacts.run import RunRecord
from spurspec.errors import ArtefactError
from spurspec.training.data import granularity as granularities

# The study's published robust AUROC (Saab et al., MLHC 2022), shown beside ours as the reference.
REFERENCE = {
    "SIIM-ACR pneumothorax (chest tubes)": {"binary": 0.46, "bbox": 0.72, "seg": 0.82},
    "ISIC 2018 melanoma (trap sets)": {"binary": 0.36, "seg": 0.73},
}


@dataclass
class Run:
    """An evaluated run as the report groups it."""

    record: RunRecord

    @property
    def root(self) -> Path:
        return self.record.root

    @property
    def config(self) -> dict[str, Any]:
        return self.record.config

    @property
    def metrics(self) -> pa.Table:
        return self.record.metrics

    @property
    def metric_rows(self) -> list[dict[str, Any]]:
        return self.record.metric_rows

    @property
    def granularity(self) -> str:
        return self.record.granularity

    @property
    def method(self) -> str:
        return self.record.method

    @property
    def seed(self) -> int:
        return self.record.seed

    @property
    def budget(self) -> str:
        b = self.record.mask_budget
        return "all" if b is None else str(b)

    @property
    def group(self) -> str:
        """What seeds are averaged over: granularity, plus method and budget when not default."""
        parts = [self.granularity]
        if self.method != "erm":
            parts.append(self.method)
        if self.budget != "all":
            parts.append(f"masks={self.budget}")
        if self.train_fraction is not None:  # the study's fewer images (--train-fraction)
            parts.append(f"images={self.train_fraction}")
        return " ".join(parts)

    @property
    def train_fraction(self) -> float | None:
        return self.record.config.get("train_fraction")

    @property
    def dataset(self) -> Path:
        return self.record.dataset

    @property
    def source(self) -> str:
        """The dataset's source as its ingest named it (siim, isic, synthetic, folder)."""
        return str(self.record.dataset_info.get("name", ""))

    @property
    def trap_set(self) -> int | None:
        """The ISIC trap set (1-5) the run's dataset was split by, if any."""
        k = self.record.dataset_info.get("trap_seed")
        return None if k is None else int(k)

    @property
    def replicate(self) -> str:
        """What distinguishes this run from the others of its group: trap set and seed."""
        return (f"trap set {self.trap_set} " if self.trap_set is not None else "") + f"seed {self.seed}"


def group_key(group: str) -> tuple:
    """Groups in order of spatial specificity (Granularity.order), then by the rest of the label."""
    return (*granularities.sort_key(group.split(" ")[0]), group)


def find_runs(paths: list[Path]) -> tuple[list[Run], list[str]]:
    """Evaluated runs under `paths` (sorted), and notes about runs skipped as not evaluated."""
    runs, notes, seen = [], [], set()
    for path in paths:
        path = Path(path)
        if not path.exists():
            raise ArtefactError(f"{path}: no such run or directory")
        name = RunLayout(path).config.name
        candidates = [path] if RunLayout(path).config.exists() else sorted(p.parent for p in path.rglob(name))
        if not candidates:
            raise ArtefactError(f"{path}: holds no training runs (no config.toml found)")
        for root in candidates:
            if root.resolve() in seen:
                continue
            seen.add(root.resolve())
            if not RunLayout(root).metrics.exists() and root != path:
                notes.append(f"skipped {root}: not evaluated")
                continue
            record = RunRecord.open(root)
            record.metrics  # noqa: B018 -- read now: a missing or stale table stops here, named
            runs.append(Run(record))
    if not runs:
        raise ArtefactError("no evaluated runs found; run `spurspec evaluate RUN` on each run first")
    runs.sort(key=lambda r: (group_key(r.group), r.seed, str(r.root)))
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


# The dataset each reference row set was measured on, by the ingest source that reads that dataset.
REFERENCE_SOURCE = {"siim": "SIIM-ACR pneumothorax (chest tubes)", "isic": "ISIC 2018 melanoma (trap sets)"}


def reference_for(runs: list[Run]) -> tuple[str | None, dict[str, float]]:
    """The study's reference rows, only when every run is on the study's own data (SIIM or ISIC
    ingested by spurspec's own sources); never for synthetic or folder data, whatever its
    attributes are called."""
    sources = {r.source for r in runs}
    if len(sources) != 1 or next(iter(sources)) not in REFERENCE_SOURCE:
        return None, {}
    name = REFERENCE_SOURCE[next(iter(sources))]
    return name, REFERENCE[name]


def replicate_word(runs: list[Run]) -> str:
    """What a group's runs are replicates over: seeds, trap sets, or both."""
    traps = {r.trap_set for r in runs} - {None}
    seeds = {r.seed for r in runs}
    if traps and len(seeds) > 1:
        return "trap sets × seeds"
    return "trap sets" if traps else "seeds"
