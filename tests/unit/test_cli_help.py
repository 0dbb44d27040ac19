"""What --help states comes from the library: every "(default X)" an option's help shows equals its
settings dataclass's default, choice options list exactly the library's tuple of valid values, and
start-up (hence `spurspec --help`) imports neither torch nor the heavy stage modules."""

from __future__ import annotations

import dataclasses
import re
import subprocess
import sys

import pytest
import typer

from spurspec.cli import main
from spurspec.cli.defaults import settings_class, shown

# Options named differently from their settings field (out_dir for `out`, ...).
FIELD_OF = {"out_dir": "out", "granularity_": "granularity", "grid": "grids"}
# "(default X)" states a value; "(default: words)" explains an unset one and is not checked.
STATED = re.compile(r"\bdefault (?!:)")


def _commands():
    root = typer.main.get_command(main.app)
    for group, name, module in main.COMMANDS:
        parent = root.commands[group] if group else root
        yield f"{group or ''} {name}".strip(), parent.commands[name], module


COMMANDS = list(_commands())


@pytest.mark.parametrize(("words", "command", "module"), COMMANDS, ids=[w for w, _, _ in COMMANDS])
def test_every_stated_default_is_the_dataclass_default(words, command, module):
    import importlib

    command.get_help(typer.Context(command, info_name=words))  # fills {default:FIELD}
    settings = getattr(importlib.import_module(module), "SETTINGS", None)
    defaults = {f.name: f.default for f in dataclasses.fields(settings_class(settings))} if settings else {}
    checked = 0
    for param in command.params:
        text = getattr(param, "help", None) or ""
        assert "{default:" not in text, f"spurspec {words} --{param.name}: unfilled {text!r}"
        if not STATED.search(text):
            continue
        field = FIELD_OF.get(param.name, param.name)
        assert field in defaults, f"spurspec {words} --{param.name} states a default but {settings} has no field {field}"
        value = shown(defaults[field])
        assert re.search(rf"\(default {re.escape(value)}[),:]", text), \
            f"spurspec {words} --{param.name}: help {text!r} does not state {settings}.{field} = {value!r}"
        checked += 1
    assert checked or not settings, f"spurspec {words} names SETTINGS but states no default"


def test_ingest_folder_options_are_its_settings_keys():
    """A pipeline's [datasets.NAME] (and a --config file) sets folder.Config's fields, and
    `ingest folder` has one option per field, spelt the same with dashes: a key never reads
    differently from its flag (`spurious_cols` is --spurious-cols; --spurious-col, its old
    name, is a hidden alias)."""
    from spurspec.datasets.folder import Config

    command = next(c for w, c, _ in COMMANDS if w == "ingest folder")
    fields = {f.name for f in dataclasses.fields(Config)}
    named = {p.name: p for p in command.params if p.name not in ("force", "config")}
    aliases = {name for name, p in named.items() if getattr(p, "hidden", False)}
    assert aliases == {"old_spurious_col"} and named["old_spurious_col"].opts == ["--spurious-col"]
    for name in set(named) - aliases:
        assert name in fields, f"ingest folder --{name.replace('_', '-')} is no field of folder.Config"
        if named[name].param_type_name == "option":
            assert named[name].opts == [f"--{name.replace('_', '-')}"], named[name].opts
    assert fields - set(named) <= {"val_fraction", "test_fraction"}  # set in a file, no flag


def test_a_hand_written_default_that_drifted_is_caught():
    """The check above fails on a help text that states a stale value."""
    from spurspec.training.config import TrainConfig

    value = shown(TrainConfig.epochs)
    assert re.search(rf"\(default {re.escape(value)}[),:]", f"Maximum epochs (default {value}).")
    assert not re.search(rf"\(default {re.escape(value)}[),:]", f"Maximum epochs (default {value}0).")


def _choices(words: str, option: str) -> tuple[str, ...]:
    command = next(c for w, c, _ in COMMANDS if w == words)
    param = next(p for p in command.params if p.name == option)
    return tuple(member.value for member in param.type_descriptor.annotation)  # the option's Enum


def test_choice_options_list_the_library_values():
    from spurspec.datasets.boxes import MODES
    from spurspec.training.config import AUGMENTS, BALANCES, LOSSES, SELECT_METRICS

    assert _choices("train", "loss") == LOSSES
    assert _choices("train", "balance") == BALANCES
    assert _choices("train", "select_metric") == SELECT_METRICS
    assert _choices("train", "augment") == AUGMENTS
    assert _choices("train", "box_mode") == MODES
    assert _choices("derive-boxes", "mode") == MODES


def test_start_up_imports_no_torch_nor_stage_modules():
    heavy = ("torch", "matplotlib", "scipy", "duckdb")
    code = f"import sys, spurspec.cli.main; print([m for m in {heavy!r} if m in sys.modules])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_help_fits_80_columns_without_internal_type_names():
    import re
    import subprocess
    import sys

    for args in (["--help"], ["train", "--help"], ["run", "--help"], ["ingest", "--help"], ["evaluate", "--help"]):
        text = subprocess.run([sys.executable, "-m", "spurspec.cli.main", *args], capture_output=True, text=True,
                              env={"COLUMNS": "80", "PATH": ""}, check=True).stdout
        assert max(len(line) for line in text.splitlines()) <= 80, args
        assert not re.search(r"<(bool|str|int|float|path)>|\{[a-z_]+\}|[╭│]", text), args
    top = subprocess.run([sys.executable, "-m", "spurspec.cli.main", "--help"], capture_output=True, text=True,
                         env={"COLUMNS": "80"}, check=True).stdout
    commands = [line.split()[0] for line in top.split("Commands:")[1].splitlines() if line.strip()]
    assert commands[:3] == ["ingest", "derive-boxes", "train"]
