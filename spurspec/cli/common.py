"""Shared CLI pieces: the rich consoles (progress on stderr, results on stdout), a progress bar
that library code drives through a plain callback, and the ingest summary table."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

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

out = Console(soft_wrap=True)
err = Console(stderr=True)


@contextlib.contextmanager
def progress_bar(description: str, total: int | None) -> Iterator[Callable[[int], None]]:
    """Yield `advance(n)`; the bar draws on stderr and stays quiet when stderr is not a terminal."""
    bar = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=err,
        transient=False,
    )
    with bar:
        task = bar.add_task(description, total=total)
        yield lambda n=1: bar.advance(task, n)


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
    if result.up_to_date:
        out.print(f"{result.out}: up to date (same settings and inputs); nothing to do. Use --force to rebuild.")
        return
    print_rows(f"{result.out}: {result.n_images} images", result.summary)
    if result.n_rejected:
        out.print(f"rejected {result.n_rejected} input(s); see {result.out}/rejects.parquet")
    for note in result.notes:
        out.print(note)
