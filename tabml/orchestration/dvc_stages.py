"""dvc.yaml's stages, planned and run one at a time through DVC's own API.

The Prefect flow uses these so that it and `dvc repro` share one DAG, one skip rule and one `dvc.lock`.
DVC is imported inside the functions: importing it costs about a second and it has no place at import time.

What a failure means comes from the stage's exit code (tabml.core.errors), which the stage also writes with its
one-line reason to the file named by TABML_STAGE_STATUS (tabml.core.stage): bad data or params (65) is never
retried, a crash (1), a transient failure (75) or a killed process (the file still says `running`) is retried
as `orchestration.stages` allows, a Ctrl-C (130) stops the run. When DVC itself refuses a stage before its
command runs (a missing dependency, a bad dvc.yaml) nothing is retried, except DVC's lock held by another
`dvc` process, which is transient.
"""

from __future__ import annotations

import os
import signal
import sys
import tempfile
import textwrap
import threading
import time
from collections.abc import Callable, Mapping
from contextlib import chdir, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from tabml.core.dag import PROJECT_FILE, PipelineDefinitionError, building, dvc_reason, ordered_stages, project_file
from tabml.core.errors import ExitCode
from tabml.core.files import read_json_object
from tabml.core.lifeline import FLOW_PID_ENV, GRACE_SECONDS, signal_group
from tabml.core.stage import STATUS_ENV
from tabml.orchestration.params_once import params_files_parsed_once

StageStatus = Literal["ran", "skipped"]


@dataclass(frozen=True)
class StageOutcome:
    """What DVC did with one stage: ran its command (or restored it from the run cache) or skipped it."""

    name: str
    status: StageStatus
    seconds: float


class StageFailedError(RuntimeError):
    """A stage's command failed, or DVC refused to run it: the stage, the reason, and whether a retry could help.

    `exit_code` is the stage's own (None when it never ran, or was killed before it could say)."""

    def __init__(
        self, stage: str, reason: str, stderr_tail: str = "", retryable: bool = False, exit_code: int | None = None
    ) -> None:
        self.stage, self.reason, self.stderr_tail = stage, reason, stderr_tail
        self.retryable, self.exit_code = retryable, exit_code
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
    forced: Mapping[str, str] = field(default_factory=dict)  # unchanged for DVC, but must run: stage -> why
    checked_seconds: Mapping[str, float] = field(default_factory=dict, compare=False)  # DVC's check, per stage


def plan_pipeline(
    root: str | Path = ".",
    force: bool = False,
    on_up_to_date: Callable[[str, float], None] | None = None,
    missing_effect: Callable[[str], str | None] | None = None,
) -> PipelinePlan:
    """Run order plus what is already up to date, from one DVC repo: the cheap check before any task starts.

    A stage is up to date when DVC's own `changed()` says no and no stage upstream of it will run, which is
    exactly when `dvc repro` would skip it. If DVC's lock is held elsewhere, nothing is assumed up to date.
    `on_up_to_date(name, seconds its check took)` is called as each such stage is found, in run order: the
    decision is final then, as every stage upstream of it was checked before it. `missing_effect(name)` names
    what an unchanged stage left outside DVC that this workspace lacks (a registration): such a stage is forced.
    """
    import networkx as nx
    from dvc.lock import LockError
    from dvc.repo import Repo, lock_repo

    path = project_file(root)
    with building(path), chdir(path.parent), Repo(str(path.parent)) as repo, params_files_parsed_once():
        if force:
            return PipelinePlan([stage.name for stage in ordered_stages(repo, path)])
        try:
            with lock_repo(repo):  # consistent with any DVC process writing dvc.lock
                stages = ordered_stages(repo, path)
                graph = repo.index.graph  # edges point from a stage to the stages it depends on
                to_run: set[str] = set()
                forced: dict[str, str] = {}
                seconds: dict[str, float] = {}
                for stage in stages:
                    started = time.perf_counter()
                    upstream = {s.name for s in nx.descendants(graph, stage)}
                    if upstream & to_run or stage.changed():
                        to_run.add(stage.name)
                    elif missing_effect is not None and (why := missing_effect(stage.name)):
                        to_run.add(stage.name)
                        forced[stage.name] = why
                    seconds[stage.name] = time.perf_counter() - started
                    if on_up_to_date is not None and stage.name not in to_run:
                        on_up_to_date(stage.name, seconds[stage.name])
        except LockError:
            return PipelinePlan([stage.name for stage in ordered_stages(repo, path)])
    order = [stage.name for stage in stages]
    return PipelinePlan(order, frozenset(order) - to_run, forced, seconds)


def is_retryable(exc: BaseException) -> bool:
    """Whether rerunning a stage after `exc` could succeed; the flow's retry condition (module docstring)."""
    if not isinstance(exc, Exception):
        return False  # KeyboardInterrupt and cancellation stop the run
    retryable = getattr(exc, "retryable", None)  # StageFailedError and PublishError know
    if isinstance(retryable, bool):
        return retryable
    return not isinstance(exc, PipelineDefinitionError | FileNotFoundError)  # timeouts, I/O hiccups: yes


def read_status(path: Path) -> dict[str, Any] | None:
    """What the stage wrote to TABML_STAGE_STATUS: None when its command never started."""
    return read_json_object(path)


def failure_of(name: str, exc: Exception, status: dict[str, Any] | None, tail: str) -> BaseException:
    """The exception a failed `dvc repro <name>` is reported as, from the stage's status and DVC's error types."""
    from dvc.lock import LockError
    from dvc.stage.exceptions import StageCmdFailedError

    chain = _chain(exc)
    if not any(isinstance(e, StageCmdFailedError) for e in chain):  # DVC refused before the command ran
        locked = any(isinstance(e, LockError) for e in chain)  # another `dvc` holds the repo: transient
        return StageFailedError(name, dvc_reason(exc), retryable=locked)
    if status is None:  # the command ran but never reported (not a tabml stage, or it died while importing)
        return StageFailedError(name, dvc_reason(exc), tail, retryable=True)
    if status.get("state") == "running":  # the command died without a word: killed, out of memory, a segfault
        return StageFailedError(name, f"the command was killed ({dvc_reason(exc)})", tail, retryable=True)
    code = ExitCode(int(status["exit_code"])) if status.get("exit_code") in set(ExitCode) else ExitCode.CRASH
    if code == ExitCode.INTERRUPTED:
        return KeyboardInterrupt(f"stage '{name}' was interrupted")
    message = str(status.get("message") or dvc_reason(exc))
    shown_tail = tail if code == ExitCode.CRASH else ""  # a crash's traceback; a reported error said it all
    return StageFailedError(name, message, shown_tail, retryable=code.retryable, exit_code=int(code))


def _chain(exc: BaseException) -> list[BaseException]:
    found, current = [], exc
    while current is not None and current not in found:
        found.append(current)
        current = current.__cause__ or current.__context__  # type: ignore[assignment]
    return found


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

    path = project_file(root)
    already_running = {child.pid for child in psutil.Process().children(recursive=True)}
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="tabml-stage-") as tmp, _StderrTee() as stderr:
        status_file = Path(tmp) / "status.json"
        run_env = {"PATH": _path_with_interpreter(), **(env or {}), STATUS_ENV: str(status_file)}
        run_env[FLOW_PID_ENV] = str(os.getpid())  # the stage leads its own process group and dies with us
        try:
            # DVC resolves targets and run-cache paths against the process cwd, not the repo: run from the root.
            # chdir is process-wide, so stages must not be reproduced from two threads at once.
            with chdir(path.parent), Repo(str(path.parent)) as repo:
                repo.scm_context.quiet = True  # no "git add dvc.lock" hint after every stage
                ran = repo.reproduce(f"{PROJECT_FILE}:{name}", single_item=True, force=force, run_env=run_env)
        except DvcException as exc:
            raise failure_of(name, exc, read_status(status_file), stderr.tail()) from exc
        except BaseException:
            # A Prefect timeout (or any exception raised into this thread) interrupts DVC while it waits for
            # the command, and DVC leaves the command running: stop it, or a retry would run beside it.
            _stop_stage(read_status(status_file), already_running)
            raise
    status: StageStatus = "ran" if ran else "skipped"
    return StageOutcome(name=name, status=status, seconds=time.perf_counter() - started)


class _StderrTee:
    """Pass everything written to fd 2 (the stage command's stderr included) through, keeping the last bytes.

    DVC lets the command inherit this process's stderr; the tail goes into the exception (Prefect's logs, the
    run summary) when a stage crashed without a one-line reason of its own.
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


def _stop_stage(status: dict[str, Any] | None, already_running: set[int]) -> None:
    """SIGTERM to the stage's own process group (its DDP ranks and workers too, even those no longer our
    descendants) and to our new descendants; SIGKILL to whatever is left after the grace period."""
    pgid = (status or {}).get("pgid")
    group = pgid if isinstance(pgid, int) and pgid > 1 and pgid != os.getpgrp() else None
    if group is not None:
        signal_group(group, signal.SIGTERM)
    _stop_processes_started_after(already_running, GRACE_SECONDS)
    if group is not None:
        signal_group(group, signal.SIGKILL)


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
