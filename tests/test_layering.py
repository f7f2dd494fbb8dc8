"""The package layout holds: each tabml subpackage imports only the layers below it (tabml/__init__.py and
docs/architecture.md draw them), stages never import flows, and no module imports itself in a cycle."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.import_graph import direct_imports, module_file, project_modules

PROJECT = Path(__file__).resolve().parents[1]
MAY_IMPORT: dict[str, set[str]] = {
    "core": set(),
    "data": {"core"},
    "validation": {"core", "data"},
    "training": {"core", "data"},
    "tracking": {"core"},
    "evaluation": {"core", "data", "training"},
    "registry": {"core", "data", "training", "evaluation", "tracking"},
    "predict": {"core", "data", "validation", "training", "evaluation", "registry"},
    "orchestration": {"core", "data", "validation", "evaluation", "registry", "tracking"},
    "report": {"core", "data", "validation", "training", "evaluation", "registry", "tracking"},
    "serve": {"core", "data", "validation", "training", "evaluation", "registry", "predict"},
    "monitor": {"core", "data", "validation", "training", "evaluation", "registry", "predict"},
}
MAX_MODULE_LINES = 300
MAX_FUNCTION_LINES = 60


def layer(module: str) -> str:
    """`tabml.data.target` -> `data`; `tasks.train` -> `tasks`; `tabml` -> `tabml`."""
    parts = module.split(".")
    return parts[1] if parts[0] == "tabml" and len(parts) > 1 else parts[0]


def violations(root: Path) -> list[str]:
    found = []
    for module in project_modules(root, "tabml") + project_modules(root, "tasks"):
        mine = layer(module)
        for imported in direct_imports(root, module):
            theirs = layer(imported)
            if theirs in (mine, "tabml"):
                continue
            allowed = MAY_IMPORT.get(mine, set(MAY_IMPORT)) if mine != "tasks" else set(MAY_IMPORT)
            if theirs not in allowed:
                found.append(f"{module} imports {imported}")
    return found


def test_every_package_imports_only_the_layers_below_it() -> None:
    assert violations(PROJECT) == []


def test_every_package_is_placed_in_a_layer() -> None:
    packages = {p.name for p in (PROJECT / "tabml").iterdir() if (p / "__init__.py").is_file()}
    assert packages == set(MAY_IMPORT)


def cycles(root: Path) -> list[list[str]]:
    """Import cycles between modules (package __init__ edges left out: importing a.b always runs a)."""
    modules = project_modules(root, "tabml") + project_modules(root, "tasks") + project_modules(root, "flows")
    graph = {m: {i for i in direct_imports(root, m) if not m.startswith(i + ".")} for m in modules}
    found, state = [], dict.fromkeys(modules, 0)

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                found.append([*path[path.index(nxt) :], nxt] if nxt in path else [node, nxt])
            elif state.get(nxt) == 0:
                visit(nxt, [*path, nxt])
        state[node] = 2

    for module in modules:
        if state[module] == 0:
            visit(module, [module])
    return found


def test_no_module_imports_itself_in_a_cycle() -> None:
    assert cycles(PROJECT) == []


def long_functions(path: Path) -> list[str]:
    import ast

    tree = ast.parse(path.read_text())
    return [
        f"{path.relative_to(PROJECT)}:{node.lineno} {node.name} ({node.end_lineno - node.lineno + 1} lines)"
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        and node.end_lineno is not None
        and node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES
    ]


@pytest.mark.parametrize("package", ["tabml", "tasks", "flows"])
def test_modules_and_functions_stay_small(package: str) -> None:
    files = [module_file(PROJECT, m) for m in project_modules(PROJECT, package)]
    long_modules = [
        f"{f.relative_to(PROJECT)} ({n} lines)"
        for f in files
        if f is not None and (n := len(f.read_text().splitlines())) > MAX_MODULE_LINES
    ]
    assert long_modules == []
    assert [line for f in files if f is not None for line in long_functions(f)] == []
