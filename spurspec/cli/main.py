"""The `spurspec` entry point: assembles the per-command modules into one Typer app and maps
library errors (spurspec.errors) to a one-line message on stderr and a non-zero exit code."""

from __future__ import annotations

import importlib
import sys

import typer
from typer.core import TyperGroup

from spurspec import __version__
from spurspec.cli.defaults import PlainCommand, command_class, plain_metavars
from spurspec.config import unknown_names
from spurspec.errors import SpurspecError

try:  # recent Typer carries its own copy of click; earlier ones run on click itself
    from typer._click import exceptions as click_errors
except ImportError:  # pragma: no cover - depends on the installed Typer
    from click import exceptions as click_errors  # type: ignore[no-redef]
# Bare `spurspec` shows the help through this error (click >= 8.2); absent before, never raised.
_NO_ARGS = getattr(click_errors, "NoArgsIsHelpError", ())


def error_line(message: object) -> str:
    """README's one-line error: `error: <file or row>: <what is wrong>`. Messages that span lines
    (a third-party decoder's, a usage error's) are folded onto one."""
    return "error: " + " ".join(str(message).split())


class _ErrorMappingGroup(TyperGroup):
    """User errors become `error: <one line>` and the error's exit code, never a traceback; so
    do usage errors (a bad option value, a missing argument), which click would draw as a box."""

    noun = "command"  # what the names under this group are, for an unknown one's message

    def list_commands(self, ctx):  # type: ignore[no-untyped-def]
        """Commands in pipeline order: ingest first (Typer lists groups after commands)."""
        names = super().list_commands(ctx)
        return sorted(names, key=lambda n: n != "ingest")

    def format_help(self, ctx, formatter):  # type: ignore[no-untyped-def]
        plain_metavars(self.params, ctx)
        super().format_help(ctx, formatter)

    def resolve_command(self, ctx, args):  # type: ignore[no-untyped-def]
        """An unknown name lists the valid ones (click says only "No such command")."""
        name = args[0] if args else ""
        if name and not name.startswith("-") and self.get_command(ctx, name) is None and not ctx.resilient_parsing:
            names = self.list_commands(ctx)
            raise click_errors.UsageError(unknown_names(self.noun, [name], names, always_list=True, listed_as=f"{self.noun}s"), ctx)
        return super().resolve_command(ctx, args)

    def invoke(self, ctx):  # type: ignore[no-untyped-def]
        try:
            return super().invoke(ctx)
        except SpurspecError as exc:
            typer.echo(error_line(exc), err=True)
            raise typer.Exit(exc.exit_code) from None
        except OSError as exc:
            # Not a spurspec check but the system refusing (disk full, permission denied on a
            # path the user gave): the path and the reason are the useful part, not a traceback.
            where = f"{exc.filename}: " if exc.filename else ""
            typer.echo(error_line(f"{where}{exc.strerror or exc}"), err=True)
            raise typer.Exit(1) from None
        except KeyboardInterrupt:
            typer.echo("interrupted; finished outputs are kept, unfinished ones were not written", err=True)
            raise typer.Exit(130) from None

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):  # type: ignore[no-untyped-def]
        """Parse errors end as one `error:` line and exit 2, like any bad setting."""
        try:
            result = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
            code = result if isinstance(result, int) else 0
        except _NO_ARGS as exc:  # bare `spurspec` or `spurspec ingest`: the help itself
            typer.echo(exc.format_message())
            code = exc.exit_code
        except click_errors.ClickException as exc:
            ctx = getattr(exc, "ctx", None)
            command = f"{ctx.command_path}: " if ctx is not None else ""
            hint = f" (see {ctx.command_path} --help)" if ctx is not None else ""
            typer.echo(error_line(f"{command}{exc.format_message()}{hint}"), err=True)
            code = exc.exit_code
        except typer.Abort:
            typer.echo("error: aborted", err=True)
            code = 1
        if standalone_mode:
            sys.exit(code)
        return code


class _SourceGroup(_ErrorMappingGroup):
    """`spurspec ingest`, whose commands are data sources."""

    noun = "source"


def _app(help_text: str, cls: type[TyperGroup] = _ErrorMappingGroup) -> typer.Typer:
    return typer.Typer(
        cls=cls,
        help=help_text,
        no_args_is_help=True,
        pretty_exceptions_enable=False,
        add_completion=False,
        # Plain click help: it wraps to the terminal (readable at 80 columns) with no boxes, no
        # empty column for --x/--no-x flags and no internal type names; choices show as [a|b|c].
        rich_markup_mode=None,
    )


app = _app(
    "spurspec: does a classifier get the right answer for the right reason? Ingest data, train at "
    "every spatial specificity (image label, box, grid, mask) and measure reliance on spurious "
    "features with robust AUROC."
)
ingest_app = _app("Turn a data source into a spurspec dataset directory.", _SourceGroup)
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
    (None, "probe", "spurspec.cli.probe"),
    (None, "report", "spurspec.cli.report"),
    (None, "audit", "spurspec.cli.audit"),
    (None, "export", "spurspec.cli.export"),
    (None, "run", "spurspec.cli.run"),
    (None, "theory", "spurspec.cli.theory"),
]


def _register() -> None:
    groups = {None: app, "ingest": ingest_app}
    for group, name, module in COMMANDS:
        mod = importlib.import_module(module)
        # A module whose help states defaults names its stage's settings dataclass in SETTINGS.
        cls = command_class(mod.SETTINGS) if hasattr(mod, "SETTINGS") else PlainCommand
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
