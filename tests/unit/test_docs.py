"""Every command has help and is documented in README (a new command without either fails)."""

from __future__ import annotations

from pathlib import Path

import pytest

from spurspec.cli.main import COMMANDS

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()


@pytest.mark.parametrize(("group", "name", "module"), COMMANDS, ids=[f"{g or ''} {n}".strip() for g, n, _ in COMMANDS])
def test_command_has_help_and_is_in_readme(cli, group, name, module):
    words = [w for w in (group, name) if w]
    result = cli([*words, "--help"])
    assert "Usage:" in result.stdout and len(result.stdout) > 200
    assert f"spurspec {' '.join(words)} " in README, f"README does not show `spurspec {' '.join(words)}`"


def test_every_module_is_registered():
    cli_dir = Path(__file__).resolve().parents[2] / "spurspec" / "cli"
    modules = {f"spurspec.cli.{p.stem}" for p in cli_dir.glob("*.py")} - {
        "spurspec.cli.__init__", "spurspec.cli.main", "spurspec.cli.common", "spurspec.cli.choices",
        "spurspec.cli.defaults"}
    assert modules == {m for _, _, m in COMMANDS}
