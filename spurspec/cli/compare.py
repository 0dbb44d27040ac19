"""`spurspec compare RUN_OR_DIR... [--reference GROUP]`: paired differences between evaluated runs
on the same test images (calls spurspec.report.compare.compare) and prints them."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from spurspec.cli.common import out, print_rows

SETTINGS = "spurspec.report.compare:CompareConfig"  # its defaults fill {default:FIELD} in help


def _fmt(v: float | None, signed: bool = False) -> str:
    if v is None:
        return "—"
    return f"{v:+.3f}" if signed else f"{v:.3f}"


def _replicate(row: dict, unfinished: dict[str, str]) -> str:
    """A pair's replicate, marked where either run is unfinished (counted with --include-unfinished)."""
    marks = [f"{who} {unfinished[row[key]]}" for key, who in (("run", "run"), ("reference_run", "reference"))
             if row[key] in unfinished]
    return ", ".join([row["replicate"], *marks])


def _metric(row: dict) -> str:
    return row["metric"] + (f" ({row['attribute']})" if row["attribute"] else "")


def _print_pairs(res, n_boot: int) -> None:
    """One row per pair and metric; where that is too wide, one table per pair."""
    from spurspec.evaluation.paired import format_p

    shown = [r for r in res.rows if r["metric"] in ("auroc", "robust_auroc", "worst_subgroup_auroc")]
    numbers = lambda r: {"metric": _metric(r), "a": _fmt(r["a"]), "b": _fmt(r["b"]),  # noqa: E731
                         "b - a [95% CI]": f"{_fmt(r['diff'], True)} [{_fmt(r['ci_low'], True)}, {_fmt(r['ci_high'], True)}]",
                         "p": format_p(r["p_value"], r["n_boot"]), "DeLong p": format_p(r["delong_p"])}
    pairs: dict[str, list[dict]] = {}
    for r in shown:
        pairs.setdefault(f"{r['group']} vs {r['reference_group']}, {_replicate(r, res.unfinished)}", []).append(numbers(r))
    print_rows(f"paired differences (b - a), {n_boot} paired patient-bootstrap replicates",
               [{"group": r["group"], "vs": r["reference_group"], "replicate": _replicate(r, res.unfinished), **numbers(r)}
                for r in shown], long=list(pairs.items()))


def command(
    runs: Annotated[list[Path], typer.Argument(help="Evaluated runs, or directories holding them; the first run's group is the reference.")],
    reference: Annotated[str | None, typer.Option(help="Reference group, as the report names groups (e.g. binary, 'seg masks=50') (default: the first run's).")] = None,
    summary: Annotated[str | None, typer.Option(help="Pixel models' summarising function (default {default:summary}).")] = None,
    bootstrap: Annotated[int | None, typer.Option(help="Paired bootstrap replicates (default {default:bootstrap}).")] = None,
    seed: Annotated[int | None, typer.Option(help="Bootstrap seed (default {default:seed}).")] = None,
    out_file: Annotated[Path | None, typer.Option("--out", help="Write the comparison table to this Parquet file.")] = None,
    keep: Annotated[list[Path] | None, typer.Option("--keep", help="Of runs with the same group and replicate (seed, trap set), the one to count; repeat for each such set (otherwise they are refused).")] = None,
    include_unfinished: Annotated[bool, typer.Option("--include-unfinished", help="Pair runs evaluated before their training finished (marked); without it they are left out.")] = False,
) -> None:
    """Paired differences of every AUROC metric between runs scored on the same test images."""
    from spurspec.config import resolve
    from spurspec.report.compare import CompareConfig, compare

    cfg = resolve(CompareConfig, None, {"runs": tuple(runs), "reference": reference, "summary": summary,
                                        "bootstrap": bootstrap, "seed": seed, "out": out_file,
                                        "keep": tuple(keep) if keep else None, "include_unfinished": include_unfinished or None})
    res = compare(cfg)
    _print_pairs(res, cfg.bootstrap)
    print_rows("mean ± sd of the paired difference over replicates", [
        {"group": g["group"], "metric": _metric(g),
         "replicates": f"{g['replicates']}" + (f" ({g['unfinished']} unfinished)" if g["unfinished"] else ""),
         "b - a": f"{_fmt(g['mean_diff'], True)}" + (f" ± {g['sd_diff']:.3f}" if g["sd_diff"] is not None else "")}
        for g in res.groups if g["metric"] in ("auroc", "robust_auroc")])
    for note in res.notes:
        out.print(f"note: {note}")
    if cfg.out is not None:
        out.print(f"wrote {cfg.out}")
