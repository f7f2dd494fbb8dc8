"""dvc.yaml's code deps cover every module each stage runs, so `dvc repro` can never reuse a result computed by
code that has changed since (a missing dep would make it say "up to date" after an edit)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests.import_graph import module_file, transitive_imports

PROJECT = Path(__file__).resolve().parents[1]


def stage_code(root: Path) -> dict[str, tuple[str, list[str]]]:
    """stage -> (its module, its deps as written), for stages whose command is `python -m <module>`."""
    stages = yaml.safe_load((root / "dvc.yaml").read_text())["stages"]
    found = {}
    for name, stage in stages.items():
        words = str(stage["cmd"]).split()
        module = words[words.index("-m") + 1]
        found[name] = (module, [str(dep) for dep in stage.get("deps", [])])
    return found


def uncovered_modules(root: Path, module: str, deps: list[str]) -> list[str]:
    """Files of the project modules `module` runs that no dep (a file, or a folder above it) covers."""
    covered = [root / dep for dep in deps if "${" not in dep]
    files = sorted(module_file(root, name) for name in transitive_imports(root, module))  # type: ignore[type-var]
    return [
        str(path.relative_to(root))
        for path in files
        if path is not None and not any(path == dep or path.is_relative_to(dep) for dep in covered)
    ]


@pytest.mark.parametrize("stage", sorted(stage_code(PROJECT)))
def test_every_module_a_stage_runs_is_one_of_its_deps(stage: str) -> None:
    module, deps = stage_code(PROJECT)[stage]
    assert uncovered_modules(PROJECT, module, deps) == [], f"dvc.yaml stage {stage!r} lacks these code deps"


def test_the_check_sees_a_dep_that_is_missing(tmp_path: Path) -> None:
    (tmp_path / "tasks").mkdir()
    (tmp_path / "tabml" / "data").mkdir(parents=True)
    for init in ("tasks/__init__.py", "tabml/__init__.py", "tabml/data/__init__.py"):
        (tmp_path / init).write_text("")
    (tmp_path / "tasks/prep.py").write_text("def run():\n    from tabml.data.target import encode\n")
    (tmp_path / "tabml/data/target.py").write_text("from . import arrays\n")
    (tmp_path / "tabml/data/arrays.py").write_text("")
    deps = ["tasks/__init__.py", "tasks/prep.py", "tabml/__init__.py", "tabml/data/__init__.py", "tabml/data/target.py"]
    assert uncovered_modules(tmp_path, "tasks.prep", deps) == ["tabml/data/arrays.py"]
    assert uncovered_modules(tmp_path, "tasks.prep", ["tasks", "tabml"]) == []


def test_a_stage_started_by_a_python_without_the_projects_packages_says_so_in_one_line(tmp_path: Path) -> None:
    import subprocess
    import sys

    # -S: no site-packages, as a system Python without the project's environment would be
    done = subprocess.run(
        [sys.executable, "-S", "-m", "tasks.ingest"], cwd=PROJECT, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 65
    (line, todo) = done.stderr.strip().splitlines()
    assert line.startswith("[tasks] FAILED: ") and "cannot import" in line and "source .venv/bin/activate" in todo
