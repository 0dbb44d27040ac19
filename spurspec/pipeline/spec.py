"""Reads a pipeline file (pipelines/*.toml): a study declared as data — datasets and their
ingest options, box derivation, the training matrix, evaluation, the report and executor
resources. Validates every key against the stages' config dataclasses before any job runs."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from spurspec.config import read_toml
from spurspec.errors import ConfigError

SECTIONS = ("study", "datasets", "boxes", "train", "evaluate", "report", "resources", "slurm")
# The stages in the order they run, each after the one before (their runners: jobs.STAGE_RUNNERS).
STAGE_ORDER = ("ingest", "boxes", "train", "evaluate", "report")
# Keys of [train] that span the matrix; every other key is a training setting shared by all jobs.
MATRIX_KEYS = {"datasets": "dataset", "granularities": "granularity", "seeds": "seed", "mask_budgets": "mask_budget", "methods": "method"}
RESOURCE_KEYS = {"gpus": int, "cpus": int, "time_min": int, "mem": str, "partition": str, "constraint": str, "account": str, "qos": str}
SLURM_KEYS = {"array_parallelism": int, "partition": str, "account": str, "qos": str, "setup": list, "signal_delay_s": int}


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    source: str
    options: dict[str, Any]


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


def _table(data: dict[str, Any], key: str, where: str) -> dict[str, Any]:
    value = data.get(key, {})
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: [{key}] must be a table")
    return value


def _check_keys(table: dict[str, Any], allowed: set[str] | dict[str, Any], where: str) -> None:
    unknown = sorted(set(table) - set(allowed))
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(unknown)}; valid: {', '.join(sorted(allowed))}")


def load(path: Path, out: Path | None = None) -> PipelineSpec:
    """Parse and structurally validate a pipeline file; stage settings are checked in plan.py."""
    path = Path(path)
    data = read_toml(path)
    unknown = sorted(set(data) - set(SECTIONS))
    if unknown:
        raise ConfigError(f"{path}: unknown section(s) [{'], ['.join(unknown)}]; valid: {', '.join(SECTIONS)}")
    study = _table(data, "study", str(path))
    _check_keys(study, {"name", "out"}, f"{path} [study]")
    name = str(study.get("name", path.stem))
    study_out = Path(out) if out is not None else Path(study.get("out", f"studies/{name}"))

    datasets: dict[str, DatasetSpec] = {}
    for ds_name, table in _table(data, "datasets", str(path)).items():
        where = f"{path} [datasets.{ds_name}]"
        if not isinstance(table, dict) or "source" not in table:
            raise ConfigError(f"{where}: needs a `source` (e.g. source = \"synthetic\")")
        opts = {k: v for k, v in table.items() if k != "source"}
        datasets[ds_name] = DatasetSpec(ds_name, str(table["source"]), opts)
    if not datasets:
        raise ConfigError(f"{path}: declares no [datasets.NAME]")

    train = dict(_table(data, "train", str(path)))
    matrix: dict[str, list[Any]] = {}
    for key in MATRIX_KEYS:
        if key in train:
            values = train.pop(key)
            if not isinstance(values, list) or not values:
                raise ConfigError(f"{path} [train]: `{key}` must be a non-empty list")
            matrix[key] = values
    if "granularities" not in matrix:
        raise ConfigError(f"{path} [train]: needs `granularities` (e.g. [\"binary\", \"bbox\", \"seg\"])")
    matrix.setdefault("datasets", list(datasets))
    for ds in matrix["datasets"]:
        if ds not in datasets:
            raise ConfigError(f"{path} [train]: dataset {ds!r} is not declared; declared: {', '.join(datasets)}")

    resources = _table(data, "resources", str(path))
    for stage, table in resources.items():
        if stage not in STAGE_ORDER:
            raise ConfigError(f"{path} [resources.{stage}]: unknown stage; valid: {', '.join(STAGE_ORDER)}")
        _check_keys(table, RESOURCE_KEYS, f"{path} [resources.{stage}]")
    slurm = _table(data, "slurm", str(path))
    _check_keys(slurm, SLURM_KEYS, f"{path} [slurm]")
    return PipelineSpec(
        path=path,
        name=name,
        out=study_out,
        datasets=datasets,
        boxes=_table(data, "boxes", str(path)),
        train_matrix=matrix,
        train_options=train,
        evaluate=_table(data, "evaluate", str(path)),
        report=_table(data, "report", str(path)),
        resources=resources,
        slurm=slurm,
    )

