"""The package's import rule (DESIGN.md): each module has a floor, imports go to its own floor or
below, never round in a circle, and always at the top of the module."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "pytest_pktgen"

# DESIGN.md's floors, ground first: a folder each, the pytest surface at the top level (errors.py,
# at the top level too, is the ground every floor stands on)
FLOORS = ["host", "pktgen", "run", "lab", "measurement", "surface"]
GROUND = {"errors"}


def floor_of(module: str) -> int:
    """``lab.rx`` -> the lab's floor; a top-level module is the surface's (errors: the ground)."""
    top = module.split(".")[0]
    if top in FLOORS:  # a floor's module, or the floor's package itself
        return FLOORS.index(top)
    return -1 if module in GROUND else FLOORS.index("surface")


def own_imports(module: str, tree: ast.AST, top_only: bool) -> set[str]:
    """The package's own modules that ``tree`` (the module ``module``, dotted within the
    package) imports; a package's ``__init__`` counts as the package (``host``)."""
    here = [module] if module in FLOORS else module.split(".")[:-1]  # a package: itself
    nodes = tree.body if top_only else ast.walk(tree)
    found = set()
    for node in nodes:
        if not (isinstance(node, ast.ImportFrom) and node.level):
            continue
        base = here[:len(here) - (node.level - 1)]
        if node.module:
            found.add(".".join([*base, *node.module.split(".")]))
        else:
            found |= {".".join([*base, alias.name]) for alias in node.names}
    return {name.removesuffix(".__init__") for name in found}


def modules() -> dict[str, ast.Module]:
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        name = ".".join(path.relative_to(PACKAGE).with_suffix("").parts)
        out[name.removesuffix(".__init__") or "__init__"] = ast.parse(path.read_text())
    return out


def test_every_module_sits_on_a_floor():
    for name in modules():
        folder = name.split(".")[0] if "." in name else ""
        assert not folder or folder in FLOORS, f"{name}: a folder that is no floor (DESIGN.md)"
    assert {name.split(".")[0] for name in modules() if "." in name} == set(FLOORS) - {"surface"}


@pytest.mark.parametrize("name", sorted(modules()))
def test_imports_go_down_or_along_and_sit_at_the_top(name):
    tree = modules()[name]
    known = modules()
    every = own_imports(name, tree, top_only=False)
    # "from . import x": x is a module of the package, or a name its __init__ gives
    every = {m if m in known else m.rpartition(".")[0] or m for m in every}
    assert every <= set(known) | {"__init__"}, every - set(known)
    upward = {m: FLOORS[floor_of(m)] for m in every if m in known and floor_of(m) > floor_of(name)}
    assert not upward, f"{name} imports from above its floor: {upward}"
    top = {m if m in known else m.rpartition(".")[0] or m
           for m in own_imports(name, tree, top_only=True)}
    assert not every - top, f"{name} imports {sorted(every - top)} inside a function"


def test_no_import_circles():
    known = modules()
    graph = {name: {m if m in known else m.rpartition(".")[0] or m
                    for m in own_imports(name, tree, top_only=True)} & set(known)
             for name, tree in known.items()}
    # a package's __init__ is imported on the way to each of its modules
    for name in known:
        if "." in name and name.rpartition(".")[0] in known:
            graph[name] = graph[name] - {name.rpartition(".")[0]}
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


def test_heavy_libraries_are_imported_when_used_not_with_the_plugin():
    """Every pytest session (and the tests' child sessions) imports the plugin; in the VM lab
    under TCG MLRsearch's import alone took 10 s, pandas 15 s, matplotlib 32 s, scapy 29 s."""
    import subprocess
    import sys

    heavy = ("MLRsearch", "pandas", "matplotlib", "scapy", "asyncssh", "scipy")
    code = ("import sys, pytest_pktgen.plugin; "
            f"print(sorted(m for m in {heavy!r} if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "[]"
