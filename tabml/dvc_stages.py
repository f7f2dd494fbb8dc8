"""dvc.yaml's stages, planned and run one at a time through DVC's own API.

The Prefect flow uses these so that it and `dvc repro` share one DAG, one skip rule and one `dvc.lock`.
DVC is imported inside the functions: importing it costs about a second and it has no place at import time.
"""

from __future__ import annotations

import os
import re
import signal
import sys
import textwrap
import threading
import time
from collections.abc import Mapping
from contextlib import chdir, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

PROJECT_FILE = "dvc.yaml"
# DVC's "failed to run: <cmd>, exited with <status>" for a command killed by SIGINT, directly or via its shell.
INTERRUPTED = re.compile(rf"exited with (-{signal.SIGINT.value}|{128 + signal.SIGINT.value})\b")
StageStatus = Literal["ran", "skipped"]


@dataclass(frozen=True)
class StageOutcome:
    """What DVC did with one stage: ran its command (or restored it from the run cache) or skipped it."""

    name: str
    status: StageStatus
    seconds: float


class PipelineDefinitionError(ValueError):
    """DVC cannot build the pipeline from dvc.yaml (schema error, overlapping outputs, a cycle)."""


class StageFailedError(RuntimeError):
    """A stage's command failed, or DVC refused to run it: names the stage, DVC's reason and the stage's last words."""

    def __init__(self, stage: str, reason: str, stderr_tail: str = "") -> None:
        self.stage, self.reason, self.stderr_tail = stage, reason, stderr_tail
        said = "\n  its stderr ended with:\n" + textwrap.indent(stderr_tail, "    ") if stderr_tail else ""
        super().__init__(
            f"stage '{stage}' failed: {reason}{said}\n"
            f"  what to do: fix the cause shown in the stage's output, then rerun the flow or `dvc repro {stage}`."
        )


def stage_order(root: str | Path = ".") -> list[str]:
    """Names of the stages in `<root>/dvc.yaml`, dependencies first, ties kept in declaration order."""
    import networkx as nx
    from dvc.exceptions import DvcException
    from dvc.repo import Repo
    from dvc.stage import PipelineStage

    project_file = _project_file(root)
    try:
        # Planning only reads dvc.yaml and params.yaml, so it also works before `dvc init`.
        with chdir(project_file.parent), Repo(str(project_file.parent), uninitialized=True) as repo:
            graph = repo.index.graph  # edges point from a stage to the stages it depends on
            declared = {stage: position for position, stage in enumerate(repo.index.stages)}
    except DvcException as exc:
        raise PipelineDefinitionError(
            f"{project_file}: DVC cannot build the pipeline: {_reason(exc)}\n"
            "  what to do: fix dvc.yaml; `dvc dag` shows the same error."
        ) from exc
    ordered = nx.lexicographical_topological_sort(graph.reverse(copy=False), key=lambda s: declared[s])
    return [stage.name for stage in ordered if isinstance(stage, PipelineStage) and Path(stage.path) == project_file]


def reproduce_stage(
    root: str | Path,
    name: str,
    force: bool = False,
    env: Mapping[str, str] | None = None,
) -> StageOutcome:
    """`dvc repro --single-item <name>`: DVC decides whether to run it and writes its dvc.lock entry.

    `env` is added to the stage command's environment. The command runs in its own process with
    this interpreter's directory first on PATH, so `python` in dvc.yaml means the flow's Python.
    """
    import psutil
    from dvc.exceptions import DvcException
    from dvc.repo import Repo

    project_file = _project_file(root)
    run_env = {"PATH": _path_with_interpreter(), **(env or {})}
    already_running = {child.pid for child in psutil.Process().children(recursive=True)}
    failure: DvcException | None = None
    started = time.perf_counter()
    with _StderrTee() as stderr:
        try:
            # DVC resolves targets and run-cache paths against the process cwd, not the repo: run from the root.
            # chdir is process-wide, so stages must not be reproduced from two threads at once.
            with chdir(project_file.parent), Repo(str(project_file.parent)) as repo:
                repo.scm_context.quiet = True  # no "git add dvc.lock" hint after every stage
                ran = repo.reproduce(f"{PROJECT_FILE}:{name}", single_item=True, force=force, run_env=run_env)
        except DvcException as exc:
            failure = exc
        except BaseException:
            # A Prefect timeout (or any exception raised into this thread) interrupts DVC while it waits for
            # the command, and DVC leaves the command running: stop it, or a retry would run beside it.
            _stop_processes_started_after(already_running)
            raise
    if failure is not None:
        reason = _reason(failure)
        if INTERRUPTED.search(reason):
            # Ctrl-C reaches the command (DVC ignores SIGINT meanwhile): stop the flow, do not retry the stage.
            raise KeyboardInterrupt(f"stage '{name}' was interrupted") from failure
        raise StageFailedError(name, reason, stderr.tail()) from failure
    status: StageStatus = "ran" if ran else "skipped"
    return StageOutcome(name=name, status=status, seconds=time.perf_counter() - started)


class _StderrTee:
    """Pass everything written to fd 2 (the stage command's stderr included) through, keeping the last bytes.

    DVC lets the command inherit this process's stderr, so this is the only way to put the stage's own
    error message into the exception (and so into Prefect's logs and the run summary).
    """

    KEEP_BYTES = 4096
    TAIL_LINES = 15

    def __init__(self) -> None:
        self._kept = b""
        self._thread: threading.Thread | None = None
        self._original = -1

    def __enter__(self) -> _StderrTee:
        sys.stderr.flush()
        self._original = os.dup(2)
        read_end, write_end = os.pipe()
        os.dup2(write_end, 2)
        os.close(write_end)
        self._thread = threading.Thread(target=self._pump, args=(read_end,), name="stage-stderr", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        sys.stderr.flush()
        os.dup2(self._original, 2)  # drops our write end: the pump sees EOF once the command's copy is closed too
        if self._thread is not None:
            # A process the command left behind may hold the pipe open: stop waiting, the pump stays a daemon.
            self._thread.join(timeout=5)

    def _pump(self, read_end: int) -> None:
        # The pump owns both fds and closes them itself, so a late write can never hit a reused fd number.
        with suppress(OSError):
            while chunk := os.read(read_end, 65536):
                os.write(self._original, chunk)
                self._kept = (self._kept + chunk)[-self.KEEP_BYTES :]
        os.close(read_end)
        os.close(self._original)

    def tail(self) -> str:
        lines = [line.rstrip() for line in self._kept.decode(errors="replace").replace("\r", "\n").split("\n")]
        return "\n".join([line for line in lines if line][-self.TAIL_LINES :])


def _project_file(root: str | Path) -> Path:
    project_file = Path(root).resolve() / PROJECT_FILE
    if not project_file.is_file():
        raise FileNotFoundError(f"{project_file}: no dvc.yaml here. Pass the project root (the folder holding it).")
    return project_file


def _stop_processes_started_after(already_running: set[int], grace_seconds: float = 10.0) -> None:
    """Terminate (then kill) this process's descendants that were not running before: the stage's command."""
    import psutil

    started = [p for p in psutil.Process().children(recursive=True) if p.pid not in already_running]
    for proc in started:
        with suppress(psutil.Error):
            proc.terminate()
    _, alive = psutil.wait_procs(started, timeout=grace_seconds)
    for proc in alive:
        with suppress(psutil.Error):
            proc.kill()
    psutil.wait_procs(alive, timeout=grace_seconds)


def _path_with_interpreter() -> str:
    interpreter_dir = str(Path(sys.executable).parent)
    rest = [p for p in os.environ.get("PATH", "").split(os.pathsep) if p and p != interpreter_dir]
    return os.pathsep.join([interpreter_dir, *rest])


def _reason(exc: BaseException) -> str:
    """DVC wraps the cause ("failed to reproduce 'x'" from "failed to run: <cmd>, exited with 1"): keep both."""
    messages: list[str] = []
    current: BaseException | None = exc
    while current is not None:
        text = str(current).strip()
        if text and text not in messages:
            messages.append(text)
        current = current.__cause__ or current.__context__
    return ": ".join(messages) or type(exc).__name__
