"""The package's import graph has no cycles, between modules or between its subpackages.

Every ``import`` counts, including the late ones inside functions: a late import hides a cycle
from Python but not from a reader. The graph is read from the source (``ast``), so the test
costs no torch import.
"""

from __future__ import annotations

import ast
from pathlib import Path

import noisyarl

PACKAGE_ROOT = Path(noisyarl.__file__).parent


def module_name(path: Path) -> str:
    """``src/noisyarl/data/celeba.py`` -> ``noisyarl.data.celeba`` (a package's ``__init__``
    is the package itself)."""
    parts = path.relative_to(PACKAGE_ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path, modules: set[str]) -> set[str]:
    """The ``noisyarl`` modules that the file at ``path`` imports, anywhere in it.

    ``from noisyarl.x import y`` counts as importing ``noisyarl.x.y`` when that is a module,
    else ``noisyarl.x``.
    """
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                child = f"{node.module}.{alias.name}"
                found.add(child if child in modules else node.module)
    return {name for name in found if name in modules}


def import_graph() -> dict[str, set[str]]:
    """Module name -> the package's modules it imports."""
    paths = {module_name(path): path for path in PACKAGE_ROOT.rglob("*.py")}
    modules = set(paths)
    return {name: imported_modules(path, modules) - {name} for name, path in paths.items()}


def subpackage(module: str) -> str:
    """``noisyarl.data.celeba`` -> ``noisyarl.data``; top-level modules stand for themselves."""
    return ".".join(module.split(".")[:2])


def package_graph(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    """The graph between ``noisyarl``'s direct children (subpackages and top-level modules).

    The package's own ``__init__`` is left out: it may re-export from anywhere.
    """
    packages: dict[str, set[str]] = {}
    for module, targets in graph.items():
        if module == "noisyarl":
            continue
        source = subpackage(module)
        packages.setdefault(source, set()).update(
            subpackage(target) for target in targets if target != "noisyarl")
        packages[source].discard(source)
    return packages


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one node (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph.get(node, ())):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_cycle_finder_finds_a_planted_cycle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(graph) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_the_graph_sees_late_imports():
    graph = import_graph()
    assert "noisyarl.config" in graph
    # cli imports its commands inside functions; they must still be edges
    assert "noisyarl.runners.experiment" in graph["noisyarl.cli"]


def test_no_import_cycle_between_modules():
    assert cycles(import_graph()) == []


def test_no_import_cycle_between_subpackages():
    assert cycles(package_graph(import_graph())) == []


def readme_layout_rows() -> list[list[str]]:
    """The package names of each row of README.md's layout table, top to bottom."""
    text = (PACKAGE_ROOT.parents[1] / "README.md").read_text(encoding="utf-8")
    table = text.split("## Layout", 1)[1].split("\n## ", 1)[0]
    rows = [line.split("|")[1] for line in table.splitlines() if line.startswith("| `noisyarl")]
    return [[name.strip(" `") for name in row.split("/")] for row in rows]


def test_readme_layout_table_lists_every_subpackage_once():
    listed = [name for row in readme_layout_rows() for name in row]
    children = set(package_graph(import_graph()))
    assert sorted(listed) == sorted(children)


def test_readme_layout_table_is_in_import_order():
    """A row imports only rows above it (or its own row)."""
    rank = {name: index for index, row in enumerate(readme_layout_rows()) for name in row}
    upward = [(source, target) for source, targets in package_graph(import_graph()).items()
              for target in targets if rank[target] > rank[source]]
    assert upward == []
