"""The project's import graph, read from the source with `ast` (nothing is imported): for the stage-deps and the
layering tests. Every import statement counts, also those inside functions (lazy imports run when the stage
does); imports under `if TYPE_CHECKING:` do not (they never run).
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Iterator
from functools import cache
from pathlib import Path

PROJECT_PACKAGES = ("tabml", "tasks", "flows")


def module_file(root: Path, module: str) -> Path | None:
    """`tabml.data.target` -> root/tabml/data/target.py (or .../__init__.py for a package); None outside."""
    base = root.joinpath(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _import_nodes(nodes: Iterable[ast.AST]) -> Iterator[ast.Import | ast.ImportFrom]:
    for node in nodes:
        if isinstance(node, ast.If) and _is_type_checking(node):
            yield from _import_nodes(node.orelse)
            continue
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node
        yield from _import_nodes(ast.iter_child_nodes(node))


def _package_of(module: str, path: Path) -> str:
    return module if path.name == "__init__.py" else module.rpartition(".")[0]


def direct_imports(root: Path, module: str) -> set[str]:
    """Project modules `module` imports (absolute names), each with the packages whose __init__ it runs."""
    path = module_file(root, module)
    if path is None:
        return set()
    found: set[str] = set()
    for node in _import_nodes([ast.parse(path.read_text(), filename=str(path))]):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        else:
            base = node.module or ""
            if node.level:
                package = _package_of(module, path).split(".")
                base = ".".join([*package[: len(package) - node.level + 1], *([base] if base else [])])
            names = [
                f"{base}.{alias.name}" if module_file(root, f"{base}.{alias.name}") else base for alias in node.names
            ]
        for name in names:
            if name.split(".")[0] in PROJECT_PACKAGES and module_file(root, name):
                parts = name.split(".")
                found |= {".".join(parts[: i + 1]) for i in range(len(parts))}
    found.discard(module)
    return found


def transitive_imports(root: Path, module: str) -> set[str]:
    """`module` and every project module it imports, directly or not (packages' __init__ included)."""

    @cache
    def edges(name: str) -> frozenset[str]:
        return frozenset(direct_imports(root, name))

    parts = module.split(".")
    seen: set[str] = {".".join(parts[: i + 1]) for i in range(len(parts))}
    todo = list(seen)
    while todo:
        for name in edges(todo.pop()):
            if name not in seen:
                seen.add(name)
                todo.append(name)
    return seen


def project_modules(root: Path, package: str) -> list[str]:
    """Every module under a top-level package, as dotted names."""
    modules = []
    for path in sorted((root / package).rglob("*.py")):
        relative = path.relative_to(root).with_suffix("")
        parts = relative.parts[:-1] if relative.name == "__init__" else relative.parts
        modules.append(".".join(parts))
    return modules
