"""dvc.yaml's DAG as DVC itself builds it: the stage names in run order, and DVC's errors as one readable line.

The flow, `python -m tabml.registry reproduce` and the benchmarks take the stage list from here, so none of them
can drift from `dvc repro`. DVC is imported inside the functions: it costs about a second to import.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import chdir, contextmanager
from pathlib import Path
from typing import Any

PROJECT_FILE = "dvc.yaml"


class PipelineDefinitionError(ValueError):
    """DVC cannot build the pipeline from dvc.yaml (schema error, overlapping outputs, a cycle)."""


def project_file(root: str | Path) -> Path:
    path = Path(root).resolve() / PROJECT_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no dvc.yaml here. Pass the project root (the folder holding it).")
    return path


def stage_order(root: str | Path = ".") -> list[str]:
    """Names of the stages in `<root>/dvc.yaml`, dependencies first, ties kept in declaration order."""
    from dvc.repo import Repo

    path = project_file(root)
    project = str(path.parent)
    # Planning only reads dvc.yaml and params.yaml, so it also works before `dvc init`.
    with building(path), chdir(project), Repo(project, uninitialized=True) as repo:
        return [stage.name for stage in ordered_stages(repo, path)]


def ordered_stages(repo: Any, path: Path) -> list[Any]:
    """The pipeline stages of `path` in an open repo, topologically, ties in declaration order."""
    import networkx as nx
    from dvc.stage import PipelineStage

    graph = repo.index.graph
    declared = {stage: position for position, stage in enumerate(repo.index.stages)}
    ordered = nx.lexicographical_topological_sort(graph.reverse(copy=False), key=lambda s: declared[s])
    return [stage for stage in ordered if isinstance(stage, PipelineStage) and Path(stage.path) == path]


@contextmanager
def building(path: Path) -> Iterator[None]:
    """Turn DVC's refusal to build the pipeline into PipelineDefinitionError naming dvc.yaml."""
    from dvc.exceptions import DvcException

    try:
        yield
    except DvcException as exc:
        raise PipelineDefinitionError(
            f"{path}: DVC cannot build the pipeline: {dvc_reason(exc)}\n"
            "  what to do: fix dvc.yaml; `dvc dag` shows the same error."
        ) from exc


def dvc_reason(exc: BaseException) -> str:
    """DVC wraps the cause ("failed to reproduce 'x'" from "failed to run: <cmd>, exited with 1"): keep both."""
    messages: list[str] = []
    current: BaseException | None = exc
    while current is not None:
        text = str(current).strip()
        if text and text not in messages:
            messages.append(text)
        current = current.__cause__ or current.__context__
    return ": ".join(messages) or type(exc).__name__
