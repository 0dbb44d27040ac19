"""Every command line in README.md and docs/ (fenced blocks and inline code) names real things:
a `spurspec ...` line names a command that exists and only that command's options; a `make ...`
line names Makefile targets; a `python <script>` line (or a bare `<script>.py ...`) names a script
that exists and defines every option the line uses; a `pipelines/...` file a command names exists.
A failure names the file and line."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
import typer
from markdown_docs import ROOT, Line, code_lines, command_lines, pages

from spurspec.cli.main import app

FLAG = re.compile(r"(?<![\w-])--[A-Za-z][\w-]*")
PYTHONS = {"python", "python3", ".venv/bin/python"}
PAGES = pages()
IDS = [str(p.relative_to(ROOT)) for p in PAGES]


def tokens(line: Line) -> list[str]:
    try:
        return shlex.split(line.text, comments=True)
    except ValueError as exc:
        pytest.fail(f"{line.where}: cannot split `{line.text}`: {exc}")


def flags(words: list[str]) -> list[str]:
    """The options a command line uses, synopsis forms included (`[--size 256]`, `[--amp/--no-amp]`)."""
    return [f for w in words if w.lstrip("[").startswith("--") for f in FLAG.findall(w)]


def resolve(words: list[str], where: str):
    """The click command a `spurspec` line names, and the words after its name."""
    cmd, rest = typer.main.get_command(app), words[1:]
    while rest and getattr(cmd, "commands", None) and rest[0] in cmd.commands:
        cmd, rest = cmd.commands[rest[0]], rest[1:]
    if getattr(cmd, "commands", None) and rest and not rest[0].startswith("-"):
        raise AssertionError(f"{where}: `spurspec` has no command {rest[0]!r} (`{' '.join(words)}`)")
    return cmd, rest


def options(cmd) -> set[str]:
    return {"--help"} | {o for p in cmd.params for o in [*p.opts, *p.secondary_opts] if o.startswith("--")}


@pytest.mark.parametrize("page", PAGES, ids=IDS)
def test_spurspec_lines_name_real_commands_and_options(page):
    problems = []
    for line in command_lines(page, "spurspec"):
        words = tokens(line)
        try:
            cmd, rest = resolve(words, line.where)
        except AssertionError as exc:
            problems.append(str(exc))
            continue
        unknown = sorted(set(flags(rest)) - options(cmd))
        if unknown:
            problems.append(f"{line.where}: `{' '.join(words[:3])} ...` has no option {', '.join(unknown)}")
        for w in rest:
            if w.startswith("pipelines/") and not (ROOT / w).exists():
                problems.append(f"{line.where}: no pipeline file {w}")
    assert not problems, "\n".join(problems)


def make_targets() -> set[str]:
    text = (ROOT / "Makefile").read_text(encoding="utf-8")
    return set(re.findall(r"^([\w-]+):", text, flags=re.M))


@pytest.mark.parametrize("page", PAGES, ids=IDS)
def test_make_lines_name_makefile_targets(page):
    targets = make_targets()
    problems = [f"{line.where}: the Makefile has no target {w!r}"
                for line in command_lines(page, "make")
                for w in tokens(line)[1:] if "=" not in w and not w.startswith("-") and w not in targets]
    assert not problems, "\n".join(problems)


def script_of(words: list[str]) -> str | None:
    """The script a code line runs: `python X.py ...`, or a bare `X.py` with arguments (alone,
    a name is a mention, not a command)."""
    if len(words) > 1 and words[0] in PYTHONS and words[1].endswith(".py"):
        return words[1]
    if len(words) > 1 and words[0].endswith(".py"):
        return words[0]
    return None


def script_path(name: str) -> Path:
    """A path from the repository root, or a bare name of a benchmark script."""
    return ROOT / name if "/" in name else ROOT / "tests" / "benchmarks" / name


@pytest.mark.parametrize("page", PAGES, ids=IDS)
def test_script_lines_name_real_scripts_and_options(page):
    problems = []
    for line in code_lines(page):
        words = line.text.split()
        script = script_of(words)
        if script is None:
            continue
        path = script_path(script)
        if not path.is_file():
            problems.append(f"{line.where}: no script {script}")
            continue
        source = path.read_text(encoding="utf-8")
        after = tokens(line)[tokens(line).index(script) + 1:]
        problems += [f"{line.where}: {script} defines no option {f}" for f in flags(after) if f'"{f}"' not in source]
    assert not problems, "\n".join(problems)


def test_the_check_sees_a_wrong_command_and_a_wrong_option():
    """The checks above can fail: a misspelt command and an option of another command are caught."""
    wrong = Line(ROOT / "x.md", 1, "spurspec trian DS --out RUN")
    with pytest.raises(AssertionError, match="no command 'trian'"):
        resolve(tokens(wrong), wrong.where)
    cmd, rest = resolve(["spurspec", "derive-boxes", "DS", "--granularity", "seg"], "x.md:1")
    assert set(flags(rest)) - options(cmd) == {"--granularity"}
    assert flags(["[--amp/--no-amp]", "[--size", "256]"]) == ["--amp", "--no-amp", "--size"]
