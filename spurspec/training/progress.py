"""What a training run shows: a rich progress bar per epoch (loss, images/s) on stderr, one
summary line per finished epoch on stdout, flushed at once so cluster logs are live. Only the
main rank reports; the silent reporter is used for other ranks and for library callers."""

from __future__ import annotations

import sys
import time
from typing import Any


def duration(seconds: float) -> str:
    """12s, 3m05s, 1h02m: how long, for a person."""
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


class Silent:
    def say(self, text: str) -> None:
        return None

    def start_epoch(self, epoch: int, epochs: int, images: int) -> None:
        return None

    def batch(self, n: int, loss: float) -> None:
        return None

    def end_epoch(self, row: dict[str, Any]) -> None:
        return None

    def close(self) -> None:
        return None


class Rich(Silent):
    def __init__(self) -> None:
        from rich.console import Console

        self.out = Console(soft_wrap=True)
        self.err = Console(stderr=True)
        self._bar = None

    def say(self, text: str) -> None:
        self.out.print(text)
        sys.stdout.flush()

    def start_epoch(self, epoch: int, epochs: int, images: int) -> None:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self.close()
        self._epochs = epochs
        if not self.err.is_terminal:  # cluster logs get the epoch lines only, not bar redraws
            return
        self._bar = Progress(
            TextColumn(f"[bold]epoch {epoch + 1}/{epochs}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("loss {task.fields[loss]:.4f}"), TextColumn("{task.fields[rate]:.0f} img/s"),
            TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn(), console=self.err, transient=True,
        )
        self._bar.start()
        self._task = self._bar.add_task("train", total=images, loss=float("nan"), rate=0.0)
        self._t0, self._seen = time.perf_counter(), 0

    def batch(self, n: int, loss: float) -> None:
        if self._bar is None:
            return
        self._seen += n
        rate = self._seen / max(time.perf_counter() - self._t0, 1e-9)
        self._bar.update(self._task, advance=n, loss=loss, rate=rate)

    def end_epoch(self, row: dict[str, Any]) -> None:
        self.close()
        if not getattr(self, "_explained", False) and row["val_dice"] == row["val_dice"]:
            self._explained = True  # once per run, before the first epoch line with a Dice
            self.say("val_dice@0.5: Dice of the pixels where P(positive region) > 0.5, averaged over val images "
                     "(those with a target; with --dice study, every image but those with nothing predicted and nothing "
                     "to find, as the study averaged); it can stay near 0 while val_auroc is high "
                     "when the map ranks images well but has not passed 0.5 (docs/training.md: Reading val_dice)")
        fmt = lambda v: "   -  " if v is None or v != v else f"{v:.4f}"  # noqa: E731 (NaN -> dash)
        left = max(getattr(self, "_epochs", 0) - row["epoch"] - 1, 0) * row["epoch_seconds"]
        self.say(
            f"epoch {row['epoch'] + 1:>3}  train_loss {fmt(row['train_loss'])}  val_loss {fmt(row['val_loss'])}  "
            f"val_auroc {fmt(row['val_auroc'])}  val_dice@0.5 {fmt(row['val_dice'])}  lr {row['lr']:.2e}  "
            f"{row['images_per_s']:.0f} img/s  data-wait {100 * row['data_wait_fraction']:.0f}%"
            + (f"  eta ≤{duration(left)}" if left else "") + ("  *best" if row["is_best"] else "")
        )

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None
