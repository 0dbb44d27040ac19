"""`spurspec ingest folder TABLE --out DIR ...`: a CSV/Parquet table of images (PNG, JPEG, DICOM,
NIfTI) with labels and optional masks -> a dataset directory (calls spurspec.datasets.folder).
Each option is named after its field of `folder.Config`, the key a pipeline's [datasets.NAME] and a
--config file set (--spurious-cols is spurious_cols)."""

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

SETTINGS = "spurspec.datasets.folder:Config"  # its defaults fill {default:FIELD} in help


def command(
    table: Annotated[Path, typer.Argument(help="CSV or Parquet table, one row per image.")],
    out: DatasetOut,
    image_col: Annotated[str, typer.Option(help="Column with the image path (PNG, JPEG, DICOM, NIfTI).")],
    label_col: Annotated[str, typer.Option(help="Column with the 0/1 abnormality label.")],
    mask_col: Annotated[str | None, typer.Option(help="Column with a mask file path (0/1 or 0/255); empty = no mask.")] = None,
    rle_col: Annotated[str | None, typer.Option(help="Column with a SIIM-style RLE mask at the image's size; -1 = empty mask.")] = None,
    spurious_cols: Annotated[list[str] | None, typer.Option(help="0/1 spurious-attribute column (empty = unknown); repeat for several.")] = None,
    old_spurious_col: Annotated[list[str] | None, typer.Option("--spurious-col", hidden=True, help="The old name of --spurious-cols.")] = None,
    patient_col: Annotated[str | None, typer.Option(help="Column with patient ids: a patient's images stay in one split.")] = None,
    split_col: Annotated[str | None, typer.Option(help="Column with train/val/test; without it splits are drawn (seeded).")] = None,
    root: Annotated[Path | None, typer.Option(help="Folder relative paths resolve against (default: the table's folder); given, a path that resolves outside it is refused.")] = None,
    allow_outside_root: Annotated[bool, typer.Option(help="With --root: also read table paths that resolve outside it.")] = False,
    size: TrainingSize = None,
    mask_resize: MaskResize = None,
    channels: Annotated[int | None, typer.Option(help="1 = grey, 3 = RGB (default {default:channels}).")] = None,
    workers: Workers("Decode processes") = None,
    seed: Seed("Seed of the drawn split") = None,
    skip_bad: SkipBad = False,
    force: ReplaceDataset = False,
    config: ConfigFile = None,
) -> None:
    """Ingest your own images from a CSV or Parquet table."""
    from spurspec.config import resolve
    from spurspec.datasets.folder import Config, ingest

    if old_spurious_col:  # the flag's name before it took the settings key's (spurious_cols)
        typer.echo("warning: --spurious-col is now --spurious-cols (the old name still works)", err=True)
        spurious_cols = [*(spurious_cols or []), *old_spurious_col]
    overrides = {
        "table": table,
        "out": out,
        "image_col": image_col,
        "label_col": label_col,
        "mask_col": mask_col,
        "rle_col": rle_col,
        "spurious_cols": tuple(spurious_cols) if spurious_cols else None,
        "patient_col": patient_col,
        "split_col": split_col,
        "root": root,
        "allow_outside_root": allow_outside_root or None,  # unset flag: the TOML value (or the default) stands
        "size": size,
        "mask_resize": mask_resize.value if mask_resize else None,
        "channels": channels,
        "workers": workers,
        "seed": seed,
        "skip_bad": skip_bad or None,  # unset flag: the TOML value (or the default) stands
    }
    cfg = resolve(Config, config, overrides)
    with progress_bar("decoding", None) as advance:
        result = ingest(cfg, force=force, progress=advance)
    print_ingest(result)
