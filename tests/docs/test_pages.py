"""README.md is a front door and docs/ holds the rest: every command has help and a row in
README's commands table (a new command without either fails), README stays within 200 lines and
links every page under docs/, every page opens with a title and a sentence on what it covers, and
every relative link and image in README and docs/ resolves, anchors included."""

from __future__ import annotations

from pathlib import Path

import pytest
from markdown_docs import DOCS, README, ROOT, anchors, links, pages, prose

from spurspec.cli.main import COMMANDS

PAGES = pages()
IDS = [str(p.relative_to(ROOT)) for p in PAGES]
README_MAX_LINES = 200


def table_rows() -> list[str]:
    return [line.text for line in prose(README) if line.text.startswith("| `spurspec ")]


@pytest.mark.parametrize(("group", "name", "module"), COMMANDS, ids=[f"{g or ''} {n}".strip() for g, n, _ in COMMANDS])
def test_command_has_help_and_a_row_in_readmes_table(cli, group, name, module):
    words = [w for w in (group, name) if w]
    result = cli([*words, "--help"])
    assert "Usage:" in result.stdout and len(result.stdout) > 200
    shown = f"| `spurspec {' '.join(words)}"
    assert any(row.startswith((f"{shown} ", f"{shown}`")) for row in table_rows()), (
        f"README's commands table has no row for `spurspec {' '.join(words)}`")


def test_every_module_is_registered():
    cli_dir = ROOT / "spurspec" / "cli"
    modules = {f"spurspec.cli.{p.stem}" for p in cli_dir.glob("*.py")} - {
        "spurspec.cli.__init__", "spurspec.cli.main", "spurspec.cli.common", "spurspec.cli.choices",
        "spurspec.cli.defaults"}
    assert modules == {m for _, _, m in COMMANDS}


def test_readme_is_a_front_door():
    n = len(README.read_text(encoding="utf-8").splitlines())
    assert n <= README_MAX_LINES, f"README.md has {n} lines (at most {README_MAX_LINES}); move the detail to docs/"
    for literal in ("make demo", "make test"):
        assert literal in README.read_text(encoding="utf-8")


def resolve(source: Path, target: str) -> Path:
    return (source.parent / target).resolve()


def test_readme_links_every_docs_page():
    linked = {resolve(README, t.text.split("#")[0]) for t in links(README)}
    missing = [str(p.relative_to(ROOT)) for p in sorted(DOCS.rglob("*.md")) if p.resolve() not in linked]
    assert not missing, f"README.md links no {', '.join(missing)}"


@pytest.mark.parametrize("page", PAGES[1:], ids=IDS[1:])
def test_page_opens_with_what_it_covers(page):
    lines = [line.text for line in prose(page) if line.text.strip()]
    assert lines and lines[0].startswith("# "), f"{page.relative_to(ROOT)} does not open with a `# Title` line"
    first = lines[1] if len(lines) > 1 else ""
    assert first and not first.startswith(("#", "|", "-", "*", "!", ">")), (
        f"{page.relative_to(ROOT)}: the title is not followed by a sentence on what the page covers")


@pytest.mark.parametrize("page", PAGES, ids=IDS)
def test_links_and_images_resolve(page):
    problems = []
    for link in links(page):
        if link.text.startswith(("http://", "https://", "mailto:")):
            continue
        path, _, anchor = link.text.partition("#")
        target = resolve(page, path) if path else page
        if not target.exists():
            problems.append(f"{link.where}: {link.text} does not exist")
        elif anchor and target.suffix == ".md" and anchor not in anchors(target):
            problems.append(f"{link.where}: {target.relative_to(ROOT)} has no heading for #{anchor}")
    assert not problems, "\n".join(problems)
