"""The stage flow: exactly one dvc.yaml stage, on the work pool the pipeline flow sent it to (e.g. train on GPUs).

Deployed by `python -m flows.deploy deploy` as `tabml-stage/<pool>` on every pool named in
`orchestration.stages.<stage>.work_pool`, and started by the pipeline flow (tabml.orchestration.stage_pool), never
by hand. With a hand-over ref (a git-sourced run) it checks the ref out in its clone, `dvc pull`s the stage's
inputs, runs `dvc repro --single-item <stage>` with the stage's retries and timeout, `dvc push`es its outputs and
pushes its dvc.lock back on the ref; without one it runs the stage in `root`, the pipeline's own checkout.
docs/scale-out.md section 5.
"""

from __future__ import annotations

import logging
import socket
import time
from pathlib import Path

from prefect import flow, get_run_logger
from prefect.client.schemas.objects import State
from prefect.states import Completed, Failed

from flows.pipeline import run_stage
from tabml.core.env import quiet_telemetry
from tabml.orchestration import handover
from tabml.orchestration.dvc_stages import StageOutcome
from tabml.orchestration.flow_params import load_flow_params
from tabml.orchestration.task_states import SKIPPED, as_stage_failure, stage_task
from tabml.registry.lineage import FLOW_RUN_ENV
from tabml.tracking.runs import RUN_ID_ENV as WANDB_RUN_ENV
from tabml.tracking.runs import wandb_run_id

FLOW_NAME = "tabml-stage"


@flow(name=FLOW_NAME, persist_result=False, result_serializer="json")
def stage_flow(
    stage: str,
    root: str = ".",
    handover_ref: str | None = None,
    git_remote: str | None = None,
    pipeline_run_id: str = "",
    force: bool = False,
) -> State:
    """Run `stage` through DVC here; Completed ("Skipped" when DVC had nothing to do) or Failed with one line."""
    try:
        outcome = _run(Path(root).resolve(), stage, handover_ref, git_remote, pipeline_run_id, force)
    except Exception as exc:  # noqa: BLE001 - the pipeline flow reads this state's message, nothing is pickled
        failure = as_stage_failure(stage, exc, None)  # a timeout was named in _run already
        get_run_logger().error(str(failure))
        return Failed(message=str(failure).splitlines()[0])
    where = f"{outcome.status} in {outcome.seconds:.1f}s on {socket.gethostname()}"
    return Completed(name=SKIPPED if outcome.status == "skipped" else "Completed", message=where)


def _run(
    project: Path, stage: str, ref: str | None, git_remote: str | None, pipeline_run_id: str, force: bool
) -> StageOutcome:
    quiet_telemetry()
    logging.getLogger("dvc").propagate = False  # DVC prints its own lines; Prefect's console would repeat them
    logger = get_run_logger()
    if ref is not None:
        if git_remote is None:
            raise ValueError("a hand-over ref came without the git remote to fetch it from")
        commit = handover.check_out(project, git_remote, ref)
        logger.info(f"{stage}: checked out hand-over {ref} ({commit[:12]})")
    orchestration = load_flow_params(project / "params.yaml").orchestration
    remote = orchestration.publish.remote
    if ref is not None:
        pulled = handover.transfer(project, "pull", handover.upstream_outputs(project, stage), remote, stage)
        logger.info(f"{stage}: {pulled} input files pulled from the DVC remote")
    policy = orchestration.policy(stage)
    env = {FLOW_RUN_ENV: pipeline_run_id, WANDB_RUN_ENV: wandb_run_id(pipeline_run_id)} if pipeline_run_id else {}
    started = time.perf_counter()
    step = stage_task(run_stage, stage, policy)
    try:
        result = step(str(project), stage, force, env)
    except Exception as exc:
        raise as_stage_failure(stage, exc, policy.timeout_seconds) from exc
    status = result.status if isinstance(result, StageOutcome) else "skipped"
    outcome = StageOutcome(name=stage, status=status, seconds=time.perf_counter() - started)
    if ref is not None and git_remote is not None:
        pushed = handover.transfer(project, "push", handover.stage_outputs(project, stage), remote, stage)
        commit = handover.commit_and_push(project, git_remote, ref, f"stage {stage} of flow run {pipeline_run_id}")
        logger.info(f"{stage}: {pushed} files pushed to the DVC remote, dvc.lock handed back on {ref} ({commit[:12]})")
    return outcome
