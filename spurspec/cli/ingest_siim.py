"""`spurspec ingest siim ROOT --out DIR`: a Kaggle SIIM-ACR folder -> a dataset directory (calls
spurspec.datasets.siim.ingest), with a progress bar on stderr and the split x label x chest_tube
count table on stdout."""

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

SETTINGS = "spurspec.datasets.siim:Config"  # its defaults fill {default:FIELD} in help


def command(
    root: Annotated[Path, typer.Argument(help="SIIM folder: train-rle.csv + dicom-images-train/ (stage 1) or stage_2_train.csv + stage_2_images/ (stage 2).")],
    out: DatasetOut,
    labels: Annotated[Path | None, typer.Option(help="Label CSV (ImageId, EncodedPixels) when it is not at the top of ROOT.")] = None,
    tube_labels: Annotated[Path | None, typer.Option(help="Chest-tube labels: CSV ImageId,chest_tube or the study's cxr_tube_dict.pkl (read safely).")] = None,
    size: TrainingSize = None,
    mask_resize: MaskResize = None,
    workers: Workers("Decode processes, 0 = one per core, at most 8") = None,
    limit: Annotated[int | None, typer.Option(help="Keep a stratified subset of N images (label x chest_tube), e.g. for CI.")] = None,
    seed: Seed("Seed of the subset and the patient splits") = None,
    test_fraction: Annotated[float | None, typer.Option(help="Share of the tube-labelled patients' images that go to test, the rest to val (default {default:test_fraction}: the study's 1,000 of 1,951).")] = None,
    skip_bad: SkipBad = False,
    force: ReplaceDataset = False,
    config: ConfigFile = None,
) -> None:
    """Ingest the SIIM-ACR pneumothorax DICOMs, masks and chest-tube labels."""
    from spurspec.config import resolve
    from spurspec.datasets.siim import Config, ingest

    overrides = {
        "root": root,
        "out": out,
        "labels": labels,
        "tube_labels": tube_labels,
        "size": size,
        "mask_resize": mask_resize.value if mask_resize else None,
        "workers": workers,
        "limit": limit,
        "seed": seed,
        "test_fraction": test_fraction,
        "skip_bad": skip_bad or None,  # unset flag: the TOML value (or the default) stands
    }
    cfg = resolve(Config, config, overrides)
    with progress_bar("decoding DICOMs", None) as advance:
        result = ingest(cfg, force=force, progress=advance)
    print_ingest(result)
