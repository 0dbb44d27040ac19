"""`spurspec probe RUN --insert FEATURE | --remove | --attribution`: the reliance probes of an
evaluated run (calls spurspec.probes.stage.probe) and prints their numbers."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from spurspec.cli.common import ConfigFile, out, print_rows

SETTINGS = "spurspec.probes.stage:ProbeConfig"  # its defaults fill {default:FIELD} in help


def command(
    run: Annotated[Path, typer.Argument(help="An evaluated training run (from `spurspec evaluate`).")],
    insert: Annotated[list[str] | None, typer.Option(help="Paint a feature into test images that lack it and score them again: tube, vignette, ink, or an RGBA FILE.png. Repeatable.")] = None,
    placement: Annotated[str | None, typer.Option(help="Where inserted features go: random | fixed | away (from the abnormality) (default {default:placement}).")] = None,
    remove: Annotated[bool, typer.Option("--remove", help="Fill the spurious region from its surroundings where the dataset records it (synthetic) and score again.")] = False,
    attribution: Annotated[bool, typer.Option("--attribution", help="Share of each map's evidence in the abnormality, the spurious region and elsewhere; pointing game.")] = False,
    attribute: Annotated[str | None, typer.Option(help="Attribute saying which images already have the feature (not painted); 'none' paints every test image (default: by feature).")] = None,
    overlay_scale: Annotated[float | None, typer.Option(help="An overlay's longer side as a share of the image side (default {default:overlay_scale}).")] = None,
    margin: Annotated[int | None, typer.Option(help="Pixels kept clear of the abnormality (away) and grown around the spurious mask (remove) (default {default:margin}).")] = None,
    summary: Annotated[str | None, typer.Option(help="Pixel models' summarising function (default {default:summary}).")] = None,
    bootstrap: Annotated[int | None, typer.Option(help="Patient-bootstrap replicates per interval (default {default:bootstrap}).")] = None,
    seed: Annotated[int | None, typer.Option(help="Seeds placements, fills and the bootstrap (default {default:seed}).")] = None,
    ig_steps: Annotated[int | None, typer.Option(help="Integrated-gradients steps (default {default:ig_steps}).")] = None,
    max_images: Annotated[int | None, typer.Option(help="Attribution: at most this many images per image set (default {default:max_images}).")] = None,
    threads: Annotated[int | None, typer.Option(help="Compute threads (default: OMP_NUM_THREADS if set, else the cores this process may use).")] = None,
    device: Annotated[str | None, typer.Option(help="Inference device, e.g. cpu or cuda:0.")] = None,
    dataset: Annotated[Path | None, typer.Option(help="The run's dataset at its new place, if it moved (must hold the same images).")] = None,
    config: ConfigFile = None,
    force: Annotated[bool, typer.Option("--force", help="Redo probes whose tables are up to date or were made with other settings.")] = False,
) -> None:
    """Measure reliance on a spurious feature directly: insert or remove it and score again; where the evidence lies."""
    from spurspec.artefacts import freshness
    from spurspec.config import resolve
    from spurspec.probes.stage import WHAT, ProbeConfig, probe

    overrides = {"run": run, "insert": tuple(insert) if insert else None, "placement": placement, "remove": remove or None,
                 "attribution": attribution or None, "attribute": attribute, "overlay_scale": overlay_scale, "margin": margin,
                 "summary": summary, "bootstrap": bootstrap, "seed": seed, "ig_steps": ig_steps,
                 "max_images": max_images, "threads": threads, "device": device, "dataset": dataset}
    cfg = resolve(ProbeConfig, config, overrides)
    res = probe(cfg, force=force)
    for name, table in res.tables.items():
        if name in res.up_to_date:
            out.print(freshness.up_to_date(res.run, WHAT.format(name)))
        print_probe(res.run, name, table.to_pylist())
    for note in res.notes:
        out.print(f"note: {note}")
    if res.tables:
        out.print(f"wrote {res.run}/probes/")


def print_probe(run: Path, name: str, rows: list[dict]) -> None:
    """One probe's table: score shifts and flips, or evidence mass."""
    if rows and rows[0]["kind"] == "attribution":
        _print_attribution(f"{run}: {name}", rows)
    else:
        _print_shift(f"{run}: {name}, summary {rows[0]['summary'] if rows else '-'}", rows)


def _cell(r: dict | None, signed: bool = False) -> str:
    if r is None or r["value"] is None:
        return "—"
    f = "{:+.3f}" if signed else "{:.3f}"
    ci = "" if r["ci_low"] is None else f" [{f.format(r['ci_low'])}, {f.format(r['ci_high'])}]"
    return f.format(r["value"]) + ci


def _print_shift(title: str, rows: list[dict]) -> None:
    """Per image set (all, positives, negatives): the median score shift and flip rates; then AUROC
    before and after, and the images left out."""
    by = {(r["images"], r["metric"]): r for r in rows}
    table = []
    for images in ("all", "positives", "negatives"):
        if (images, "median_shift") not in by:
            continue
        table.append({"images": images, "n": by[(images, "median_shift")]["n_images"],
                      "median shift [95% CI]": _cell(by[(images, "median_shift")], signed=True),
                      "flip up": _cell(by.get((images, "flip_up"))), "flip down": _cell(by.get((images, "flip_down")))})
    print_rows(title, table)
    out.print(f"AUROC before {_cell(by.get(('all', 'auroc_before')))}, after {_cell(by.get(('all', 'auroc_after')))}, "
              f"after - before {_cell(by.get(('all', 'auroc_diff')), signed=True)} (paired)")
    skipped = [f"{r['metric'].removeprefix('skipped_').replace('_', ' ')}: {r['n_images']}"
               for r in rows if r["metric"].startswith("skipped_") and r["n_images"]]
    if skipped:
        out.print("left out: " + ", ".join(skipped))


# The attribution table's measures: its column heading, and the metric of map m on image set s.
_MASS = (("in abnormality", "mass_abnormality"), ("in spurious", "mass_spurious"), ("elsewhere", "mass_elsewhere"),
         ("region's area", "area_{s}"), ("pointing", "pointing_{s}"))


def _print_attribution(title: str, rows: list[dict]) -> None:
    """One row per map and image set; where that is too wide, one row per map, image set and measure."""
    by = {(r["map"], r["images"], r["metric"]): r for r in rows}
    keys = sorted({(r["map"], r["images"]) for r in rows})
    n = {(m, s): by[(m, s, "mass_abnormality")]["n_images"] for m, s in keys}
    print_rows(title, [{"map": m, "images": s, "n": n[(m, s)],
                        **{name: _cell(by.get((m, s, metric.format(s=s)))) for name, metric in _MASS}} for m, s in keys],
               long=[("", [{"map": m, "images": s, "n": n[(m, s)], "measure": name,
                            "value [95% CI]": _cell(by.get((m, s, metric.format(s=s))))}
                           for m, s in keys for name, metric in _MASS])])
