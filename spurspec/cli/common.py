"""Shared CLI pieces: the rich consoles (progress on stderr, results on stdout), tables that fit
stdout's width, a progress bar that library code drives through a plain callback, the options the
ingest commands share, and the ingest count table. Reads and writes nothing."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.cells import cell_len
from rich.console import Console, ConsoleDimensions
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

# A file or pipe is read later, by a person or a program, at no known width: it counts as 80
# columns, as a terminal without COLUMNS does, unless COLUMNS says otherwise.
PIPE_COLUMNS = 80


class _Stdout(Console):
    """The results console. Rich sizes a console from whichever of stdin, stdout and stderr is a
    terminal, so `spurspec compare ... | cat` would be laid out for the terminal the pipe ends
    in; here only stdout itself counts, and COLUMNS (read when printing, not at import) wins."""

    @property
    def size(self) -> ConsoleDimensions:
        columns = os.environ.get("COLUMNS", "")
        if columns.isdigit() and int(columns) > 0:
            return ConsoleDimensions(int(columns), super().size.height)
        return super().size if self.is_terminal else ConsoleDimensions(PIPE_COLUMNS, 25)


out = _Stdout(soft_wrap=True)
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


def print_rows(title: str, rows: list[dict[str, Any]], long: list[tuple[str, list[dict[str, Any]]]] | None = None) -> None:
    """Print same-keyed dicts as a table on stdout, one column per key, where that fits the width
    with no word cut (cells wrap at spaces); else `long`, the same values in fewer columns, as
    titled tables (e.g. one row per metric and attribute); else, as the last resort, `key | value`
    lines, a block per row. No layout hides a number behind "…"."""
    if not rows:
        out.print(f"{escape(title)}: (empty)")
        return
    out.print(escape(title))
    if _print_table(rows):
        return
    if long is not None and all(_widths(block) is not None for _, block in long if block):
        for subtitle, block in long:
            if subtitle:
                out.print(escape(subtitle))
            _print_table(block)
        return
    _print_records(rows)


def _text(v: Any) -> str:
    return "" if v is None else f"{v:.4f}" if isinstance(v, float) else str(v)


def _frame(n_columns: int) -> int:
    """A table's width beyond its cells' text: a border per column and one more, a space either
    side of every cell."""
    return 3 * n_columns + 1


def _widths(rows: list[dict[str, Any]], header: bool = True) -> list[int] | None:
    """Each column's text width so the table fits stdout: its widest cell where all do, else the
    widest columns narrowed (their cells wrapped at spaces) but never below a column's longest
    word; None when even the longest words do not fit."""
    cells = ([[str(k) for k in rows[0]]] if header else []) + [[_text(v) for v in r.values()] for r in rows]
    columns = list(zip(*cells, strict=True))
    widest = [max(cell_len(line) for c in col for line in c.splitlines() or [""]) for col in columns]
    least = [max((cell_len(w) for c in col for w in c.split()), default=0) for col in columns]
    if sum(least) > out.width - _frame(len(columns)):
        return None
    widths = list(widest)
    while sum(widths) > out.width - _frame(len(columns)):  # narrow the widest column that can still wrap
        i = max((i for i, w in enumerate(widths) if w > least[i]), key=lambda i: widths[i])
        widths[i] -= 1
    return [max(w, 1) for w in widths]


def _print_table(rows: list[dict[str, Any]]) -> bool:
    """Print `rows` as one table laid out by `_widths`; False, printing nothing, where it cannot
    fit. overflow="fold" is a safety net: a word wider than its column breaks, never ends in "…"."""
    widths = _widths(rows)
    if widths is None:
        return False
    table = Table()
    for (key, value), width in zip(rows[0].items(), widths, strict=True):
        table.add_column(escape(str(key)), width=width, overflow="fold",
                         justify="right" if isinstance(value, int | float) else "left")
    for row in rows:
        table.add_row(*(escape(_text(v)) for v in row.values()))
    out.print(table)
    return True


def _print_records(rows: list[dict[str, Any]]) -> None:
    """One two-column table of `key | value`, a section per row: fits any width but a word (a
    path) longer than the value column, which folds onto the next line."""
    pairs = [{"key": k, "value": v} for row in rows for k, v in row.items()]
    key_width = max(cell_len(str(k)) for k in rows[0])
    widths = _widths(pairs, header=False) or [key_width, max(out.width - _frame(2) - key_width, 1)]
    table = Table(show_header=False)
    for width in widths:
        table.add_column(width=width, overflow="fold")
    for row in rows:
        for n, (key, value) in enumerate(row.items(), 1):
            table.add_row(escape(str(key)), escape(_text(value)), end_section=n == len(row))
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
