"""The package's import graph has no circle (no module imports, directly or through others,
a module that imports it; function-level imports included) and no upward arrow (no module
imports one from a higher layer of README's sketch, "How the package is built"). A
subpackage (``ewclab.plots``) is one node."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "ewclab"


README = PACKAGE.parent / "README.md"


def _layers() -> list[set[str]]:
    """The layers of README's "How the package is built" block, ground floor first: each
    line is a layer's label and its modules; an indented line continues the one above."""
    text = README.read_text()
    block = text.split("## How the package is built", 1)[1].split("```text\n", 1)[1]
    layers: list[set[str]] = []
    for line in block.split("```", 1)[0].splitlines():
        words = line.split()
        if line.startswith(" "):
            layers[-1] |= set(words)
        elif words:
            layers.append(set(words[1:]))
    return layers[::-1]


LAYERS = _layers()


def _modules() -> dict[str, list[Path]]:
    """``ewclab`` module or subpackage name -> its source files."""
    modules = {p.stem: [p] for p in PACKAGE.glob("*.py") if p.stem != "__init__"}
    modules |= {p.parent.name: sorted(p.parent.glob("*.py")) for p in PACKAGE.glob("*/__init__.py")}
    return modules


def _imports() -> dict[str, set[str]]:
    """``ewclab`` module -> the ``ewclab`` modules it imports anywhere in its file(s)."""
    modules = _modules()
    graph: dict[str, set[str]] = {}
    for name, paths in modules.items():
        found: set[str] = set()
        nodes = [n for path in paths for n in ast.walk(ast.parse(path.read_text()))]
        for node in nodes:
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                parts = node.module.split(".")
                if parts[0] == "ewclab":
                    found |= {parts[1]} if len(parts) > 1 else {a.name for a in node.names}
            elif isinstance(node, ast.Import):
                found |= {a.name.split(".")[1] for a in node.names
                          if a.name.startswith("ewclab.")}
        graph[name] = {m for m in found if m in modules and m != name}
    return graph


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import circle as a path of module names, or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(node: str, path: list[str]) -> list[str] | None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [node, nxt] if nxt in path else [node, nxt]
            if nxt not in state and (found := visit(nxt, path + [node])):
                return found
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (found := visit(start, [])):
            return found
    return None


def test_the_import_graph_has_no_circle():
    graph = _imports()
    assert {"learner", "persist", "models", "ewc", "fisher"} <= set(graph)
    assert "learner" in graph["models"]  # the scan sees real imports
    cycle = _cycle(graph)
    assert cycle is None, " -> ".join(cycle)


def test_the_cycle_finder_finds_a_circle():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) is not None
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None


def test_every_module_has_a_layer_and_no_arrow_points_up():
    graph = _imports()
    layer = {m: k for k, names in enumerate(LAYERS) for m in names}
    assert sum(map(len, LAYERS)) == len(layer), "a module is on two lines of README's sketch"
    assert set(graph) == set(layer), (
        f"README's sketch lacks {sorted(set(graph) - set(layer))} and names modules that do "
        f"not exist: {sorted(set(layer) - set(graph))}")
    assert "plots" in graph and "plots" in graph["widgets_fisher"]  # subpackages are seen
    upward = [f"{a} -> {b}" for a, deps in graph.items() for b in deps if layer[b] > layer[a]]
    assert upward == [], f"imports from a higher layer: {upward}"
