"""README.md and the pages under docs/ as text, for the tests that hold them to the code: the
files, their fenced code blocks, the inline code outside them, the command lines in both (each
with its file and line), links, and heading anchors. Reads the Markdown files; writes nothing."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = ROOT / "docs"

_FENCE = re.compile(r"^\s*```")
_INLINE = re.compile(r"`([^`\n]+)`")
_LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")


def pages() -> list[Path]:
    """README first, then every Markdown page under docs/."""
    return [README, *sorted(DOCS.rglob("*.md"))]


@dataclass(frozen=True)
class Line:
    path: Path
    lineno: int  # 1-based, of the line the text starts on
    text: str

    @property
    def where(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.lineno}"


@dataclass(frozen=True)
class Block:
    """A fenced code block: the lines between its fences."""

    lines: list[Line]


def _split(path: Path) -> tuple[list[Block], list[Line]]:
    """The file's fenced blocks, and its other lines (prose, tables, headings)."""
    blocks: list[Block] = []
    prose: list[Line] = []
    current: list[Line] | None = None
    for i, text in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if _FENCE.match(text):
            if current is None:
                current = []
            else:
                blocks.append(Block(current))
                current = None
        elif current is not None:
            current.append(Line(path, i, text))
        else:
            prose.append(Line(path, i, text))
    return blocks, prose


def blocks(path: Path) -> list[Block]:
    return _split(path)[0]


def prose(path: Path) -> list[Line]:
    return _split(path)[1]


def _indent(text: str) -> int:
    return len(text) - len(text.lstrip())


def block_commands(block: Block) -> list[Line]:
    """The block's logical lines: a line ending in a backslash, or followed by lines indented
    deeper than itself (a synopsis wrapped over several lines), continues; a leading `$ `
    prompt is dropped. Output lines after a `$` command start at its indent and stand alone."""
    out: list[Line] = []
    lines = block.lines
    i = 0
    while i < len(lines):
        first = lines[i]
        parts, base = [first.text.strip()], _indent(first.text)
        i += 1
        while i < len(lines) and lines[i].text.strip() and (
                parts[-1].endswith("\\") or _indent(lines[i].text) > base):
            parts[-1] = parts[-1].removesuffix("\\").rstrip()
            parts.append(lines[i].text.strip())
            i += 1
        text = " ".join(parts).removeprefix("$ ")
        if text:
            out.append(Line(first.path, first.lineno, text))
    return out


def inline_code(path: Path) -> list[Line]:
    """Inline code spans outside fenced blocks."""
    return [Line(line.path, line.lineno, m.group(1)) for line in prose(path) for m in _INLINE.finditer(line.text)]


def code_lines(path: Path) -> list[Line]:
    """The logical lines of the file's fenced blocks, then its inline code spans."""
    return [c for b in blocks(path) for c in block_commands(b)] + inline_code(path)


def command_lines(path: Path, program: str) -> list[Line]:
    """Every command line of `program` (its first word) in the file's code."""
    return [c for c in code_lines(path) if c.text.split(maxsplit=1)[:1] == [program]]


def links(path: Path) -> list[Line]:
    """Targets of Markdown links and images outside code (fenced or inline)."""
    out = []
    for line in prose(path):
        text = _INLINE.sub("", line.text)
        out += [Line(path, line.lineno, m.group(1)) for m in _LINK.finditer(text)]
    return out


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, inline-code marks and punctuation other than
    hyphens dropped, spaces to hyphens."""
    text = re.sub(r"[^\w\- ]", "", heading.replace("`", "").lower())
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """The anchors of the file's headings (a repeated heading gets -1, -2, ... as on GitHub)."""
    seen: dict[str, int] = {}
    out = set()
    for line in prose(path):
        m = _HEADING.match(line.text)
        if not m:
            continue
        base = slug(m.group(2))
        n = seen.get(base, 0)
        seen[base] = n + 1
        out.add(base if n == 0 else f"{base}-{n}")
    return out


def section(path: Path, heading: str) -> list[Block]:
    """The fenced blocks under the heading with this text, up to the next heading of its level
    or above."""
    text_lines = path.read_text(encoding="utf-8").splitlines()
    prose_linenos = {line.lineno for line in prose(path)}
    start = level = None
    end = len(text_lines) + 1
    for i, text in enumerate(text_lines, 1):
        m = _HEADING.match(text) if i in prose_linenos else None
        if not m:
            continue
        if start is None and m.group(2) == heading:
            start, level = i, len(m.group(1))
        elif start is not None and len(m.group(1)) <= level:
            end = i
            break
    if start is None:
        raise LookupError(f"{path.relative_to(ROOT)} has no heading {heading!r}")
    return [b for b in blocks(path) if b.lines and start < b.lines[0].lineno < end]
