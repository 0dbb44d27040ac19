"""`spurspec export RUN --onnx FILE`: a spurspec run's model as an ONNX file with its card
(calls spurspec.audit.export.export)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from spurspec.cli.common import out
from spurspec.training.config import CHECKPOINTS


def command(
    run: Annotated[Path, typer.Argument(help="A training run directory (from `spurspec train`).")],
    onnx: Annotated[Path, typer.Option(help="The ONNX file to write; its card goes into its metadata and beside it as FILE.card.toml.")],
    checkpoint: Annotated[str, typer.Option(help=f"Checkpoint to export: {' | '.join(CHECKPOINTS)}.")] = "best",
    force: Annotated[bool, typer.Option("--force", help="Replace an existing FILE and its card.")] = False,
) -> None:
    """Export a run's model as an ONNX file with its model card, to deploy it or audit it elsewhere."""
    from spurspec.audit.export import export

    res = export(run, onnx, checkpoint, force=force)
    out.print(f"card: {' '.join(f'{k}={v}' for k, v in res.card.record().items())}")
    out.print(f"wrote {res.onnx} and {res.card_file}")
