"""The states a stage's task run ends in, and the policies around them: "Skipped" for a stage DVC found up to
date (and the recorder that creates those task runs), "NotRun" after a failed one, when a retry can help, how a
timeout reads, and flow-run settings for a run started by hand. Used by flows/pipeline.py; no flow or task is
defined here.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

from prefect.client.schemas.objects import State, TaskRun
from prefect.context import FlowRunContext
from prefect.states import Cancelled, Completed

from tabml.core.ops_params import StagePolicy
from tabml.orchestration.dvc_stages import StageFailedError, StageOutcome, is_retryable

SKIPPED = "Skipped"  # the state name (type Completed) of a stage's task run when DVC skipped the stage
NOT_RUN = "NotRun"  # the state name (type Cancelled) of the stages after a failed one
UP_TO_DATE = "up to date: its deps, params and outs match dvc.lock, so DVC skipped it"


def retry_if_it_can_help(task: Any, task_run: TaskRun, state: State) -> bool:
    """Prefect's retry condition: the stage's exit code says whether a rerun could help (is_retryable)."""
    failure = state.result(raise_on_failure=False)
    return isinstance(failure, BaseException) and is_retryable(failure)


def stage_task(fn: Any, name: str, policy: StagePolicy) -> Any:
    """`fn` as the task run named after its stage, with the stage's retries and timeout (orchestration.stages)."""
    return fn.with_options(
        name=name,
        task_run_name=name,
        retries=policy.retries,
        retry_delay_seconds=policy.retry_delays() or 0,
        retry_condition_fn=retry_if_it_can_help,
        timeout_seconds=policy.timeout_seconds,
    )


def skipped_state(outcome: StageOutcome) -> State:
    """The final state of a skipped stage's task run (no data: the flow keeps the outcome)."""
    return Completed(name=SKIPPED, message=f"{UP_TO_DATE} (checked in {outcome.seconds:.2f}s)")


class SkippedRecorder:
    """Creates the task run of each stage the plan finds up to date, in its final "Skipped" state, in one API call.

    Running the task through Prefect's engine would say the same, but its Pending/Running/Completed events make
    the server's event recorder write while the next run is being created, and SQLite then makes that request
    back off for seconds. The calls go out one at a time on a worker thread, in stage order, while DVC checks the
    next stage (two at once make SQLite back off just the same: measured); `wait` and leaving the `with` wait
    for them, and a failed call fails the run (bench/orchestration_overhead.py).
    """

    def __init__(self, skip_task: Any) -> None:
        context = FlowRunContext.get()
        self._context = context if context is not None and context.flow_run is not None else None
        self._skip_task = skip_task
        self._pool: ThreadPoolExecutor | None = None
        self._pending: list[Future[Any]] = []

    def __enter__(self) -> SkippedRecorder:
        return self

    def record(self, name: str, checked_seconds: float) -> None:
        """Queue the task run of stage `name`, up to date after a check of `checked_seconds`."""
        if self._context is None or self._context.flow_run is None:
            return
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="skipped-stages")
        state = skipped_state(StageOutcome(name=name, status="skipped", seconds=checked_seconds))  # time: now
        self._pending.append(
            self._pool.submit(
                self._context.client.create_task_run,
                task=self._skip_task.with_options(name=name),
                flow_run_id=self._context.flow_run.id,
                dynamic_key=name,
                name=name,
                state=state,
            )
        )

    def wait(self) -> None:
        """Until every queued task run exists; raises the first failure."""
        pending, self._pending = self._pending, []
        for future in pending:
            future.result()

    def __exit__(self, exc_type: type[BaseException] | None, *rest: object) -> None:
        if self._pool is None:
            return
        try:
            if exc_type is None:  # otherwise the error in flight is the one to report
                self.wait()
        finally:
            self._pool.shutdown(wait=True)


def not_run_state(failed: str) -> State:
    """The final state of a stage after the one that failed."""
    return Cancelled(name=NOT_RUN, message=f"not run: stage '{failed}' failed before it")


def as_stage_failure(name: str, exc: Exception, timeout_seconds: float | None) -> StageFailedError:
    # A Prefect timeout arrives as TimeoutError, not as DVC's error: name the stage and the setting either way.
    if isinstance(exc, StageFailedError):
        return exc
    if isinstance(exc, TimeoutError):
        return StageFailedError(
            name,
            f"timed out after {timeout_seconds}s and its command was stopped; if it needs longer, raise "
            f"orchestration.stages.{name}.timeout_seconds in params.yaml",
            retryable=True,
        )
    return StageFailedError(name, f"{type(exc).__name__}: {exc}", retryable=is_retryable(exc))


@contextmanager
def manual_run_settings() -> Iterator[None]:
    """Flow-run heartbeats off for a run started from a terminal, which watches the run itself.

    A heartbeat lets the server notice a run whose machine died; the engine waits for the heartbeat thread's
    current 1 s sleep at the end of every run, up to a second that dominates a run with nothing to do
    (bench/orchestration_overhead.py). Deployment runs, started by a worker, keep their heartbeats.
    """
    from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings

    with temporary_settings({PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}):
        yield
