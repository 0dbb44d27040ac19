"""The one reader of a training run directory (RunLayout): its resolved settings (config.toml), the
dataset it trained on, its checkpoints, and what `evaluate` added (predictions, metrics, the
saliency maps). Every stage that reads a run (train --resume, evaluate, report, the pipeline's
results table) goes through `RunRecord`, so a missing or stale piece is always exit 3 with the
same message. The saliency file's format lives here too: `write_saliency` / `read_saliency`."""

from __future__ import annotations

import dataclasses
import json
import tomllib
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pyarrow as pa

from spurspec.artefacts import io, schemas
from spurspec.artefacts.layout import DatasetLayout, RunLayout
from spurspec.errors import ArtefactError, ConfigError

C = TypeVar("C")


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

        values = dict(self.config)
        preset = values.pop("preset", None)
        try:
            settings = build(cls, values, where=str(self.layout.config))
            return dataclasses.replace(settings, preset=preset) if preset is not None else settings
        except (ConfigError, TypeError) as exc:
            raise ArtefactError(f"{exc}; re-run `spurspec train` or use a matching spurspec") from None

    @property
    def dataset(self) -> Path:
        """The dataset directory: an absolute path as written; a relative one as given to
        `train` (from the directory it ran in), else relative to the run directory."""
        path = Path(self.config["dataset"])
        if path.is_absolute() or path.exists() or not (self.root / path).exists():
            return path
        return self.root / path

    @cached_property
    def dataset_info(self) -> dict[str, Any]:
        """The dataset's dataset.json (name, size, channels, trap_seed, ...); {} if unreadable."""
        try:
            return json.loads(DatasetLayout(self.dataset).info.read_text())
        except (OSError, ValueError):
            return {}

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


def write_saliency(path: Path, saliency: dict[str, tuple[np.ndarray, np.ndarray]]) -> None:
    """saliency.npz: image_ids (U), images (n, ...) uint8, maps (n, S, S) float32; no pickles."""
    ids = sorted(saliency)
    images = np.stack([np.asarray(saliency[i][0], dtype=np.uint8) for i in ids]) if ids else np.zeros((0, 1, 1), np.uint8)
    maps = np.stack([np.asarray(saliency[i][1], dtype=np.float32) for i in ids]) if ids else np.zeros((0, 1, 1), np.float32)
    with io.atomic_path(path, suffix=".npz") as tmp:
        with open(tmp, "wb") as fh:
            np.savez_compressed(fh, image_ids=np.array(ids, dtype=str), images=images, maps=maps)


def read_saliency(path: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """image_id -> (image, map) from a saliency.npz; a damaged file is exit 3."""
    try:
        with np.load(path, allow_pickle=False) as data:
            ids, images, maps = data["image_ids"], data["images"], data["maps"]
            return {str(i): (images[k], maps[k]) for k, i in enumerate(ids)}
    except (OSError, ValueError, KeyError) as exc:
        raise ArtefactError(f"{path}: unreadable saliency maps ({exc}); re-run `spurspec evaluate --force`") from None
