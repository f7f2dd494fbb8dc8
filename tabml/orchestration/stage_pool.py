"""One dvc.yaml stage run on another work pool (`orchestration.stages.<stage>.work_pool`), e.g. train on GPUs.

The pipeline flow reaches a routed stage and, instead of running it, creates a flow run of the stage flow's
deployment on that pool (`tabml-stage/<pool>`, flows/stage.py), as a child of the stage's own task run, and waits:
first for a worker of the pool to start it (`orchestration.stage_pools.pickup_timeout_seconds`), then for it to
end. With `deployment.source: git` the inputs go over through a hand-over ref and the DVC remote (handover.py) and
the stage's dvc.lock entry and outputs come back the same way; with `source: local` the stage flow runs in the
same checkout, so nothing moves. Not `run_deployment`: it adds a task run of its own and has no pickup timeout.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from uuid import UUID

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.client.schemas.objects import State
from prefect.states import Completed

from tabml.core.ops_params import OrchestrationParams, StagePolicy
from tabml.orchestration import handover
from tabml.orchestration.dvc_stages import StageFailedError, StageOutcome, StageStatus
from tabml.orchestration.flow_params import FlowParams
from tabml.orchestration.task_states import SKIPPED
from tabml.registry.lineage import FLOW_RUN_ENV

STAGE_FLOW_NAME = "tabml-stage"
STAGE_ENTRYPOINT = "flows/stage.py:stage_flow"
POLL_SECONDS = 2.0
WAITING = {"SCHEDULED", "PENDING"}  # nobody has started it yet
FINAL = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}


class StagePoolError(StageFailedError):
    """A routed stage failed or never ran on its pool: one line naming pool, flow run and reason, then what to do."""

    def __init__(self, stage: str, reason: str, todo: str, retryable: bool = False) -> None:
        super().__init__(stage, reason, retryable=retryable)
        Exception.__init__(self, f"stage '{stage}' failed: {reason}\n  what to do: {todo}")


@dataclass(frozen=True)
class SubRun:
    id: str
    name: str
    pool: str


def routes(orchestration: OrchestrationParams, stages: list[str]) -> dict[str, str]:
    """{stage: work pool} for the stages sent elsewhere, in run order; pure."""
    return {stage: pool for stage in stages if (pool := orchestration.work_pool(stage)) is not None}


def deployment_name(pool: str) -> str:
    """The stage flow's deployment on `pool`: `tabml-stage/<pool>`; pure."""
    return f"{STAGE_FLOW_NAME}/{pool}"


def stage_flow_parameters(
    stage: str, root: str, ref: str | None, git_remote: str | None, pipeline_run_id: str, force: bool
) -> dict[str, Any]:
    """The stage flow run's parameters: names and ids only, never a credential (they are stored by Prefect)."""
    return {
        "stage": stage,
        "root": root,
        "handover_ref": ref,
        "git_remote": git_remote,
        "pipeline_run_id": pipeline_run_id,
        "force": force,
    }


def wait_limit(policy: StagePolicy, pickup_seconds: float) -> float | None:
    """Seconds a started stage flow may run: its tries' timeouts and retry waits, plus one pickup for its set-up."""
    if policy.timeout_seconds is None:
        return None
    return policy.timeout_seconds * (policy.retries + 1) + sum(policy.retry_delays()) + pickup_seconds


def not_picked_up(stage: str, run: SubRun, seconds: float) -> StagePoolError:
    return StagePoolError(
        stage,
        f"no worker of work pool '{run.pool}' started stage flow run '{run.name}' ({run.id}) within {seconds:g}s;"
        " it was cancelled",
        f"start one (`prefect worker start --pool {run.pool}`), or raise "
        "orchestration.stage_pools.pickup_timeout_seconds in params.yaml, then trigger the run again.",
    )


def did_not_finish(stage: str, run: SubRun, seconds: float) -> StagePoolError:
    return StagePoolError(
        stage,
        f"stage flow run '{run.name}' ({run.id}) on work pool '{run.pool}' did not finish within {seconds:g}s;"
        " it was cancelled",
        f"look at that flow run's logs; if it needs longer, raise orchestration.stages.{stage}.timeout_seconds.",
    )


def ended_badly(stage: str, run: SubRun, state_name: str, message: str | None) -> StagePoolError:
    said = (message or "").strip().splitlines()
    reason = said[0] if said else "no message"
    return StagePoolError(
        stage,
        f"on work pool '{run.pool}', stage flow run '{run.name}' ({run.id}) ended {state_name}: {reason}",
        f"read that flow run's logs (the worker of '{run.pool}'), fix the cause, then trigger the run again.",
    )


def no_deployment(stage: str, pool: str) -> StagePoolError:
    return StagePoolError(
        stage,
        f"orchestration.stages.{stage}.work_pool is '{pool}' but the server has no deployment "
        f"'{deployment_name(pool)}'",
        "run `python -m flows.deploy deploy` (make deploy): it deploys the stage flow on every such pool.",
    )


def needs_git_remote(stage: str, pool: str) -> StagePoolError:
    return StagePoolError(
        stage,
        f"it is sent to work pool '{pool}' from a git-sourced run, and the hand-over needs a git remote, but "
        "orchestration.publish.git_remote is null",
        "set orchestration.publish.git_remote (origin), or run the stage here (stages.<stage>.work_pool: null).",
    )


StageStep = Callable[[str, str, bool, dict[str, str]], Any]  # (root, stage, force, env), as the flow's stage task


def on_its_pool(stage: str, params: FlowParams, here: StageStep) -> StageStep:
    """The task that runs `stage` on its work pool, called as the flow's own stage task `here` is, or `here`."""
    pool = params.orchestration.work_pool(stage)
    if pool is None:
        return here
    step = run_stage_on_pool.with_options(name=stage, task_run_name=stage)  # no retries: the stage flow retries

    def on_pool(root: str, name: str, force: bool, env: dict[str, str]) -> Any:
        final = step(root, name, force, env, pool, params.orchestration)  # the State it returned: its data is ours
        return final.result() if isinstance(final, State) else final

    return on_pool


@task(cache_policy=NO_CACHE, persist_result=False)
def run_stage_on_pool(
    root: str, name: str, force: bool, env: dict[str, str], pool: str, orchestration: OrchestrationParams
) -> State:
    """The routed stage's task run: hand over, start the stage flow on `pool`, wait, take the result back."""
    project, run_id = Path(root), env.get(FLOW_RUN_ENV, "")
    git_remote = orchestration.publish.git_remote
    started = time.perf_counter()
    ref, handed = None, ""
    if orchestration.deployment.source == "git":
        if git_remote is None:
            raise needs_git_remote(name, pool)
        ref = handover.handover_ref(run_id, name)
        handed = _hand_over(project, name, ref, git_remote, orchestration.publish.remote)
    where = "." if ref else str(project)
    parameters = stage_flow_parameters(name, where, ref, git_remote if ref else None, run_id, force)
    run = _start(name, pool, parameters)
    get_run_logger().info(f"{name}: sent to work pool '{pool}' as stage flow run '{run.name}' ({run.id})")
    final = _wait(name, run, orchestration)
    if final.type.value != "COMPLETED":
        raise ended_badly(name, run, final.name or final.type.value, final.message)
    if ref is not None and git_remote is not None:
        _take_back(project, name, ref, git_remote, handed, orchestration.publish.remote)
    status: StageStatus = "skipped" if final.name == SKIPPED else "ran"
    outcome = StageOutcome(name=name, status=status, seconds=time.perf_counter() - started)
    return Completed(
        message=f"{status} on work pool '{pool}' as stage flow run '{run.name}' ({run.id}): {final.message}",
        data=outcome,
    )


def _hand_over(project: Path, stage: str, ref: str, git_remote: str, remote: str | None) -> str:
    """`dvc push` of the stage's inputs, then the workspace committed and pushed to `ref`; the commit."""
    sent = handover.transfer(project, "push", handover.upstream_outputs(project, stage), remote, stage)
    handed = handover.commit_and_push(project, git_remote, ref, f"hand-over of stage {stage}")
    get_run_logger().info(f"{stage}: {sent} files pushed to the DVC remote, handed over on {ref} ({handed[:12]})")
    return handed


def _take_back(project: Path, stage: str, ref: str, git_remote: str, handed: str, remote: str | None) -> None:
    """What the stage's machine committed on `ref`, into the workspace; its outputs pulled; the ref deleted."""
    logger = get_run_logger()
    changed = handover.take_back(project, git_remote, ref, handed)
    pulled = handover.transfer(project, "pull", handover.stage_outputs(project, stage), remote, stage)
    logger.info(f"{stage}: took back {', '.join(changed) or 'nothing'} from {ref}; {pulled} files pulled")
    if (why := handover.delete_ref(project, git_remote, ref)) is not None:
        logger.warning(f"{stage}: hand-over ref {ref} stays on git remote '{git_remote}': {why}")


def stage_flow_storage(repository: str, commit: str) -> Any:
    """Prefect storage whose only pull step clones `repository` at `commit`: the stage flow pulls just its inputs."""
    from prefect.runner.storage import GitRepository

    from tabml.orchestration.code_source import pull_steps

    class CloneOnly(GitRepository):
        def to_pull_step(self) -> list[dict[str, Any]]:  # type: ignore[override]
            return pull_steps(repository, commit)[:1]

    return CloneOnly(url=repository, commit_sha=commit)


def _start(stage: str, pool: str, parameters: dict[str, Any]) -> SubRun:
    from prefect.client.orchestration import get_client
    from prefect.context import TaskRunContext
    from prefect.exceptions import ObjectNotFound

    context = TaskRunContext.get()
    parent = context.task_run.id if context else None  # the stage's task run shows the stage flow run under it
    with get_client(sync_client=True) as client:
        try:
            deployment = client.read_deployment_by_name(deployment_name(pool))
        except ObjectNotFound:
            raise no_deployment(stage, pool) from None
        flow_run = client.create_flow_run_from_deployment(
            deployment.id, parameters=parameters, parent_task_run_id=parent, tags=["tabml-stage", stage]
        )
    return SubRun(id=str(flow_run.id), name=flow_run.name, pool=pool)


def _wait(stage: str, run: SubRun, orchestration: OrchestrationParams) -> State:
    """Poll the stage flow run until it ends; cancel it if nobody starts it, if it overruns, or if we are stopped."""
    from prefect.client.orchestration import get_client

    pickup = orchestration.stage_pools.pickup_timeout_seconds
    limit = wait_limit(orchestration.policy(stage), pickup)
    created, running_since = time.monotonic(), None
    with get_client(sync_client=True) as client:
        try:
            while True:
                state = client.read_flow_run(UUID(run.id)).state
                kind = state.type.value if state else "SCHEDULED"
                if state is not None and kind in FINAL:
                    return state
                if kind in WAITING and running_since is None and time.monotonic() - created > pickup:
                    _cancel(client, run, "no worker picked it up", started=False)
                    raise not_picked_up(stage, run, pickup)
                if kind not in WAITING and running_since is None:
                    running_since = time.monotonic()
                if running_since is not None and limit is not None and time.monotonic() - running_since > limit:
                    _cancel(client, run, "it overran its time", started=True)
                    raise did_not_finish(stage, run, limit)
                time.sleep(POLL_SECONDS)
        except BaseException as exc:
            if not isinstance(exc, StagePoolError):  # the main flow was cancelled or timed out: take the child along
                _cancel(client, run, f"the pipeline run stopped ({type(exc).__name__})", running_since is not None)
            raise


def _cancel(client: Any, run: SubRun, why: str, started: bool) -> None:
    """Cancelling lets the worker stop a started run's process; a run nobody started is simply Cancelled."""
    from prefect.states import Cancelled, Cancelling

    message = f"cancelled by the pipeline run: {why}"
    state: State = Cancelling(message=message) if started else Cancelled(message=message)
    with suppress(Exception):  # best effort: the error raised after this says what happened
        client.set_flow_run_state(UUID(run.id), state, force=True)
