"""`spurspec derive-boxes DIR`: boxes, filled box masks and k x k grid masks from a dataset's
masks (calls spurspec.datasets.boxes.derive_boxes) and prints what it wrote."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from spurspec.cli.choices import choices
from spurspec.cli.common import ConfigFile, out
from spurspec.datasets.boxes import MODES

SETTINGS = "spurspec.datasets.boxes:DeriveBoxesConfig"  # its defaults fill {default:FIELD} in help
BoxMode = choices("BoxMode", MODES)


def command(
    dataset: Annotated[Path, typer.Argument(help="Dataset directory written by `spurspec ingest`.")],
    mode: Annotated[BoxMode | None, typer.Option(help="union: one box over every positive pixel (the study's box); components: one box per connected region (default {default:mode}).")] = None,  # type: ignore[valid-type]
    margin: Annotated[int | None, typer.Option(help="Pixels (original resolution) added on every side of each box, clipped to the image (default {default:margin}).")] = None,
    grid: Annotated[list[int] | None, typer.Option("--grid", help="Grid size k for coarse k x k masks; repeat for several (default {default:grids}).")] = None,
    force: Annotated[bool, typer.Option(help="Recompute even if the outputs are up to date.")] = False,
    config: ConfigFile = None,
) -> None:
    """Derive boxes (and coarse grid masks) from the dataset's masks."""
    from spurspec.config import resolve
    from spurspec.datasets.boxes import DeriveBoxesConfig, derive_boxes, describe

    overrides = {"dataset": dataset, "mode": mode.value if mode else None, "margin": margin, "grids": tuple(grid) if grid else None}
    cfg = resolve(DeriveBoxesConfig, config, overrides)
    for line in describe(derive_boxes(cfg, force=force), cfg):
        out.print(line)
