"""The package's imports flow one way: no module imports, even inside a function, one that imports it back."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import networkx as nx

PACKAGE = Path(__file__).resolve().parent.parent / "digest"


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(path): path for path in PACKAGE.rglob("*.py")}


def imported_names(path: Path, package: str) -> Iterator[str]:
    """Every module named by an import anywhere in the file (top level, functions, TYPE_CHECKING blocks)."""
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = _absolute(node, package)
            yield base
            yield from (f"{base}.{alias.name}" for alias in node.names)


def _absolute(node: ast.ImportFrom, package: str) -> str:
    if not node.level:
        return node.module or ""
    parts = package.split(".")[: len(package.split(".")) - node.level + 1]
    return ".".join([*parts, *([node.module] if node.module else [])])


def dependencies(name: str, path: Path, known: dict[str, Path]) -> set[str]:
    """The package modules ``name`` imports, and the packages around them that importing them runs (a
    module inside a package does not run that package's ``__init__`` again)."""
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found: set[str] = set()
    for target in imported_names(path, package):
        if target in known and not name.startswith(target + "."):
            found.add(target)
        parts = target.split(".")
        for end in range(2, len(parts)):
            parent = ".".join(parts[:end])
            if parent in known and not name.startswith(parent + "."):
                found.add(parent)
    found.discard(name)
    return found


def import_graph() -> nx.DiGraph:
    known = modules()
    graph = nx.DiGraph()
    graph.add_nodes_from(known)
    for name, path in known.items():
        graph.add_edges_from((name, target) for target in dependencies(name, path, known))
    return graph


def test_the_import_graph_of_digest_has_no_cycle() -> None:
    cycles = list(nx.simple_cycles(import_graph()))
    assert cycles == [], "import cycles: " + "; ".join(" -> ".join([*c, c[0]]) for c in cycles)


def test_the_walk_sees_imports_inside_functions_and_relative_ones(tmp_path: Path) -> None:
    path = tmp_path / "example.py"
    path.write_text("def f():\n    from digest.dispatch import Dispatcher\nfrom . import models\n")
    found = set(imported_names(path, "digest"))
    assert {"digest.dispatch", "digest.dispatch.Dispatcher", "digest.models"} <= found


def test_the_graph_knows_the_rooms_and_the_layers_between_them() -> None:
    graph = import_graph()
    assert graph.has_edge("digest.dispatch.batch", "digest.compose")
    assert not nx.has_path(graph, "digest.calendar", "digest.dispatch")
    assert not nx.has_path(graph, "digest.deliver.ledger", "digest.rank")
