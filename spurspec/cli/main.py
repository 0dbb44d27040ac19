"""The `spurspec` entry point: assembles the per-command modules into one Typer app and maps
library errors (spurspec.errors) to a one-line message on stderr and a non-zero exit code."""

from __future__ import annotations

import importlib
import sys

import typer
from typer.core import TyperGroup

from spurspec import __version__
from spurspec.cli.defaults import command_class
from spurspec.errors import SpurspecError


class _ErrorMappingGroup(TyperGroup):
    """User errors become `error: <one line>` and the error's exit code, never a traceback."""

    def invoke(self, ctx):  # type: ignore[no-untyped-def]
        try:
            return super().invoke(ctx)
        except SpurspecError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(exc.exit_code) from None
        except KeyboardInterrupt:
            typer.echo("interrupted; finished outputs are kept, unfinished ones were not written", err=True)
            raise typer.Exit(130) from None


def _app(help_text: str) -> typer.Typer:
    return typer.Typer(
        cls=_ErrorMappingGroup,
        help=help_text,
        no_args_is_help=True,
        pretty_exceptions_enable=False,
        add_completion=False,
        rich_markup_mode="rich",
    )


app = _app(
    "spurspec: does a classifier get the right answer for the right reason? Ingest data, train at "
    "every spatial specificity (image label, box, grid, mask) and measure reliance on spurious "
    "features with robust AUROC."
)
ingest_app = _app("Turn a data source into a spurspec dataset directory.")
app.add_typer(ingest_app, name="ingest")

# (group, command name, module with a `command` function). Modules import torch lazily.
COMMANDS: list[tuple[str | None, str, str]] = [  # in pipeline order, as --help lists them
    ("ingest", "siim", "spurspec.cli.ingest_siim"),
    ("ingest", "isic", "spurspec.cli.ingest_isic"),
    ("ingest", "folder", "spurspec.cli.ingest_folder"),
    ("ingest", "synthetic", "spurspec.cli.ingest_synthetic"),
    (None, "derive-boxes", "spurspec.cli.derive_boxes"),
    (None, "train", "spurspec.cli.train"),
    (None, "evaluate", "spurspec.cli.evaluate"),
    (None, "compare", "spurspec.cli.compare"),
    (None, "report", "spurspec.cli.report"),
    (None, "run", "spurspec.cli.run"),
    (None, "theory", "spurspec.cli.theory"),
]


def _register() -> None:
    groups = {None: app, "ingest": ingest_app}
    for group, name, module in COMMANDS:
        mod = importlib.import_module(module)
        # A module whose help states defaults names its stage's settings dataclass in SETTINGS.
        cls = command_class(mod.SETTINGS) if hasattr(mod, "SETTINGS") else None
        groups[group].command(name, cls=cls)(mod.command)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"spurspec {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version and exit."),
) -> None:
    """spurspec command line."""


_register()


def main() -> None:
    app(prog_name="spurspec")


if __name__ == "__main__":
    sys.exit(main())
