"""The package's import rule (DESIGN.md): each module has a floor, imports go to its own floor or
below, never round in a circle, and always at the top of the module."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "pytest_pktgen"

# DESIGN.md's floors, ground first
FLOORS = {
    "host": ["errors", "ledger", "netlink", "netns", "host", "links", "netdev", "nicstate", "irq"],
    "pktgen": ["params", "parse", "proc", "module", "probe", "check", "setups"],
    "run": ["runner", "guard", "leftovers"],
    "lab": ["topology", "rx", "sniff", "vm"],
    "measurement": ["point", "measure", "gates", "report"],
    "surface": ["options", "sweep", "session", "fixtures", "plugin", "__main__", "__init__"],
}
FLOOR = {module: level for level, modules in enumerate(FLOORS.values()) for module in modules}


def own_imports(tree: ast.AST, top_only: bool) -> set[str]:
    """The package's own modules that ``tree`` imports (relative imports)."""
    nodes = tree.body if top_only else ast.walk(tree)
    found = set()
    for node in nodes:
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            found |= ({node.module.split(".")[0]} if node.module
                      else {alias.name for alias in node.names})
    return found


def modules() -> dict[str, ast.Module]:
    return {path.stem: ast.parse(path.read_text()) for path in sorted(PACKAGE.glob("*.py"))}


def test_every_module_has_a_floor():
    assert set(modules()) == set(FLOOR), "place a new module on a floor in DESIGN.md and here"


@pytest.mark.parametrize("name", sorted(FLOOR))
def test_imports_go_down_or_along_and_sit_at_the_top(name):
    tree = modules()[name]
    upward = {m: list(FLOORS)[FLOOR[m]] for m in own_imports(tree, top_only=False)
              if FLOOR[m] > FLOOR[name]}
    assert not upward, f"{name} ({list(FLOORS)[FLOOR[name]]}) imports from above: {upward}"
    hidden = own_imports(tree, top_only=False) - own_imports(tree, top_only=True)
    assert not hidden, f"{name} imports {sorted(hidden)} inside a function"


def test_no_import_circles():
    graph = {name: own_imports(tree, top_only=True) for name, tree in modules().items()}
    seen: set[str] = set()

    def visit(name: str, path: list[str]) -> None:
        for dep in sorted(graph[name]):
            assert dep not in path, "import circle: " + " -> ".join([*path, dep])
            if dep not in seen:
                visit(dep, [*path, dep])
        seen.add(name)

    for name in graph:
        visit(name, [name])


def test_the_plugin_module_holds_hooks_only():
    """Fixtures live in fixtures.py, the session in session.py: plugin.py delegates."""
    tree = modules()["plugin"]
    functions = [node.name for node in tree.body if isinstance(node, ast.FunctionDef)]
    assert functions and all(name.startswith("pytest_") for name in functions), functions
    assert not [node.name for node in tree.body if isinstance(node, ast.ClassDef)]
