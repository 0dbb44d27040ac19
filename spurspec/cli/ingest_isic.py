"""`spurspec ingest isic ROOT --out DIR ...`: ISIC 2018 Task 1 images and masks with Bissoto's
artefact annotations and trap sets -> an RGB dataset directory (calls spurspec.datasets.isic)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from spurspec.cli.common import (
    ConfigFile,
    DatasetOut,
    MaskResize,
    ReplaceDataset,
    Seed,
    SkipBad,
    TrainingSize,
    Workers,
    print_ingest,
    progress_bar,
)

SETTINGS = "spurspec.datasets.isic:Config"  # its defaults fill {default:FIELD} in help


def command(
    root: Annotated[Path, typer.Argument(help="Folder with ISIC2018_Task1-2_Training_Input/ and ISIC2018_Task1_Training_GroundTruth/.")],
    out: DatasetOut,
    artefacts: Annotated[Path | None, typer.Option(help="Bissoto et al.'s artefact annotations (isic_bias.csv); its `label` becomes the label.")] = None,
    trap_sets: Annotated[Path | None, typer.Option(help="Folder with isic_annotated_{train,val,test}K.csv: splits come from there.")] = None,
    trap_seed: Annotated[int | None, typer.Option(help="K, which published trap set, 1-5 (default {default:trap_seed}).")] = None,
    lesion_groups: Annotated[Path | None, typer.Option(help="CSV with image,lesion_id: without trap sets, a lesion's images stay in one split.")] = None,
    size: TrainingSize = None,
    mask_resize: MaskResize = None,
    workers: Workers("Decode processes") = None,
    seed: Seed("Seed of the drawn split without trap sets") = None,
    skip_bad: SkipBad = False,
    force: ReplaceDataset = False,
    config: ConfigFile = None,
) -> None:
    """Ingest ISIC 2018 with artefact annotations and trap sets."""
    from spurspec.config import resolve
    from spurspec.datasets.isic import Config, ingest

    overrides = {
        "root": root,
        "out": out,
        "artefacts": artefacts,
        "trap_sets": trap_sets,
        "trap_seed": trap_seed,
        "lesion_groups": lesion_groups,
        "size": size,
        "mask_resize": mask_resize.value if mask_resize else None,
        "workers": workers,
        "seed": seed,
        "skip_bad": skip_bad or None,  # unset flag: the TOML value (or the default) stands
    }
    cfg = resolve(Config, config, overrides)
    with progress_bar("decoding", None) as advance:
        result = ingest(cfg, force=force, progress=advance)
    print_ingest(result)
