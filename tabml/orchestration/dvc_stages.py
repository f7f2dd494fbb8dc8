"""dvc.yaml's stages, planned and run one at a time through DVC's own API.

The Prefect flow uses these so that it and `dvc repro` share one DAG, one skip rule and one `dvc.lock`.
DVC is imported inside the functions: importing it costs about a second and it has no place at import time.

Which failures a retry can fix (`is_retryable`): a command that crashed (killed, out of memory, an
unexpected exception), a timeout, DVC's lock held by another process. Never: a stage that reported a
data or config error (`[stage] FAILED: ...` from `tabml.cli.stage_main`), the validate stage, DVC
refusing the pipeline itself (bad dvc.yaml, a missing dependency).
"""

from __future__ import annotations

import os
import re
import signal
import sys
import textwrap
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import chdir, contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

PROJECT_FILE = "dvc.yaml"
# DVC's "failed to run: <cmd>, exited with <status>" for a command killed by SIGINT, directly or via its shell.
INTERRUPTED = re.compile(rf"exited with (-{signal.SIGINT.value}|{128 + signal.SIGINT.value})\b")
StageStatus = Literal["ran", "skipped"]
NEVER_RETRIED = frozenset({"validate"})  # bad data stays bad: rerunning the checks cannot fix it


@dataclass(frozen=True)
class StageOutcome:
    """What DVC did with one stage: ran its command (or restored it from the run cache) or skipped it."""

    name: str
    status: StageStatus
    seconds: float


class PipelineDefinitionError(ValueError):
    """DVC cannot build the pipeline from dvc.yaml (schema error, overlapping outputs, a cycle)."""


class StageFailedError(RuntimeError):
    """A stage's command failed, or DVC refused to run it: names the stage, DVC's reason and the stage's last words.

    `retryable` says whether running it again could help (see the module docstring).
    """

    def __init__(self, stage: str, reason: str, stderr_tail: str = "", retryable: bool = False) -> None:
        self.stage, self.reason, self.stderr_tail, self.retryable = stage, reason, stderr_tail, retryable
        said = "\n  its stderr ended with:\n" + textwrap.indent(stderr_tail, "    ") if stderr_tail else ""
        super().__init__(
            f"stage '{stage}' failed: {reason}{said}\n"
            f"  what to do: fix the cause shown in the stage's output, then rerun the flow or `dvc repro {stage}`."
        )


@dataclass(frozen=True)
class PipelinePlan:
    """The stages in run order, and those DVC would skip: unchanged, with nothing upstream of them to run."""

    order: list[str]
    up_to_date: frozenset[str] = field(default_factory=frozenset)


def stage_order(root: str | Path = ".") -> list[str]:
    """Names of the stages in `<root>/dvc.yaml`, dependencies first, ties kept in declaration order."""
    from dvc.repo import Repo

    project_file = _project_file(root)
    project = str(project_file.parent)
    # Planning only reads dvc.yaml and params.yaml, so it also works before `dvc init`.
    with _building(project_file), chdir(project), Repo(project, uninitialized=True) as repo:
        return [stage.name for stage in _ordered_stages(repo, project_file)]


def plan_pipeline(root: str | Path = ".", force: bool = False) -> PipelinePlan:
    """Run order plus what is already up to date, from one DVC repo: the cheap check before any task starts.

    A stage is up to date when DVC's own `changed()` says no and no stage upstream of it will run, which is
    exactly when `dvc repro` would skip it. If DVC's lock is held elsewhere, nothing is assumed up to date.
    """
    import networkx as nx
    from dvc.lock import LockError
    from dvc.repo import Repo, lock_repo

    project_file = _project_file(root)
    with _building(project_file), chdir(project_file.parent), Repo(str(project_file.parent)) as repo:
        if force:
            return PipelinePlan([stage.name for stage in _ordered_stages(repo, project_file)])
        try:
            with lock_repo(repo):  # consistent with any DVC process writing dvc.lock
                stages = _ordered_stages(repo, project_file)
                graph = repo.index.graph  # edges point from a stage to the stages it depends on
                to_run: set[str] = set()
                for stage in stages:
                    upstream = {s.name for s in nx.descendants(graph, stage)}
                    if upstream & to_run or stage.changed():
                        to_run.add(stage.name)
        except LockError:
            return PipelinePlan([stage.name for stage in _ordered_stages(repo, project_file)])
    order = [stage.name for stage in stages]
    return PipelinePlan(order, frozenset(order) - to_run)


def _ordered_stages(repo: Any, project_file: Path) -> list[Any]:
    import networkx as nx
    from dvc.stage import PipelineStage

    graph = repo.index.graph
    declared = {stage: position for position, stage in enumerate(repo.index.stages)}
    ordered = nx.lexicographical_topological_sort(graph.reverse(copy=False), key=lambda s: declared[s])
    return [stage for stage in ordered if isinstance(stage, PipelineStage) and Path(stage.path) == project_file]


@contextmanager
def _building(project_file: Path) -> Iterator[None]:
    from dvc.exceptions import DvcException

    try:
        yield
    except DvcException as exc:
        raise PipelineDefinitionError(
            f"{project_file}: DVC cannot build the pipeline: {_reason(exc)}\n"
            "  what to do: fix dvc.yaml; `dvc dag` shows the same error."
        ) from exc


def is_retryable(stage: str, exc: BaseException) -> bool:
    """Whether rerunning `stage` after `exc` could succeed; the flow's retry condition (module docstring)."""
    if stage in NEVER_RETRIED or not isinstance(exc, Exception):
        return False  # KeyboardInterrupt and cancellation stop the run
    retryable = getattr(exc, "retryable", None)  # StageFailedError and PublishError know
    if isinstance(retryable, bool):
        return retryable
    return not isinstance(exc, PipelineDefinitionError | FileNotFoundError)  # timeouts, I/O hiccups: yes


def _is_transient(failure: Exception, reason: str, reported_error: bool) -> bool:
    from dvc.lock import LockError

    if reported_error:
        return False  # the stage said what is wrong with the data or config: the same input fails again
    if isinstance(failure, LockError) or "Unable to acquire lock" in reason:
        return True
    return "exited with" in reason  # the command crashed; otherwise DVC refused the stage itself


def override_for(key: str, value: str) -> str:
    """`key='value'` quoted for `dvc exp run -S` (Hydra's grammar), so any path survives: commas, `=`, quotes."""
    # Hydra reads a backslash literally except in a run before a quote (or the closing quote): double those.
    escaped = re.sub(r"(\\*)('|$)", lambda m: m[1] * 2 + ("\\'" if m[2] else ""), value)
    return f"{key}='{escaped}'"


def apply_param_overrides(root: str | Path, overrides: Sequence[str]) -> None:
    """Write `dvc exp run -S` overrides (`train.lr=0.003`) into `<root>/params.yaml`, exactly as DVC does.

    The result must still load as typed params (unknown keys are errors); otherwise the file is left as it
    was. Overrides that look like secrets are refused: params.yaml is committed and recorded in lineage.
    """
    from dvc.exceptions import DvcException
    from dvc.utils.hydra import apply_overrides

    from tabml.core.params import ParamsError, load_params
    from tabml.core.redact import SECRET_KEY, redact_text

    path = Path(root).resolve() / "params.yaml"
    for override in overrides:
        key = override.split("=", 1)[0]
        if SECRET_KEY.search(key) or redact_text(override) != override:
            raise ParamsError(
                f"params_overrides: '{key}=...' looks like a secret; params.yaml is committed and recorded in "
                "lineage, so secrets never go there.\n  what to do: pass secrets through the environment."
            )
    original = path.read_text()
    try:
        apply_overrides(str(path), list(overrides))
        load_params(path)
    except DvcException as exc:
        path.write_text(original)
        raise ParamsError(
            f"params_overrides: {list(overrides)} are not valid `dvc exp run -S` overrides of {path}: "
            f"{_reason(exc)}\n  what to do: name existing keys, e.g. train.lr=0.003 or data.path='data/x.csv'."
        ) from None
    except ParamsError:
        path.write_text(original)
        raise


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
    with _StderrTee(marker=f"[{name}] FAILED:".encode()) as stderr:
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
        retryable = _is_transient(failure, reason, reported_error=stderr.marker_seen)
        raise StageFailedError(name, reason, stderr.tail(), retryable=retryable) from failure
    status: StageStatus = "ran" if ran else "skipped"
    return StageOutcome(name=name, status=status, seconds=time.perf_counter() - started)


class _StderrTee:
    """Pass everything written to fd 2 (the stage command's stderr included) through, keeping the last bytes.

    DVC lets the command inherit this process's stderr, so this is the only way to put the stage's own
    error message into the exception (and so into Prefect's logs and the run summary).
    """

    KEEP_BYTES = 4096
    TAIL_LINES = 15

    def __init__(self, marker: bytes = b"") -> None:
        self._kept = b""
        self._marker = marker
        self.marker_seen = False  # seen anywhere in the stream, however long the output after it
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
                if self._marker and not self.marker_seen:
                    # The kept tail holds the end of the previous chunk: a marker split across two reads is found.
                    self.marker_seen = self._marker in self._kept[-len(self._marker) :] + chunk
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
