"""Imports point one way: ``ai_tasks`` (the Celery adapter) -> ``academy`` (the domain,
the job's state machine included) -> ``workers`` (pure processors), with ``config`` on
the outside. Read from the source, every import counted, a function's too: an import
moved into a function to dodge a cycle is still an edge here."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("academy", "ai_tasks", "workers", "config")


def _modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            if "migrations" in path.parts:
                continue
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


def _imports(path: Path, module: str, modules: dict[str, Path]) -> Iterator[tuple[str, int]]:
    """(imported module, line) for every import in the file, at any depth. ``from pkg
    import name`` counts as an import of ``pkg.name`` when that is a module, else of ``pkg``."""
    is_package = path.name == "__init__.py"
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = module.split(".")
                anchor = parts[: len(parts) - node.level + (1 if is_package else 0)]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                name = f"{base}.{alias.name}"
                yield (name if name in modules else base), node.lineno


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {
        name: {target for target, _ in _imports(path, name, modules) if target in modules and target != name}
        for name, path in modules.items()
    }


def _top(name: str) -> str:
    return name.split(".")[0]


def test_academy_never_imports_the_celery_adapter() -> None:
    modules = _modules()
    offenders = [
        f"{path.relative_to(ROOT)}:{line} imports {target}"
        for name, path in modules.items()
        if _top(name) == "academy"
        for target, line in _imports(path, name, modules)
        if _top(target) == "ai_tasks"
    ]
    assert offenders == []


def test_workers_import_none_of_the_platform() -> None:
    modules = _modules()
    offenders = [
        f"{path.relative_to(ROOT)}:{line} imports {target}"
        for name, path in modules.items()
        if _top(name) == "workers"
        for target, line in _imports(path, name, modules)
        if _top(target) in {"academy", "ai_tasks", "config", "django", "celery"}
    ]
    assert offenders == []


def test_the_job_package_is_reached_from_the_adapter_not_the_other_way() -> None:
    graph = _graph()
    assert "academy.jobs.outcome" in graph["ai_tasks.lifecycle"]
    assert not any(
        _top(target) == "ai_tasks" for name in graph if name.startswith("academy.jobs") for target in graph[name]
    )


def test_no_import_cycle_runs_between_the_packages() -> None:
    """A group of modules that import each other round (a strongly connected part of
    the graph) may not span two of the packages."""
    graph = _graph()
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    groups: list[set[str]] = []

    def connect(node: str) -> None:  # Tarjan's algorithm
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in graph[node]:
            if target not in index:
                connect(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            group = set()
            while True:
                member = stack.pop()
                group.add(member)
                if member == node:
                    break
            groups.append(group)

    for node in sorted(graph):
        if node not in index:
            connect(node)
    assert [sorted(g) for g in groups if len({_top(m) for m in g}) > 1] == []
