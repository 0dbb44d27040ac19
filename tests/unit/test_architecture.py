"""The import graph keeps the layers of docs/architecture.md: no module imports from a layer above
its own (lazy imports inside functions and TYPE_CHECKING blocks included), packages on one row do
not import each other, and no modules import each other in a circle. The layer table is read from
the doc, so the doc and the code cannot drift. Reads the source files with `ast`; imports nothing
of spurspec."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "spurspec"
DOC = ROOT / "docs" / "architecture.md"


def layers(doc: str, prefix: str = "") -> dict[str, int]:
    """Name -> its layer, from the doc's table rows `| {prefix}N | name name ... | ... |`: the
    top-level packages and modules of spurspec (no prefix), or the parts of training ("T")."""
    found: dict[str, int] = {}
    for line in doc.splitlines():
        row = re.match(rf"^\|\s*{prefix}(\d+)\s*\|\s*([\w ]+?)\s*\|", line)
        if row:
            for name in row.group(2).split():
                found[name] = int(row.group(1))
    return found


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def imports(path: Path, known: set[str]) -> set[str]:
    """The spurspec modules `path` imports anywhere in its body: `from a.b import c` is a.b.c where
    that is a module, else a.b."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").startswith("spurspec"):
            subs = {f"{node.module}.{a.name}" for a in node.names} & known
            found |= subs if len(subs) == len(node.names) else subs | {node.module}
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == "spurspec"}
    return found


def top(module: str) -> str:
    """The top-level name a module belongs to: `spurspec` itself for the package's __init__."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "spurspec"


def graph() -> dict[str, set[str]]:
    mods = modules()
    return {name: imports(path, set(mods)) - {name} for name, path in mods.items()}


def part(module: str) -> str:
    """The part of training a module of spurspec.training belongs to (`__init__` for the package)."""
    parts = module.split(".")
    return parts[2] if len(parts) > 2 else "__init__"


def training_graph(full: dict[str, set[str]]) -> dict[str, set[str]]:
    """The imports between modules of spurspec.training."""
    inside = lambda m: m == "spurspec.training" or m.startswith("spurspec.training.")  # noqa: E731
    return {src: {d for d in targets if inside(d)} for src, targets in full.items() if inside(src)}


def upward(graph: dict[str, set[str]], layer: dict[str, int], where=top) -> list[str]:
    """Each import that points above its module's layer or across its row (the lowest row aside).
    `where` names the layer's key of a module: its top-level package, or its part of training."""
    bad = []
    for src, targets in sorted(graph.items()):
        a = where(src)
        for dst in sorted(targets):
            b = where(dst)
            if a == b:
                continue
            if layer[b] > layer[a] or (layer[b] == layer[a] and layer[a] != 0):
                bad.append(f"{src} (layer {layer[a]}, {a}) imports {dst} (layer {layer[b]}, {b})")
    return bad


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected groups of more than one module (Tarjan), ignoring a module's import of
    its own parent package (a package's __init__ is read first; that is not a design circle)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def edges(v: str) -> list[str]:
        return [w for w in graph[v] if w in graph and not v.startswith(w + ".")]

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in edges(v):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_every_package_has_a_layer():
    layer = layers(DOC.read_text())
    missing = sorted({top(m) for m in modules()} - set(layer))
    assert not missing, f"docs/architecture.md gives no layer to: {', '.join(missing)}"


def test_no_import_points_up_or_across():
    bad = upward(graph(), layers(DOC.read_text()))
    assert not bad, "imports against the layers of docs/architecture.md:\n" + "\n".join(bad)


def test_every_part_of_training_has_a_layer():
    layer = layers(DOC.read_text(), "T")
    missing = sorted({part(m) for m in training_graph(graph())} - set(layer))
    assert not missing, f"docs/architecture.md gives no training layer to: {', '.join(missing)}"


def test_no_import_inside_training_points_up_or_across():
    bad = upward(training_graph(graph()), layers(DOC.read_text(), "T"), where=part)
    assert not bad, "imports against the training layers of docs/architecture.md:\n" + "\n".join(bad)


def test_no_modules_import_each_other():
    found = circles(graph())
    assert not found, "modules that import each other:\n" + "\n".join(" <-> ".join(g) for g in found)


@pytest.mark.parametrize(("source", "expect"), [
    ("from spurspec.report import build\n", "imports spurspec.report.build"),  # a lazy-free upward import
    ("def f():\n    from spurspec.cli import main\n", "imports spurspec.cli.main"),  # lazy, still upward
    ("from spurspec.datasets import boxes\n", "imports spurspec.datasets.boxes"),  # across a row
])
def test_the_check_catches_an_upward_import(tmp_path, source, expect):
    """The checker itself: a metrics module (layer 2) importing report, cli or datasets fails."""
    path = tmp_path / "bad.py"
    path.write_text(source)
    g = {"spurspec.metrics.bad": imports(path, set(modules()))}
    bad = upward(g, layers(DOC.read_text()))
    assert len(bad) == 1 and expect in bad[0]


def test_the_check_catches_a_circle():
    g = {"spurspec.a.x": {"spurspec.a.y"}, "spurspec.a.y": {"spurspec.a.z"}, "spurspec.a.z": {"spurspec.a.x"},
         "spurspec.a": set(), "spurspec.a.w": {"spurspec.a"}}
    assert circles(g) == [["spurspec.a.x", "spurspec.a.y", "spurspec.a.z"]]


def test_the_check_catches_an_upward_import_inside_training():
    g = {"spurspec.training.models.x": {"spurspec.training.trainer", "spurspec.training.checkpoint"}}
    bad = upward(g, layers(DOC.read_text(), "T"), where=part)
    assert bad == ["spurspec.training.models.x (layer 1, models) imports spurspec.training.trainer (layer 6, trainer)"]
