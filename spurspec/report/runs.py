"""Find evaluated runs (a run directory, or any directory holding runs) and read each one through
the run record (spurspec.artefacts.run): identity from RUN/config.toml, metrics from
RUN/metrics.parquet, how far each had trained when it was scored from
RUN/provenance/evaluate.json; `combined` joins them into one long table. `select` is what report
and compare count: one run per group and replicate (`--keep` picks among duplicates), and
finished runs only unless unfinished ones are asked for."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import pyarrow as pa

from spurspec.artefacts.freshness import SHOWN
from spurspec.artefacts.layout import RunLayout
from spurspec.artefacts.run import Completion, RunRecord
from spurspec.errors import ArtefactError, InputError
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
        if self.method not in ("erm", "outside"):  # outside: an audit, named by its model (audit:NAME)
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

    @cached_property
    def completion(self) -> Completion:
        """How far the run had trained when it was scored (what its metrics describe)."""
        return self.record.scored_completion

    @property
    def mark(self) -> str:
        """'' for a finished run, else e.g. 'unfinished 1/5' (epochs trained of planned)."""
        c = self.completion
        return "" if c.finished else f"unfinished {c.epochs}/{c.planned}"

    @property
    def replicate_label(self) -> str:
        """The replicate as tables and figures name the run: 'seed 0', 'seed 0, unfinished 1/5'."""
        return f"{self.replicate}, {self.mark}" if self.mark else self.replicate


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


def combined(runs: list[Run], left_out: Sequence[Run] = ()) -> pa.Table:
    """Every run's metric rows with the run's identity columns in front, then how far it had
    trained when scored and whether the report counts it (`left_out`: listed, not counted)."""
    tables = []
    for r in [*runs, *left_out]:
        n = r.metrics.num_rows
        c = r.completion
        counted = not any(r is x for x in left_out)
        ident = {"run": [str(r.root)] * n, "group": [r.group] * n, "granularity": [r.granularity] * n,
                 "method": [r.method] * n, "mask_budget": [r.budget] * n,
                 "seed": pa.array([r.seed] * n, pa.int64()), "model": [str(r.config.get("model", ""))] * n,
                 "finished": pa.array([c.finished] * n, pa.bool_()), "epochs": pa.array([c.epochs] * n, pa.int64()),
                 "planned_epochs": pa.array([c.planned] * n, pa.int64()),
                 "counted": pa.array([counted] * n, pa.bool_())}
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


@dataclass
class Selection:
    """The runs a report or comparison counts (means over replicates, pairs, figures) and the
    unfinished ones it lists but leaves out; `notes` say what was left out and why."""

    runs: list[Run]
    left_out: list[Run] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def select(runs: list[Run], keep: tuple[Path, ...] = (), include_unfinished: bool = False) -> Selection:
    """One run per group and replicate (duplicates refused unless `keep` names the one to keep),
    then the finished runs, or every run with `include_unfinished`."""
    runs, notes = keep_one(runs, keep)
    unfinished = [r for r in runs if not r.completion.finished]
    notes += [_trained_since(r) for r in runs if r.completion != r.record.completion]
    if include_unfinished or not unfinished:
        if unfinished:
            notes.append(f"counted although unfinished (--include-unfinished): {_listed(unfinished)}")
        return Selection(runs, [], notes)
    counted = [r for r in runs if r.completion.finished]
    how = ("finish them (`spurspec train DATASET --out RUN --resume`, then `spurspec evaluate RUN --force`) "
           "or pass --include-unfinished to count them")
    if not counted:
        raise ArtefactError(f"no finished runs among the {len(runs)} evaluated: {_listed(unfinished)}; {how}")
    notes.append(f"left out of means, pairs and figures as unfinished: {_listed(unfinished)}; {how}")
    finished_groups = {r.group for r in counted}
    for group in dict.fromkeys(r.group for r in unfinished if r.group not in finished_groups):
        notes.append(f"{group} has no finished run, so it appears only in the table of every run")
    return Selection(counted, unfinished, notes)


def _listed(runs: list[Run]) -> str:
    return ", ".join(f"{r.root} ({r.completion.describe()})" for r in runs)


def _trained_since(run: Run) -> str:
    """A run scored at one point of its training that has trained on since: its metrics are stale."""
    return (f"{run.root} was evaluated at {run.completion.describe()} and is now {run.record.completion.describe()}; "
            f"`spurspec evaluate {run.root} --force` scores it as it is now")


def duplicates(runs: list[Run]) -> list[list[Run]]:
    """Sets of two or more runs sharing a group and replicate (trap set and seed), in the runs'
    order: two trainings of one setting are not two replicates, and pairs are made by replicate."""
    by: dict[tuple[str, str], list[Run]] = {}
    for r in runs:
        by.setdefault((r.group, r.replicate), []).append(r)
    return [rs for rs in by.values() if len(rs) > 1]


def keep_one(runs: list[Run], keep: tuple[Path, ...] = ()) -> tuple[list[Run], list[str]]:
    """The runs with each duplicate set narrowed to the run `keep` names (the others left out,
    noted); a set that `keep` does not narrow to one run is refused (exit 2), naming its runs."""
    found = {r.root.resolve(): r for r in runs}
    wanted = [Path(p) for p in keep]
    unknown = [str(p) for p in wanted if p.resolve() not in found]
    if unknown:
        raise InputError(f"--keep {unknown[0]}: not one of the evaluated runs found; "
                         f"runs: {', '.join(str(r.root) for r in runs)}")
    wanted_roots = {p.resolve() for p in wanted}
    dropped, notes, clashes = set(), [], []
    for dup in duplicates(runs):
        kept = [r for r in dup if r.root.resolve() in wanted_roots]
        if len(kept) != 1:
            clashes.append(dup)
            continue
        others = [r for r in dup if r is not kept[0]]
        dropped.update(id(r) for r in others)
        notes.append(f"left out {', '.join(str(r.root) for r in others)}: the same {dup[0].group} "
                     f"{dup[0].replicate} as {kept[0].root}, which --keep keeps")
    if clashes:
        sets = "; ".join(f"{' and '.join(str(r.root) for r in dup)} are {'both' if len(dup) == 2 else 'all'} "
                         f"{dup[0].group} {dup[0].replicate}" for dup in clashes[:SHOWN])
        more = f"; and {len(clashes) - SHOWN} more such sets" if len(clashes) > SHOWN else ""
        raise InputError(f"{sets}{more}: runs of one group and replicate are not separate replicates; "
                         "name the one to count with --keep RUN, or name only the runs to count")
    return [r for r in runs if id(r) not in dropped], notes
