"""`spurspec report RUN... --out DIR`: combine evaluated runs into report.md, a self-contained
report.html and PNG figures (calls spurspec.report.build.build_report)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from spurspec.cli.common import ConfigFile, out
from spurspec.text import plural

SETTINGS = "spurspec.report.settings:ReportConfig"  # its defaults fill {default:FIELD} in help


def command(
    runs: Annotated[list[Path], typer.Argument(help="Evaluated run directories, or directories holding runs.")],
    out_dir: Annotated[Path, typer.Option("--out", help="Report directory to write.")],
    title: Annotated[str | None, typer.Option(help="Report title (default {default:title}).")] = None,
    summary: Annotated[str | None, typer.Option(help="Pixel models' headline summarising function (default {default:summary}, the study's).")] = None,
    attribute: Annotated[str | None, typer.Option(help="Headline spurious attribute (default: chest_tube if present, else the first).")] = None,
    keep: Annotated[list[Path] | None, typer.Option("--keep", help="Of runs with the same group and replicate (seed, trap set), the one to count; repeat for each such set (otherwise they are refused).")] = None,
    include_unfinished: Annotated[bool, typer.Option("--include-unfinished", help="Count runs evaluated before their training finished (marked); without it they are listed but left out of means, pairs and figures.")] = False,
    config: ConfigFile = None,
    force: Annotated[bool, typer.Option("--force", help="Replace an existing report of other runs or settings.")] = False,
) -> None:
    """Combine evaluated runs into a report: headline figure, reference table, ROC, summaries, saliency."""
    from spurspec.artefacts import freshness
    from spurspec.artefacts.layout import ReportLayout
    from spurspec.config import resolve
    from spurspec.report.build import WHAT, ReportConfig, build_report

    cfg = resolve(ReportConfig, config, {"runs": tuple(runs), "out": out_dir, "title": title, "summary": summary,
                                         "attribute": attribute, "keep": tuple(keep) if keep else None,
                                         "include_unfinished": include_unfinished or None})
    res = build_report(cfg, force=force)
    if res.up_to_date:
        out.print(freshness.up_to_date(res.out, WHAT))
    for note in res.notes:  # also when up to date: which runs the report leaves out, and why
        out.print(f"note: {note}")
    if res.up_to_date:
        return
    layout = ReportLayout(res.out)
    left = f" ({res.n_left_out} unfinished left out)" if res.n_left_out else ""
    out.print(f"report of {plural(res.n_runs, 'run')}{left}: {layout.html}, {layout.markdown}")
    for f in res.figures:
        out.print(f"  figure {f}")
