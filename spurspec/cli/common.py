"""Shared CLI pieces: the rich consoles (progress on stderr, results on stdout), a progress bar
that library code drives through a plain callback, the options the ingest commands share, and
the ingest count table. Reads and writes nothing."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from spurspec.cli.choices import choices
from spurspec.imaging.resize import MASK_RESIZES

# Every stage takes --config: a TOML file of its settings, which flags on the command line override.
ConfigFile = Annotated[Path | None, typer.Option("--config", help="TOML file of settings (flags override it).", exists=True, dir_okay=False)]

# The options the four `spurspec ingest` commands share, declared once (as sqlite-utils shares
# option bundles). An option whose meaning differs by source (what the seed draws, what a worker
# does) takes that source's words and adds the flag and the stated default here.
DatasetOut = Annotated[Path, typer.Option("--out", help="Dataset directory to write.")]
TrainingSize = Annotated[int | None, typer.Option("--size", help="Training size in pixels, square (default {default:size}).")]
SkipBad = Annotated[bool, typer.Option("--skip-bad/--no-skip-bad", help="Leave out bad rows/files, recording them in rejects.parquet.")]
ReplaceDataset = Annotated[bool, typer.Option("--force/--no-force", help="Replace an existing dataset directory.")]
MaskResizeMode = choices("MaskResizeMode", MASK_RESIZES)
MaskResize = Annotated[MaskResizeMode | None, typer.Option(  # type: ignore[valid-type]
    "--mask-resize",
    help="How masks reach the training size: area, a cell is positive if half of it is (a mask keeps its area "
         "at every size: the default) or max, if any of its pixels is (max-pooling, the study's for chest films; "
         "grows a mask by up to a cell a side) (default {default:mask_resize}).")]


def Workers(help: str) -> Any:  # noqa: N802 -- named like the aliases above: it is used as one
    """--workers, `help` saying what one worker does."""
    return Annotated[int | None, typer.Option("--workers", help=f"{help} (default {{default:workers}}).")]


def Seed(help: str) -> Any:  # noqa: N802
    """--seed, `help` saying what it seeds."""
    return Annotated[int | None, typer.Option("--seed", help=f"{help} (default {{default:seed}}).")]

out = Console(soft_wrap=True)
err = Console(stderr=True)


@contextlib.contextmanager
def progress_bar(description: str, total: int | None) -> Iterator[Callable[[int], None]]:
    """Yield `advance(n, total=None)`; the bar draws on stderr (only its end state when stderr is
    not a terminal) from the first call on, so a stage that stops at its checks, or has nothing
    to do, prints no bar beside its message. `total` may be given later, by the first call that
    knows it."""
    bar = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=err,
        transient=False,
    )
    task = bar.add_task(description, total=total)

    def advance(n: int = 1, total: int | None = None) -> None:
        bar.start()  # no-op once started
        if total is not None:  # library code learns the total only once inputs are listed
            bar.update(task, total=total)
        bar.advance(task, n)

    try:
        yield advance
    except BaseException:
        bar.live.transient = True  # a failed stage leaves only its one `error:` line on stderr
        raise
    finally:
        if bar.live.is_started:  # stop() would print a blank line even for a bar never shown
            bar.stop()


def print_rows(title: str, rows: list[dict[str, Any]]) -> None:
    """Print a list of same-keyed dicts as a table on stdout."""
    if not rows:
        out.print(f"{title}: (empty)")
        return
    table = Table(title=escape(title))
    for key in rows[0]:
        table.add_column(escape(str(key)), justify="right" if isinstance(rows[0][key], int | float) else "left")
    for row in rows:
        table.add_row(*("" if v is None else escape(f"{v:.4f}" if isinstance(v, float) else str(v)) for v in row.values()))
    out.print(table)


def print_ingest(result: Any) -> None:
    """An IngestResult: its count table, rejects and notes (or that it was up to date)."""
    from spurspec.artefacts import freshness  # pyarrow loads once a command runs, not at start-up

    if result.up_to_date:
        for note in result.notes:  # e.g. leftovers of an interrupted ingest, removed
            out.print(note)
        out.print(freshness.up_to_date(result.out, "a dataset"))
        return
    print_rows(f"{result.out}: {result.n_images} images", result.counts)
    if result.n_rejected:
        out.print(f"rejected {result.n_rejected} input(s); see {result.out}/rejects.parquet")
    for note in result.notes:
        out.print(note)
