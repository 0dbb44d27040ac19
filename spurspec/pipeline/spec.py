"""Reads a pipeline file (pipelines/*.toml): a study declared as data — datasets and their
ingest options, box derivation, the training matrix (a product of axes, or datasets x seeds x a
list of `[[train.arms]]`), evaluation, reliance probes, the report and executor resources — with
any `--set KEY=VALUE` overrides applied to the parsed file. Checks the file's structure here;
every stage's values are checked by the stages' own checks before any job runs (checks.py),
their errors prefixed by `named` with the file and table the value came from."""

from __future__ import annotations

import contextlib
import copy
import re
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from spurspec.config import read_toml, unknown_names
from spurspec.errors import ConfigError, InputError

SECTIONS = ("study", "datasets", "boxes", "train", "evaluate", "probe", "report", "resources", "slurm")
# The stages in the order they run, each after the one before (their runners: jobs.STAGE_RUNNERS).
# `probe` has jobs only when the file has a [probe] table (spurspec probe's settings).
STAGE_ORDER = ("ingest", "boxes", "train", "evaluate", "probe", "report")
# [resources.default] applies to every stage; [resources.STAGE] overrides it for one stage.
RESOURCE_TABLES = ("default", *STAGE_ORDER)
# Keys of [train] that span the matrix; every other key is a training setting shared by all jobs.
MATRIX_KEYS = {"datasets": "dataset", "granularities": "granularity", "seeds": "seed", "mask_budgets": "mask_budget", "methods": "method"}
# The axes a `[[train.arms]]` list replaces: each arm names its own granularity, method and mask
# budget, so comparisons that are no product (a binary reference beside seg at a budget) fit one file.
ARM_AXES = ("granularities", "mask_budgets", "methods")
# The keys of one arm and their TOML types; `name` (short) only labels the arm's jobs.
ARM_KEYS: dict[str, tuple[type, ...]] = {"granularity": (str,), "method": (str,), "mask_budget": (int, float),
                                         "train_fraction": (float,), "weight_decay": (int, float), "name": (str,)}
ARM_NAME_MAX = 32
RESOURCE_KEYS = {"gpus": int, "cpus": int, "time_min": int, "mem": str, "partition": str, "constraint": str, "account": str, "qos": str}
SLURM_KEYS = {"array_parallelism": int, "partition": str, "account": str, "qos": str, "setup": list, "signal_delay_s": int}
# One part of a --set key: a TOML bare key.
_KEY_PART = re.compile(r"[A-Za-z0-9_-]+")


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    source: str
    options: dict[str, Any]


@dataclass(frozen=True)
class Arm:
    """One training arm of `[[train.arms]]`; None leaves a setting to [train] (method) or to its
    default (every mask), exactly as an absent axis of the product form does."""

    granularity: str
    method: str | None = None
    mask_budget: int | float | None = None
    name: str | None = None
    train_fraction: float | None = None  # the study's fewer images (TrainConfig.train_fraction)
    weight_decay: float | None = None  # the arm's own (the study's ISIC binary checkpoint: 0.01)


@dataclass(frozen=True)
class PipelineSpec:
    path: Path
    name: str
    out: Path
    datasets: dict[str, DatasetSpec]
    boxes: dict[str, Any]
    train_matrix: dict[str, list[Any]]
    train_options: dict[str, Any]
    evaluate: dict[str, Any]
    report: dict[str, Any]
    resources: dict[str, dict[str, Any]] = field(default_factory=dict)
    slurm: dict[str, Any] = field(default_factory=dict)
    overrides: dict[str, Any] = field(default_factory=dict)  # dotted key -> value, from --set
    probe: dict[str, Any] | None = None  # [probe]: reliance probes of every evaluated run; None: none
    # [[train.arms]]: the matrix is datasets x seeds x arms (train_matrix then holds no ARM_AXES);
    # empty: the product form, datasets x granularities x seeds x mask_budgets x methods.
    train_arms: tuple[Arm, ...] = ()


@dataclass(frozen=True)
class Override:
    """One `--set KEY=VALUE`: a dotted path into the pipeline file and a TOML value."""

    key: tuple[str, ...]
    value: Any
    text: str  # as the user wrote it, for messages

    @property
    def dotted(self) -> str:
        return ".".join(self.key)


def parse_override(text: str) -> Override:
    """`KEY=VALUE` -> Override. VALUE is read as a TOML value (2, true, "x", ["binary", "seg"]);
    what is not one is kept as a plain string, so paths need no quotes."""
    key, sep, raw = text.partition("=")
    parts = tuple(part.strip() for part in key.split("."))
    if not sep or not raw.strip() or not all(_KEY_PART.fullmatch(p) for p in parts):
        raise ConfigError(f"--set {text!r}: expected KEY=VALUE with KEY a dotted path into the pipeline "
                          f"file, e.g. --set train.epochs=2")
    return Override(parts, _toml_value(raw.strip()), text)


def _toml_value(raw: str) -> Any:
    try:
        parsed = tomllib.loads(f"value = {raw}")
    except tomllib.TOMLDecodeError:
        return raw
    # A value with a line break could declare further keys; such text is a string, not TOML.
    return parsed["value"] if len(parsed) == 1 else raw


def apply_overrides(data: dict[str, Any], overrides: list[Override], where: str) -> dict[str, Any]:
    """A copy of the parsed file with each override set in turn. Missing tables are created (so
    `--set evaluate.bootstrap=20` works without an [evaluate]), except a dataset: that the file
    must declare, so a misspelt dataset name is refused rather than half-declared."""
    data = copy.deepcopy(data)
    for o in overrides:
        if o.key[0] not in SECTIONS:
            raise ConfigError(f"--set {o.text}: {unknown_names('section', [o.key[0]], SECTIONS, _section, always_list=True)}")
        table = data
        for depth, part in enumerate(o.key[:-1]):
            if part not in table:
                if depth == 1 and o.key[0] == "datasets":
                    declared = ", ".join(data.get("datasets", {})) or "none"
                    raise ConfigError(f"--set {o.text}: {where} declares no [datasets.{part}]; declared: {declared}")
                table[part] = {}
            table = table[part]
            if not isinstance(table, dict):
                raise ConfigError(f"--set {o.text}: {'.'.join(o.key[: depth + 1])} is a value, not a table")
        table[o.key[-1]] = o.value
    return data


@contextlib.contextmanager
def named(where: str) -> Iterator[None]:
    """A stage's own ConfigError or InputError, raised again (same class, same exit code) with
    `where`, the pipeline file and table its value came from, in front: `study.toml [train]: ...`."""
    try:
        yield
    except (ConfigError, InputError) as exc:
        raise type(exc)(f"{where}: {exc}") from None


def _table(data: dict[str, Any], key: str, where: str) -> dict[str, Any]:
    value = data.get(key, {})
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: [{key}] must be a table")
    return value


def _check_keys(table: dict[str, Any], allowed: set[str] | dict[str, Any], where: str) -> None:
    unknown = sorted(set(table) - set(allowed))
    if unknown:
        raise ConfigError(f"{where}: {unknown_names('key', unknown, sorted(allowed))}")


def _section(name: str) -> str:
    return f"[{name}]"


def load(path: Path, out: Path | None = None, overrides: list[str] | tuple[str, ...] = ()) -> PipelineSpec:
    """Parse a pipeline file, apply `--set` overrides and validate its structure; stage settings
    are checked in plan.py and jobs.py, so overridden values meet every check a file's values do."""
    path = Path(path)
    parsed = [parse_override(text) for text in overrides]
    data = apply_overrides(read_toml(path), parsed, str(path))
    unknown = sorted(set(data) - set(SECTIONS))
    if unknown:
        raise ConfigError(f"{path}: {unknown_names('section', unknown, SECTIONS, _section, always_list=True)}")
    study = _table(data, "study", str(path))
    _check_keys(study, {"name", "out"}, f"{path} [study]")
    name = str(study.get("name", path.stem))
    datasets = _datasets(data, path)
    matrix, arms, train = _train(data, path, datasets)
    slurm = _table(data, "slurm", str(path))
    _check_keys(slurm, SLURM_KEYS, f"{path} [slurm]")
    return PipelineSpec(
        path=path,
        name=name,
        out=Path(out) if out is not None else Path(study.get("out", f"studies/{name}")),
        datasets=datasets,
        boxes=_table(data, "boxes", str(path)),
        train_matrix=matrix,
        train_options=train,
        evaluate=_table(data, "evaluate", str(path)),
        report=_table(data, "report", str(path)),
        resources=_resources(data, path),
        slurm=slurm,
        overrides={o.dotted: o.value for o in parsed},
        probe=_table(data, "probe", str(path)) if "probe" in data else None,
        train_arms=arms,
    )


def _datasets(data: dict[str, Any], path: Path) -> dict[str, DatasetSpec]:
    datasets: dict[str, DatasetSpec] = {}
    for ds_name, table in _table(data, "datasets", str(path)).items():
        where = f"{path} [datasets.{ds_name}]"
        if not isinstance(table, dict) or "source" not in table:
            raise ConfigError(f"{where}: needs a `source` (e.g. source = \"synthetic\")")
        opts = {k: v for k, v in table.items() if k != "source"}
        datasets[ds_name] = DatasetSpec(ds_name, str(table["source"]), opts)
    if not datasets:
        raise ConfigError(f"{path}: declares no [datasets.NAME]")
    return datasets


def _train(data: dict[str, Any], path: Path,
           datasets: dict[str, DatasetSpec]) -> tuple[dict[str, list[Any]], tuple[Arm, ...], dict[str, Any]]:
    """[train] split into the matrix axes, the arms (if any) and the settings every training job shares."""
    train = dict(_table(data, "train", str(path)))
    matrix: dict[str, list[Any]] = {}
    for key in MATRIX_KEYS:
        if key in train:
            values = train.pop(key)
            if not isinstance(values, list) or not values:
                raise ConfigError(f"{path} [train]: `{key}` must be a non-empty list")
            matrix[key] = values
    # Whole numbers: a job's seed is set on a config built for another seed (checks.py), so it
    # meets no type check of its own there.
    bad = [s for s in matrix.get("seeds", []) if isinstance(s, bool) or not isinstance(s, int)]
    if bad:
        raise ConfigError(f"{path} [train]: `seeds` must be whole numbers, got {bad[0]!r}")
    arms = _arms(train.pop("arms"), path) if "arms" in train else ()
    beside = [key for key in ARM_AXES if key in matrix]
    if arms and beside:
        raise ConfigError(f"{path} [train]: `{'`, `'.join(beside)}` cannot stand beside `arms`: with arms the matrix is "
                          "datasets x seeds x arms, and each arm names its own granularity, method and mask_budget")
    if not arms and "granularities" not in matrix:
        raise ConfigError(f"{path} [train]: needs `granularities` (e.g. [\"binary\", \"bbox\", \"seg\"]) "
                          "or a list of [[train.arms]]")
    matrix.setdefault("datasets", list(datasets))
    for ds in matrix["datasets"]:
        if ds not in datasets:
            raise ConfigError(f"{path} [train]: dataset {ds!r} is not declared; declared: {', '.join(datasets)}")
    return matrix, arms, train


def _arms(value: Any, path: Path) -> tuple[Arm, ...]:
    """`[[train.arms]]` as Arms: each a table with a granularity, no unknown keys, values of the
    right type, and no two arms alike (they would be one job twice)."""
    if not isinstance(value, list) or not value or not all(isinstance(a, dict) for a in value):
        raise ConfigError(f"{path} [train]: `arms` must be a non-empty list of tables ([[train.arms]] with a granularity)")
    arms: list[Arm] = []
    for k, table in enumerate(value, 1):
        where = f"{path} [[train.arms]] #{k}"
        _check_keys(table, ARM_KEYS, where)
        if "granularity" not in table:
            raise ConfigError(f"{where}: needs a `granularity` (e.g. granularity = \"binary\")")
        for key, kinds in ARM_KEYS.items():
            if key in table and (not isinstance(table[key], kinds) or isinstance(table[key], bool)):
                raise ConfigError(f"{where}: `{key}` = {table[key]!r} must be a "
                                  + {"mask_budget": "number (a count, or a fraction in (0, 1])",
                                     "train_fraction": "fraction in (0, 1]", "weight_decay": "number"}.get(key, "string"))
        name = table.get("name")
        if name is not None and not (0 < len(name) <= ARM_NAME_MAX and name.isprintable()):
            raise ConfigError(f"{where}: `name` must be a short label (1 to {ARM_NAME_MAX} printable characters)")
        arm = Arm(table["granularity"], table.get("method"), table.get("mask_budget"), name, table.get("train_fraction"),
                  table.get("weight_decay"))
        twin = next((j for j, a in enumerate(arms, 1) if (a.granularity, a.method, a.mask_budget, a.train_fraction, a.weight_decay)
                     == (arm.granularity, arm.method, arm.mask_budget, arm.train_fraction, arm.weight_decay)), None)
        if twin is not None:
            raise ConfigError(f"{where}: trains what arm #{twin} trains (granularity, method and mask_budget alike)")
        if name is not None and any(a.name == name for a in arms):
            raise ConfigError(f"{where}: name {name!r} is taken by another arm")
        arms.append(arm)
    return tuple(arms)


def _resources(data: dict[str, Any], path: Path) -> dict[str, dict[str, Any]]:
    resources = _table(data, "resources", str(path))
    for stage, table in resources.items():
        if stage not in RESOURCE_TABLES:
            raise ConfigError(f"{path} [resources.{stage}]: {unknown_names('stage', [stage], RESOURCE_TABLES, always_list=True)}")
        if not isinstance(table, dict):
            raise ConfigError(f"{path} [resources.{stage}] must be a table")
        _check_keys(table, RESOURCE_KEYS, f"{path} [resources.{stage}]")
    return resources
