"""The report as a list of blocks (heading, paragraph, table, figure), written as Markdown (figures
linked from figures/) and as one self-contained HTML file (figures embedded as base64 PNG, no
external references, so it opens offline with no broken images)."""

from __future__ import annotations

import base64
import html
from dataclasses import dataclass
from pathlib import Path


@dataclass
class Block:
    kind: str  # h1 | h2 | p | table | figure
    text: str = ""
    headers: tuple[str, ...] = ()
    rows: tuple[tuple[str, ...], ...] = ()
    figure: Path | None = None  # PNG file for kind == figure
    role: str = ""  # an HTML class naming what the block is (e.g. "finding", "headline"), for readers and tests


def markdown(blocks: list[Block], root: Path) -> str:
    out = []
    for b in blocks:
        if b.kind == "h1":
            out.append(f"# {b.text}")
        elif b.kind == "h2":
            out.append(f"## {b.text}")
        elif b.kind == "p":
            out.append(b.text)
        elif b.kind == "table":
            out.append("| " + " | ".join(b.headers) + " |")
            out.append("|" + "---|" * len(b.headers))
            out += ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in b.rows]
        elif b.kind == "figure":
            out.append(f"![{b.text}]({b.figure.relative_to(root).as_posix()})\n\n*{b.text}*")
        out.append("")
    return "\n".join(out)


# Wide tables scroll inside their own box on a narrow screen instead of widening the page. The
# answer paragraph reads larger; findings are bold, except those too small to tell (p.too-few).
_CSS = """body{font-family:system-ui,sans-serif;max-width:1000px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:1em 0;font-size:0.9em;display:block;max-width:100%;overflow-x:auto}
th,td{border:1px solid #ccc;padding:4px 8px;text-align:left}th{background:#f3f3f3}
figure{margin:1.5em 0}img{max-width:100%;height:auto}figcaption{color:#555;font-size:0.9em}
p.answer{font-size:1.15em;line-height:1.45}p.finding{font-weight:600}p.warning{color:#8a4b00}"""


def _cls(b: Block) -> str:
    return f' class="{html.escape(b.role)}"' if b.role else ""


def to_html(blocks: list[Block], title: str) -> str:
    body = []
    for b in blocks:
        if b.kind in ("h1", "h2"):
            body.append(f"<{b.kind}>{html.escape(b.text)}</{b.kind}>")
        elif b.kind == "p":
            body.append(f"<p{_cls(b)}>{html.escape(b.text)}</p>")
        elif b.kind == "table":
            head = "".join(f"<th>{html.escape(h)}</th>" for h in b.headers)
            rows = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>" for r in b.rows)
            body.append(f"<table{_cls(b)}><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>")
        elif b.kind == "figure":
            data = base64.b64encode(b.figure.read_bytes()).decode("ascii")
            body.append(f'<figure{_cls(b)}><img alt="{html.escape(b.text)}" src="data:image/png;base64,{data}">'
                        f"<figcaption>{html.escape(b.text)}</figcaption></figure>")
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f'<title>{html.escape(title)}</title>'
            f"<style>{_CSS}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n")
