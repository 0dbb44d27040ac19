"""Test helper for training methods: a methods.base.RunContext on the CPU whose run data is only
labels (every row a training row, no dataset directory), for building a method's objective
without training a run."""

from __future__ import annotations

import numpy as np
import torch

from spurspec.training.config import TrainConfig
from spurspec.training.distributed import Dist
from spurspec.training.methods.base import MethodData, RunContext, RunData
from spurspec.training.models.heads import PixelHead


def context(cfg: TrainConfig, model: torch.nn.Module, labels=(), head: PixelHead | None = None,
            own: MethodData | None = None) -> RunContext:
    labels = np.asarray(labels, dtype=np.int64)
    rows = np.arange(len(labels))
    data = RunData(ds=None, labels=labels, rows={"train": rows, "val": rows[:0], "test": rows[:0]},  # type: ignore[arg-type]
                   targets=None, train_rows=rows, balance="none")
    return RunContext(cfg, data, own or MethodData(), model, head, torch.device("cpu"), Dist())


def build(cfg: TrainConfig, model: torch.nn.Module, **kw):
    """The objective of method cfg.method, as the trainer builds it."""
    from spurspec.training.methods import METHODS

    return METHODS.get(cfg.method).load()(context(cfg, model, **kw))
