"""The API a training method is written against. A method is a card in methods/__init__.py (its
name, one line, needs, train_log columns with their types, settings with their ranges, and where
its class lives) and a subclass of `Method` in a file of its own. The trainer names no method: it
drives epochs and bookkeeping and calls, in order,

1. `prepare_data(cfg, data, dist, say)` (a class method, before the model is built and before the
   run directory is touched): the method reads what it needs beyond the granularity's targets and
   answers with its `MethodData`, saying which of its needs the data meets (`have`); the trainer
   refuses the method, before writing anything, when one is not met;
2. `Method(RunContext)`: the objective, with the settings, the run's data, its own, the model;
3. `begin(stage)` on a fresh run (a resumed one calls `load_state_dict` instead);
4. each training step, the hooks of loop.StepHooks (prepare, __call__ = the (B,) per-image loss,
   after_backward, after_step); each epoch, `epoch_log` (its card's columns) and `state_dict`
   (saved in every checkpoint under `method`, so a resumed run continues exactly);
5. `end(stage)` after the last epoch, then `record()` into the run's provenance.

Validation always uses the ERM loss. A method writes its own tables through `Stage.write_table`
(DFR's dfr.parquet). Reads and writes nothing itself."""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TypeVar

import numpy as np
import pyarrow as pa
import torch

from spurspec.artefacts import io
from spurspec.artefacts.dataset import Dataset
from spurspec.artefacts.layout import RunLayout
from spurspec.training import checkpoint, loop
from spurspec.training.config import TrainConfig
from spurspec.training.data import granularity
from spurspec.training.data.rows import (
    EpochSampler,
    RowsDataset,
    default_workers,
    epoch_rows,
    loader,
)
from spurspec.training.distributed import Dist
from spurspec.training.models.heads import PixelHead

Say = Callable[[str], None]
D = TypeVar("D", bound="MethodData")


def _no_rows() -> np.ndarray:
    return np.zeros(0, np.int64)


@dataclass(frozen=True)
class RunData:
    """The dataset side of a run as the trainer prepared it for the granularity, the mask budget
    and the balance, before any method's own data."""

    ds: Dataset
    labels: np.ndarray  # per manifest row, 0 or 1
    rows: dict[str, np.ndarray]  # the rows of each split
    targets: granularity.Targets | None  # the granularity's pixel targets; None on binary
    train_rows: np.ndarray  # the training rows in effect (after the mask budget and the balance)
    balance: str  # the balance mode in effect (`study` resolved for this dataset)
    budget: pa.Table | None = None  # pixel runs: which training masks the budget kept
    # Training positives without a kept mask, kept as items with `labelled` False for a method
    # whose card needs "unlabelled" (Seg-SSL); empty otherwise.
    unlabelled: np.ndarray = field(default_factory=_no_rows)
    augment: str = "none"  # the augmentation in effect (`study` resolved for this dataset)


@dataclass(frozen=True)
class MethodData:
    """What a method adds to its run's data (its prepare_data's answer). A method with data of its
    own subclasses it (groups.GroupData)."""

    have: dict[str, bool] = field(default_factory=dict)  # its needs (NEEDS keys) judged on this data
    # Binary runs: what training batches carry as `target` (rrr, cam-loss: the annotated regions).
    targets: granularity.Targets | None = None
    unlabelled: np.ndarray = field(default_factory=_no_rows)  # training rows whose items carry `labelled` False
    budget: pa.Table | None = None  # a mask budget it applied (written as mask_budget.parquet)


@dataclass(frozen=True)
class RunContext:
    """What a method is built with."""

    cfg: TrainConfig
    data: RunData
    own: MethodData  # what its prepare_data answered
    model: torch.nn.Module  # the model being trained (not the DDP or compiled wrapper), on its device
    head: PixelHead | None  # pixel models: what the output channels mean; None on binary
    device: torch.device
    dist: Dist

    def own_data(self, kind: type[D]) -> D:
        """The method's own data as the MethodData subclass its prepare_data returns."""
        if not isinstance(self.own, kind):
            raise TypeError(f"expected the method's data as {kind.__name__}, got {type(self.own).__name__}")
        return self.own


class Method(loop.StepHooks):
    """ERM as it is, and every hook a method may override (the step hooks are loop.StepHooks')."""

    def __init__(self, ctx: RunContext) -> None:
        self.ctx = ctx

    @classmethod
    def prepare_data(cls, cfg: TrainConfig, data: RunData, dist: Dist, say: Say) -> MethodData:
        """Read what the method needs beyond `data` and judge its needs on it (MethodData.have).
        Under torchrun every rank calls it; a file one rank derives goes through dist.rank0_first."""
        return MethodData()

    def parameters(self) -> list[torch.nn.Parameter]:
        """Trainable tensors beyond the model's (added to the optimiser; never in the saved model)."""
        return []

    def begin(self, stage: Stage) -> None:
        """A fresh run, before its first epoch: work that precedes training (JTT's identification model)."""
        return None

    def end(self, stage: Stage) -> None:
        """After the last epoch, before the run is marked done (DFR's last-layer refit)."""
        return None

    def record(self) -> dict:
        """What the method chose, for the run's provenance (e.g. DFR's C)."""
        return {}

    def state_dict(self) -> dict:
        """What it learns or keeps beyond the model (a teacher, a projection head, counters)."""
        return {}

    def load_state_dict(self, state: dict) -> None:
        return None

    def epoch_log(self, dist: Dist) -> dict[str, float | str | None]:
        """This epoch's values of its card's columns, reduced across ranks (`dist.sum`); resets the sums."""
        return {}


@dataclass
class Stage:
    """What a method's begin and end may do with its run, in one process (a method that trains,
    predicts or refits needs "one_process"): train another model by ERM on the run's training
    rows, predict or read the pooled features of rows, replace the best checkpoint's model, and
    write a table of its own into the run directory."""

    cfg: TrainConfig
    data: RunData
    own: MethodData
    layout: RunLayout
    model: torch.nn.Module  # the run's model as it is now
    step: loop.Step  # the run's step: device, precision, head
    dist: Dist
    say: Say

    def initial_model(self) -> torch.nn.Module:
        """A copy of the run's model as it is now (before the first epoch: its initial weights)."""
        return copy.deepcopy(self.model)

    def best_model(self) -> torch.nn.Module:
        model = copy.deepcopy(self.model)
        model.load_state_dict(checkpoint.load(self.layout.checkpoint("best"), self.step.device)["model"])
        return model

    def _step(self, model: torch.nn.Module, optimizer: torch.optim.Optimizer | None = None) -> loop.Step:
        scaler = torch.amp.GradScaler(self.step.device.type, enabled=self.step.scaler.is_enabled())
        return replace(self.step, model=model, optimizer=optimizer, scaler=scaler, objective=None)

    def _loader(self, rows, augment: str):
        workers = self.cfg.workers if self.cfg.workers is not None else default_workers(self.step.device)
        dataset = RowsDataset(self.data.ds.root, self.data.labels, None, augment, self.cfg.seed)
        return loader(dataset, rows, self.cfg.batch_size, workers, self.step.device)

    def train(self, model: torch.nn.Module, epochs: int, label: str) -> None:
        """ERM epochs 0..epochs-1 over the run's training rows (its balance and augmentation)."""
        cfg, d = self.cfg, self.data
        step = self._step(model, torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay))
        for epoch in range(epochs):
            rows = epoch_rows(d.train_rows, d.labels, d.balance, cfg.seed, epoch)
            stats = loop.train_epoch(step, self._loader(EpochSampler(rows, epoch, cfg.seed), d.augment),
                                     lambda n, loss: None)
            self.say(f"{label}: epoch {epoch + 1} of {epochs}, loss {stats['loss_sum'] / max(stats['n'], 1):.4f}")

    def predict(self, model: torch.nn.Module, rows: np.ndarray) -> dict[str, np.ndarray]:
        return loop.predict(self._step(model), self._loader(rows.tolist(), "none"), None)

    @torch.no_grad()
    def features(self, model: torch.nn.Module, rows: np.ndarray) -> np.ndarray:
        """(len(rows), C) pooled features of a binary model, in the order of `rows`."""
        model.eval()
        step = self._step(model)
        parts = [model.pooled(step.inputs(batch)).float().cpu() for batch in self._loader(rows.tolist(), "none")]
        return torch.cat(parts).double().numpy()

    def replace_best(self, model: torch.nn.Module) -> None:
        """The best checkpoint with `model`'s weights (everything else kept)."""
        if self.dist.main:
            checkpoint.replace_model(self.layout.checkpoint("best"), model)

    def write_table(self, path: Path, table: pa.Table, schema: pa.Schema) -> None:
        """A table of the method's own in the run directory (rank 0 writes it, atomically)."""
        if self.dist.main:
            io.write_table(path, table, schema)
