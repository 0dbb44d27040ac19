"""`spurspec run PIPELINE [--set KEY=VALUE ...]`: run a declared study (pipelines/*.toml), with any
of its values overridden, on an executor; prints the job table (a large study's as plain columns),
then the results and the report's path."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.cells import cell_len
from rich.markup import escape
from rich.table import Table

from spurspec.artefacts.layout import ReportLayout
from spurspec.cli.choices import choices
from spurspec.cli.common import out, print_rows
from spurspec.pipeline.executors import EXECUTORS
from spurspec.pipeline.spec import STAGE_ORDER

Executor = choices("Executor", EXECUTORS.names())
StageName = choices("StageName", STAGE_ORDER)


def command(
    pipeline: Annotated[Path, typer.Argument(help="Pipeline file, e.g. pipelines/demo.toml.", exists=True, dir_okay=False)],
    executor: Annotated[Executor, typer.Option(help="Where jobs run.")] = Executor("local"),  # type: ignore[valid-type]
    workers: Annotated[int, typer.Option(min=1, help="Local jobs at once.")] = 1,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the job table (and sbatch settings for slurm); run nothing.")] = False,
    only: Annotated[StageName | None, typer.Option(help="Run only this stage (its inputs must be done).")] = None,  # type: ignore[valid-type]
    force: Annotated[bool, typer.Option("--force", help="Re-run jobs even if they are done.")] = False,
    out_dir: Annotated[Path | None, typer.Option("--out", help="Study directory (default: the pipeline's study.out).")] = None,
    yes: Annotated[bool, typer.Option("--yes", help="Run a study of more than 500 jobs (without it, such a study is refused with its size).")] = False,
    overrides: Annotated[list[str] | None, typer.Option(
        "--set", metavar="KEY=VALUE",
        help="Override one value of the pipeline file (repeatable). KEY is a dotted path into the file "
             "(datasets.siim.root, train.epochs, evaluate.bootstrap); VALUE is read as TOML (2, true, "
             "[\"binary\", \"seg\"]), else taken as a plain string, so paths need no quotes. Checked like "
             "the file's own values. Job directories are keyed by a hash of the job's settings, so a job "
             "an override changes gets a directory of its own; jobs.parquet records the overrides.")] = None,
) -> None:
    """Run a study: ingest -> boxes -> train -> evaluate -> report, skipping finished jobs."""
    from spurspec.pipeline import RunOptions, run_pipeline
    from spurspec.pipeline.results import results_table

    opts = RunOptions(pipeline=pipeline, executor=executor.value, workers=workers, dry_run=dry_run,
                      only=only.value if only else None, force=force, out=out_dir,
                      overrides=tuple(overrides or ()), yes=yes)
    # Plain text: the progress bar "[###...]" would otherwise read as rich markup and vanish.
    result = run_pipeline(opts, on_event=lambda msg: out.print(msg, markup=False, highlight=False))
    _print_jobs(f"jobs of {result.study}", result.jobs)
    for note in result.notes:
        out.print(note, markup=False)  # notes hold [section] names, not rich markup
    for stage, script in result.sbatch.items():
        out.print(f"\n# sbatch for stage {stage}\n{script}")
    if dry_run:
        return
    rows = results_table(result.study)
    if rows:
        print_rows("results (test split)", rows)
    if result.report is not None:
        out.print(f"report: {ReportLayout(result.report).html}")


def _print_jobs(title: str, rows: list[dict[str, Any]]) -> None:
    """The job table; a large study's (more than LARGE_STUDY jobs) as plain columns, one job a
    line: rich lays a table out cell by cell, and took 8 s to print 10,000 jobs."""
    from spurspec.pipeline import LARGE_STUDY

    if len(rows) <= LARGE_STUDY:
        out.print(escape(title))
        out.print(_job_table(rows))
        return
    widths = {key: max(len(key), *(len(str(row[key])) for row in rows)) for key in rows[0]}
    lines = [f"{title} ({len(rows)} jobs)", "  ".join(key.ljust(w) for key, w in widths.items())]
    lines += ["  ".join(str(row[key]).ljust(w) for key, w in widths.items()).rstrip() for row in rows]
    out.print("\n".join(lines), markup=False, highlight=False)


# The least the job table's `what` column is narrowed to before job names fold: "seed=0", "binary".
WHAT_COLUMNS = 10


def _job_table(rows: list[dict[str, Any]]) -> Table:
    """The job table at stdout's width. A job's directory name is what a user copies (to look in
    it, to delete it), so it stays whole where it can: the `what` column wraps first, down to
    WHAT_COLUMNS, and only then (or on a screen too narrow for both, half each) does an id fold
    onto the next line. No column ends in "…"."""
    text = {key: [str(row[key]) for row in rows] for key in rows[0]}
    widest = {key: max(cell_len(key), *map(cell_len, column)) for key, column in text.items()}
    # A rich table's width beyond its cells: a border per column plus one, a space each side of a cell.
    room = out.width - (3 * len(text) + 1) - sum(w for key, w in widest.items() if key not in ("what", "job"))
    what = min(widest["what"], WHAT_COLUMNS)
    widths = dict(widest, job=max(1, min(widest["job"], max(room - what, room // 2))))
    widths["what"] = max(1, min(widest["what"], room - widths["job"]))
    table = Table()
    for key in text:
        table.add_column(escape(key), width=widths[key], overflow="fold")
    for row in rows:
        table.add_row(*(escape(str(value)) for value in row.values()))
    return table
