"""The one reader of a training run directory (RunLayout): its resolved settings (config.toml), the
dataset it trained on, its checkpoints, and what `evaluate` added (predictions, metrics, the
saliency maps). Every stage that reads a run (train --resume, evaluate, report, the pipeline's
results table) goes through `RunRecord`, so a missing or stale piece is always exit 3 with the
same message. The saliency file's format lives here too: `write_saliency` / `read_saliency`."""

from __future__ import annotations

import dataclasses
import json
import os
import tomllib
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pyarrow as pa

from spurspec.artefacts import io, provenance, schemas
from spurspec.artefacts.dataset import Dataset
from spurspec.artefacts.layout import DatasetLayout, RunLayout
from spurspec.errors import ArtefactError, ConfigError, InputError

C = TypeVar("C")
TRAIN_STAGE = "train"  # the provenance file train writes: RUN/provenance/train.json


@dataclass(frozen=True)
class Completion:
    """How far a run got: `finished` (its `done` marker: planned epochs reached, or stopped early by
    its patience rule) and the epochs its train_log holds of the planned ones."""

    finished: bool
    epochs: int
    planned: int

    @property
    def stopped_early(self) -> bool:
        return self.finished and self.epochs < self.planned

    def describe(self) -> str:
        """e.g. "finished (5 of 5 epochs)", "finished: early stop after 3 of 5 epochs",
        "unfinished: 1 of 5 epochs"."""
        if self.stopped_early:
            return f"finished: early stop after {self.epochs} of {self.planned} epochs"
        return f"{'finished' if self.finished else 'unfinished'}: {self.epochs} of {self.planned} epochs"

    def as_record(self) -> dict[str, Any]:
        """What provenance files keep (train at its end, evaluate for the model it scored)."""
        return {"finished": self.finished, "epochs": self.epochs, "planned": self.planned,
                "stopped_early": self.stopped_early}


@dataclass(frozen=True)
class RunRecord:
    root: Path
    config: dict[str, Any] = field(repr=False)  # config.toml as written by `spurspec train`

    @classmethod
    def open(cls, root: Path) -> RunRecord:
        """Read RUN/config.toml; a directory without one is not a run (exit 3)."""
        root = Path(root)
        layout = RunLayout(root)
        if not root.exists():
            raise ArtefactError(f"{root}: no such run directory")
        if not layout.config.exists():
            raise ArtefactError(f"{root}: not a spurspec run (no config.toml); train it with `spurspec train` first")
        try:
            with open(layout.config, "rb") as fh:
                config = tomllib.load(fh)
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ArtefactError(f"{layout.config}: not valid TOML ({exc}); re-run `spurspec train`") from None
        if "dataset" not in config:
            raise ArtefactError(f"{layout.config}: no `dataset` setting; re-run `spurspec train`")
        return cls(root, config)

    @property
    def layout(self) -> RunLayout:
        return RunLayout(self.root)

    def settings(self, cls: type[C]) -> C:
        """config.toml as the stage's settings dataclass (e.g. TrainConfig); unknown keys or bad
        types mean the file is stale or foreign (exit 3). The file is already resolved, so its
        preset is not applied again: a key it lacks was added to spurspec after the run and takes
        its default, the behaviour the run was trained with, never a preset's newer value."""
        from spurspec.config import build

        # Where the run and its dataset are now, not where they were written from (relocatable).
        values = {**self.config, "out": str(self.root), "dataset": str(self.dataset)}
        preset = values.pop("preset", None)
        try:
            settings = build(cls, values, where=str(self.layout.config))
            return dataclasses.replace(settings, preset=preset) if preset is not None else settings
        except (ConfigError, TypeError) as exc:
            raise ArtefactError(f"{exc}; re-run `spurspec train` or use a matching spurspec") from None

    @cached_property
    def dataset(self) -> Path:
        """The dataset directory. A run records it relative to itself (dataset_link), so a run
        moved with its dataset finds it; a run moved alone finds it where it was when training
        started (train.json's `dataset_at`) if the content there is still the run's; runs of
        older spurspec recorded it as given to `train` (absolute, or relative to where train ran).
        The first reading that holds the run's dataset; else the run-relative one."""
        path = Path(self.config["dataset"])
        first = path if path.is_absolute() else self.root / path
        if DatasetLayout(first).manifest.exists():
            return first
        at = self._train_record.get("dataset_at")
        for other in ([Path(at)] if isinstance(at, str) else []) + ([] if path.is_absolute() else [path]):
            manifest = DatasetLayout(other).manifest
            if manifest.exists() and self.dataset_fingerprint in (None, provenance.file_digest(manifest)):
                return other
        return first

    @cached_property
    def _train_record(self) -> dict[str, Any]:
        """RUN/provenance/train.json ({} when absent or unreadable)."""
        try:
            record = io.read_json(self.layout.provenance(TRAIN_STAGE))
        except (OSError, ValueError):
            return {}
        return record if isinstance(record, dict) else {}

    @property
    def dataset_fingerprint(self) -> str | None:
        """The content identity of the dataset the run trained on (RUN/provenance/train.json,
        written when training starts); None for a run without that record."""
        inputs = self._train_record.get("inputs")
        value = inputs.get("dataset") if isinstance(inputs, dict) else None
        return value if isinstance(value, str) else None

    def open_dataset(self, moved_to: Path | None = None) -> Dataset:
        """The run's dataset, opened. `moved_to`: where the user says it now lives; accepted only
        when its content is the one the run trained on. A dataset that is not where the run says
        is exit 3 with the fix: the flag that points the run at its new place."""
        if moved_to is not None:
            return self._check_same_dataset(Dataset.open(moved_to))
        if not DatasetLayout(self.dataset).manifest.exists():
            raise ArtefactError(
                f"{self.root}: its dataset is not at {self.config['dataset']} (recorded relative to the run); if the "
                "dataset moved, pass its new place: `spurspec train DATASET --out RUN --resume`, or --dataset DATASET "
                "to evaluate and probe")
        return Dataset.open(self.dataset)

    def relink(self, dataset: Path) -> bool:
        """Record `dataset` (checked by open_dataset to be the run's own) as the run's dataset, so
        every later stage finds it at its new place; False when the run already leads there."""
        link = dataset_link(self.root, dataset)
        if link == self.config["dataset"]:
            return False
        from spurspec.config import dumps_toml

        io.write_text(self.layout.config, dumps_toml({**self.config, "dataset": link}))
        return True

    def _check_same_dataset(self, ds: Dataset) -> Dataset:
        recorded = self.dataset_fingerprint
        if recorded is None and ds.root.resolve() != self.dataset.resolve():
            raise ConfigError(f"{self.root}: trained on {self.config['dataset']} before spurspec recorded datasets by "
                              f"content, so {ds.root} cannot be checked to be the same; give the original path")
        if recorded is not None and ds.fingerprint() != recorded:
            raise InputError(f"{ds.root}: not the dataset {self.root} was trained on (its manifest differs: "
                             f"{ds.fingerprint()[:19]} vs {recorded[:19]})")
        return ds

    @cached_property
    def dataset_info(self) -> dict[str, Any]:
        """The dataset's dataset.json (name, size, channels, trap_seed, ...); {} if unreadable."""
        try:
            return json.loads(DatasetLayout(self.dataset).info.read_text())
        except (OSError, ValueError):
            return {}

    def refuse_audit(self, stage: str) -> None:
        """An audit's directory (`spurspec audit`: config.toml has an [audit] table) holds no
        checkpoint: `stage` cannot load its model, so say what can (exit 2)."""
        audit = self.config.get("audit")
        if isinstance(audit, dict):
            raise ConfigError(f"{self.root}: an audit of {audit.get('model_file')}, not a training run: {stage} "
                              "cannot load it; re-run `spurspec audit ... --force` (its metrics and probes), or "
                              "`spurspec evaluate --predictions` on its predictions.parquet")

    @property
    def granularity(self) -> str:
        return str(self.config.get("granularity", "binary"))

    @property
    def method(self) -> str:
        return str(self.config.get("method", "erm"))

    @property
    def model(self) -> str:
        return str(self.config.get("model", ""))

    @property
    def seed(self) -> int:
        return int(self.config.get("seed", 0))

    @property
    def mask_budget(self) -> int | float | None:
        return self.config.get("mask_budget")

    @property
    def summary(self) -> str | None:
        """The summarising function the run was selected with (pixel models)."""
        return self.config.get("summary")

    def kept_masks(self) -> int | None:
        """How many training images kept pixel supervision (mask_budget.parquet); None for binary."""
        path = self.layout.mask_budget
        if not path.exists():
            return None
        table = schemas.check(io.read_table(path, "mask budget"), schemas.MASK_BUDGET, path)
        return int(sum(table.column("kept").to_pylist()))

    def checkpoint(self, which: str) -> Path:
        path = self.layout.checkpoint(which)
        if not path.exists():
            raise ArtefactError(f"{path}: checkpoint not found; has the run finished an epoch? (`spurspec train --resume`)")
        return path

    @cached_property
    def completion(self) -> Completion:
        """Whether the run reached its end (the `done` marker train writes last) and how many of
        its planned epochs its train_log holds; an unreadable log counts no epochs."""
        epochs = 0
        if self.layout.train_log.exists():
            try:
                epochs = io.read_table(self.layout.train_log, "train log").num_rows
            except ArtefactError:
                epochs = 0
        return Completion(self.layout.done.exists(), epochs, int(self.config.get("epochs", 0)))

    @property
    def evaluated(self) -> bool:
        return self.layout.metrics.exists()

    @cached_property
    def metrics(self) -> pa.Table:
        path = self.layout.metrics
        if not path.exists():
            raise ArtefactError(f"{self.root}: not evaluated yet; run `spurspec evaluate {self.root}` first")
        return schemas.check(io.read_table(path, "metrics"), schemas.METRICS, path)

    @cached_property
    def metric_rows(self) -> list[dict[str, Any]]:
        """metrics.parquet as dicts, converted once (reports look values up many times)."""
        return self.metrics.to_pylist()

    def predictions(self, columns: list[str] | None = None) -> pa.Table:
        path = self.layout.predictions
        if not path.exists():
            raise ArtefactError(f"{path}: predictions not found; run `spurspec evaluate {self.root}` first")
        table = schemas.check(io.read_table(path, "predictions"), schemas.PREDICTIONS, path)
        return table.select(columns) if columns else table

    def saliency(self) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """The saliency maps `evaluate` kept ({} when it kept none)."""
        path = self.layout.prob_maps
        return read_saliency(path) if path.exists() else {}

    @cached_property
    def scored_completion(self) -> Completion:
        """How far the run had trained when `evaluate` scored it (the `completion` fact of
        RUN/provenance/evaluate.json); for an evaluation without that fact (made before it was
        recorded, or unreadable), the run's completion now."""
        try:
            fact = io.read_json(self.layout.provenance("evaluate")).get("completion")
            return Completion(bool(fact["finished"]), int(fact["epochs"]), int(fact["planned"]))
        except (OSError, ValueError, AttributeError, KeyError, TypeError):
            return self.completion


def dataset_link(run: Path, dataset: Path) -> str:
    """How a run records its dataset: the path from the run directory to the dataset (POSIX,
    symbolic links kept as written), so the two can move together."""
    return Path(os.path.relpath(Path(dataset).absolute(), Path(run).absolute())).as_posix()


def write_saliency(path: Path, saliency: dict[str, tuple[np.ndarray, np.ndarray]], kind: str | None = None) -> None:
    """saliency.npz: image_ids (U), images (n, ...) uint8, maps (n, S, S) float32, and `kind`
    (a 0-d string: what the maps are, e.g. probability or integrated_gradients) when given; no
    pickles."""
    ids = sorted(saliency)
    images = np.stack([np.asarray(saliency[i][0], dtype=np.uint8) for i in ids]) if ids else np.zeros((0, 1, 1), np.uint8)
    maps = np.stack([np.asarray(saliency[i][1], dtype=np.float32) for i in ids]) if ids else np.zeros((0, 1, 1), np.float32)
    extra = {} if kind is None else {"kind": np.array(kind, dtype=str)}
    with io.atomic_path(path, suffix=".npz") as tmp:
        with open(tmp, "wb") as fh:
            np.savez_compressed(fh, image_ids=np.array(ids, dtype=str), images=images, maps=maps, **extra)


def read_saliency(path: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """image_id -> (image, map) from a saliency.npz; a damaged file is exit 3."""
    try:
        with np.load(path, allow_pickle=False) as data:
            ids, images, maps = data["image_ids"], data["images"], data["maps"]
            return {str(i): (images[k], maps[k]) for k, i in enumerate(ids)}
    except (OSError, ValueError, KeyError) as exc:
        raise ArtefactError(f"{path}: unreadable saliency maps ({exc}); re-run `spurspec evaluate --force`") from None


def read_saliency_kind(path: Path) -> str | None:
    """What a saliency.npz's maps are (write_saliency's `kind`); None for a file written before
    the kind was recorded (then a binary run's maps are Grad-CAM, a pixel run's probabilities) or
    for no file."""
    if not path.exists():
        return None
    try:
        with np.load(path, allow_pickle=False) as data:
            return str(data["kind"]) if "kind" in data.files else None
    except (OSError, ValueError) as exc:
        raise ArtefactError(f"{path}: unreadable saliency maps ({exc}); re-run `spurspec evaluate --force`") from None
