"""The module map stays a map: no import cycles in ragapp or ingest (lazy imports count
too), ingest builds only on ragapp's core, and ragapp reaches ingest only from its entry
points (the CLI and the server)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("ragapp", "ingest")
# what ingest may import from ragapp: the core (STYLE.md's dependency rule)
INGEST_MAY_USE = {
    "ragapp",
    "ragapp.collection",
    "ragapp.embeddings",
    "ragapp.errors",
    "ragapp.ledger",
    "ragapp.settings",
    "ragapp.store",
    "ragapp.types",
    "ragapp.windows",
}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(path: Path, modules: set[str]) -> set[str]:
    """Every first-party module ``path`` imports, at any depth (function-level too)."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parent + ([base] if base else []))
            # `from pkg import mod` needs mod; `from pkg import name` needs pkg itself
            targets = [
                f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names
            ]
        for target in targets:
            while target and target not in modules:
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


def import_graph() -> dict[str, set[str]]:
    files = [p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py")]
    modules = {module_name(p) for p in files}
    return {module_name(p): imports_of(p, modules) for p in files}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for dep in sorted(graph.get(node, ())):
            if state.get(dep) == 1:
                return path[path.index(dep) :] + [dep]
            if dep not in state and (cycle := visit(dep)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_no_import_cycles() -> None:
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_the_cycle_finder_finds_cycles() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_ingest_uses_only_ragapps_core() -> None:
    graph = import_graph()
    for module, deps in graph.items():
        if module.startswith("ingest"):
            outside = {d for d in deps if d.startswith("ragapp")} - INGEST_MAY_USE
            assert not outside, f"{module} imports {sorted(outside)}"


@pytest.mark.parametrize("package", ["ragapp.cli", "ragapp.server"])
def test_only_entry_points_import_ingest(package: str) -> None:
    graph = import_graph()
    users = {
        m
        for m, deps in graph.items()
        if m.startswith("ragapp") and any(d.startswith("ingest") for d in deps)
    }
    assert all(u.startswith(("ragapp.cli", "ragapp.server")) for u in users), sorted(users)
    assert any(u.startswith(package) for u in users)


def test_only_the_store_touches_chroma() -> None:
    """The store seam doesn't leak: chromadb and langchain_chroma are ragapp.store's alone."""
    offenders = []
    for path in [p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py")]:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            if any(n.split(".")[0] in ("chromadb", "langchain_chroma") for n in names):
                offenders.append(module_name(path))
    assert set(offenders) == {"ragapp.store"}
