"""`spurspec derive-boxes DIR`: boxes, filled box masks and k x k grid masks from a dataset's
masks (calls spurspec.boxes.derive_boxes) and prints a short summary."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from spurspec.cli.common import ConfigFile, out


def command(
    dataset: Annotated[Path, typer.Argument(help="Dataset directory written by `spurspec ingest`.")],
    mode: Annotated[str | None, typer.Option(help="union: one box over every positive pixel (the study's box); components: one box per connected region.")] = None,
    margin: Annotated[int | None, typer.Option(help="Pixels (original resolution) added on every side of each box, clipped to the image.")] = None,
    grid: Annotated[list[int] | None, typer.Option("--grid", help="Grid size k for coarse k x k masks; repeat for several (default 2 4 8 16 32).")] = None,
    force: Annotated[bool, typer.Option(help="Recompute even if the outputs are up to date.")] = False,
    config: ConfigFile = None,
) -> None:
    """Derive boxes (and coarse grid masks) from the dataset's masks."""
    from spurspec.boxes import DeriveBoxesConfig, derive_boxes
    from spurspec.config import resolve

    overrides = {"dataset": dataset, "mode": mode, "margin": margin, "grids": tuple(grid) if grid else None}
    cfg = resolve(DeriveBoxesConfig, config, overrides)
    res = derive_boxes(cfg, force=force)
    if res.up_to_date:
        out.print(f"{res.dataset}: boxes up to date (same settings and masks); nothing to do. Use --force to rebuild.")
        return
    for note in res.notes:
        out.print(f"note: {note}")
    out.print(
        f"{res.dataset}: {res.n_with_boxes} of {res.n_images} images have boxes ({res.n_boxes} boxes, mode {cfg.mode}, margin {cfg.margin}px)"
    )
    out.print(f"mean box area at training size: {res.mean_area_fraction:.1%} of the image")
    out.print(f"grids written: {', '.join(f'{k}x{k}' for k in res.grids)}")
