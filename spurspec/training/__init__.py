"""Training at every granularity of spatial specificity: `train(TrainConfig(...))` reads a dataset
directory and writes a run directory; `predict.predict_split` reads a run back. Imports torch
lazily through its submodules, so importing the package stays cheap."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from spurspec.training.config import TrainConfig

if TYPE_CHECKING:
    from spurspec.training.trainer import TrainResult

__all__ = ["TrainConfig", "TrainResult", "train"]


def train(cfg: TrainConfig, resume: bool = False, force: bool = False, progress: Any = True) -> TrainResult:
    from spurspec.training.trainer import train as _train

    return _train(cfg, resume=resume, force=force, progress=progress)


def __getattr__(name: str) -> Any:
    if name == "TrainResult":
        from spurspec.training.trainer import TrainResult

        return TrainResult
    raise AttributeError(name)
