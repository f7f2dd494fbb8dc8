"""The training pipeline as a Prefect flow: dvc.yaml's stages, in DVC's order, each run through DVC.

A flow run and `dvc repro` therefore skip the same stages and write the same dvc.lock. Every stage is a task run named
after it, in every run: a stage DVC skips ends Completed with the state name "Skipped", the reason and the time its
check took; the stages after a failed one end Cancelled, named "NotRun". One run at a time holds the workspace
(tabml.orchestration.workspace_lock); a stage that fails is retried only when its exit code says a rerun could help
(tabml.orchestration.dvc_stages); a failed run is reported (flow_hooks, notify); a successful scheduled run is pushed
and its dvc.lock committed on a run branch (publish_run). docs/scheduling.md has it all.
Usage: python -m flows.pipeline [--root .] [--force] [-S train.lr=0.003] [--data-path x.csv] [--publish]
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.client.schemas.objects import State
from prefect.context import FlowRunContext
from prefect.states import Failed

from tabml.core.dag import PipelineDefinitionError
from tabml.core.env import quiet_telemetry
from tabml.core.errors import ExitCode
from tabml.core.ops_params import OrchestrationParams, PublishParams
from tabml.core.params import ParamsError
from tabml.orchestration.dvc_stages import StageFailedError, StageOutcome, plan_pipeline, reproduce_stage
from tabml.orchestration.entry import prefect_state_in, project_prefect_home, refuse_secret_parameters
from tabml.orchestration.flow_hooks import missing_effects, notify_failure, publish_summary
from tabml.orchestration.flow_params import FlowParams, load_flow_params
from tabml.orchestration.overrides import apply_param_overrides, override_for
from tabml.orchestration.publish_run import Published, PublishError, publish_run, should_publish
from tabml.orchestration.reaper import guard_flow_process
from tabml.orchestration.stage_pool import on_its_pool  # a stage with orchestration.stages.<stage>.work_pool
from tabml.orchestration.summary import status_line
from tabml.orchestration.task_states import (
    SkippedRecorder,
    as_stage_failure,
    manual_run_settings,
    not_run_state,
    skipped_state,
    stage_task,
)
from tabml.orchestration.workspace_lock import WorkspaceLockTimeout, workspace_lock
from tabml.registry.lineage import FLOW_RUN_ENV  # the register stage records the run that produced a version
from tabml.tracking.runs import RUN_ID_ENV as WANDB_RUN_ENV  # train and evaluate join one W&B run per pipeline run
from tabml.tracking.runs import wandb_run_id

PUBLISH_STEP = "publish"  # the flow's own last step; its retry policy is orchestration.stages.publish


@task(cache_policy=NO_CACHE, persist_result=False)
def run_stage(root: str, name: str, force: bool, env: dict[str, str]) -> StageOutcome | State:
    """One dvc.yaml stage through DVC; the flow renames this task after the stage. Ends "Skipped" if DVC skipped it."""
    outcome = reproduce_stage(root, name, force=force, env=env)
    if outcome.status == "skipped":  # the plan said it would run, DVC found nothing to do (e.g. restored deps)
        return skipped_state(outcome)
    return outcome


@task(cache_policy=NO_CACHE, persist_result=False)
def skip_stage(outcome: StageOutcome) -> State:
    """A stage the plan found up to date: a task run of its own, ending Completed, named "Skipped", with the reason."""
    return skipped_state(outcome)


@task(cache_policy=NO_CACHE, persist_result=False)
def not_run_stage(failed: str) -> State:
    """A stage after the one that failed: a task run of its own, ending Cancelled, named "NotRun", saying why."""
    return not_run_state(failed)


@task(name=PUBLISH_STEP, cache_policy=NO_CACHE, persist_result=False)
def publish_step(root: str, flow_run_id: str, started: datetime, settings: PublishParams) -> Published:
    """`dvc push`, then dvc.lock, params and reports committed on `runs/<time>-<run id>` (and pushed to git)."""
    return publish_run(
        Path(root),
        flow_run_id=flow_run_id,
        started=started,
        remote=settings.remote,
        branch_prefix=settings.branch_prefix,
        git_remote=settings.git_remote,
    )


# Nothing pickled into Prefect's result storage and no stray "unknown" artifact: no result is persisted, and the
# exception Prefect always stores for a failed run is written as JSON (its type and message), not cloudpickle.
@flow(
    name="training-pipeline",
    on_failure=[notify_failure],
    on_crashed=[notify_failure],
    persist_result=False,
    result_serializer="json",
)
def training_pipeline(
    root: str = ".",
    force: bool = False,
    params_file: str = "params.yaml",
    params_overrides: list[str] | None = None,
    data_path: str | None = None,
    publish: bool | None = None,
) -> list[StageOutcome]:
    """Run every dvc.yaml stage in DVC's order; the first failure stops the run and names its stage.

    `params_overrides` (`dvc exp run -S` syntax: `train.lr=0.003`) and `data_path` (the data source,
    `data.path`) are written into params.yaml before anything runs, as `dvc exp run -S` does, so
    dvc.lock, lineage and the run branch record them. `params_file` (relative to `root`) is what the flow
    reads for its own settings; the stages always read what dvc.yaml reads. `publish`:
    None = `orchestration.publish.scheduled` for deployment runs, `.manual` otherwise.
    """
    try:
        return _pipeline(Path(root).resolve(), force, params_file, params_overrides or [], data_path, publish)
    except Exception as exc:  # noqa: BLE001 - every failure ends the run Failed, and the caller gets it raised
        # Returned, not raised: Prefect would pickle a raised exception into result storage, and the server would
        # show it as an unnamed "unknown" artifact. Kept in memory, the hooks and the caller still get it.
        get_run_logger().error(f"{type(exc).__name__}: {exc}")
        return Failed(message=f"{type(exc).__name__}: {exc}", data=exc)  # type: ignore[return-value]


def _pipeline(
    project: Path,
    force: bool,
    params_file: str,
    params_overrides: list[str],
    data_path: str | None,
    publish: bool | None,
) -> list[StageOutcome]:
    quiet_telemetry()
    logging.getLogger("dvc").propagate = False  # DVC prints its own lines; Prefect's console would repeat them
    logger = get_run_logger()
    started = datetime.now(UTC)
    context = FlowRunContext.get()
    run = context.flow_run if context else None
    run_id = str(run.id) if run else ""
    lock_timeout = load_flow_params(project / params_file).orchestration.lock_timeout_seconds
    holder = f"flow run {run.name if run else '?'} ({run_id})"
    with workspace_lock(project, lock_timeout, holder=holder, on_wait=logger.warning):
        overrides = [*params_overrides, *([override_for("data.path", data_path)] if data_path else [])]
        if overrides:
            apply_param_overrides(project, overrides)
            logger.info(f"params.yaml overrides applied: {overrides}")
        params = load_flow_params(project / params_file)  # read under the lock: another run may have changed it
        outcomes = _run_stages(project, params, force, env={FLOW_RUN_ENV: run_id, WANDB_RUN_ENV: wandb_run_id(run_id)})
        published = None
        from_deployment = run is not None and run.deployment_id is not None
        if should_publish(publish, from_deployment, params.orchestration):
            published = _publish(project, params.orchestration, run_id, started, outcomes)
        publish_summary(params, outcomes, published=published)
    return outcomes


def _run_stages(project: Path, params: FlowParams, force: bool, env: dict[str, str]) -> list[StageOutcome]:
    logger = get_run_logger()
    outcomes: list[StageOutcome] = []
    with SkippedRecorder(skip_stage) as skipped:
        # One DVC pass; each stage it finds up to date gets its "Skipped" task run while it checks the next.
        missing = missing_effects(params)  # e.g. a fresh clone's registration: DVC sees register unchanged
        plan = plan_pipeline(project, force, on_up_to_date=skipped.record, missing_effect=missing)
        stages = plan.order
        unknown = params.orchestration.unknown_stages({*stages, PUBLISH_STEP})
        if unknown:
            raise ParamsError(
                f"params.yaml: orchestration.stages names no step of this flow: {unknown}\n"
                f"  what to do: use the stages of dvc.yaml ({', '.join(stages)}) or `{PUBLISH_STEP}`."
            )
        for position, name in enumerate(stages, start=1):
            if name in plan.up_to_date:
                outcome = StageOutcome(name=name, status="skipped", seconds=plan.checked_seconds.get(name, 0.0))
            else:
                skipped.wait()  # one request at a time: concurrent writes make the server's SQLite back off
                policy = params.orchestration.policy(name)
                if why := plan.forced.get(name) or (None if force else missing(name)):
                    logger.info(f"{name}: runs even where DVC finds it unchanged: {why}")
                started = time.perf_counter()
                try:
                    result = on_its_pool(name, params, stage_task(run_stage, name, policy))(
                        str(project), name, force or bool(why), env
                    )
                except Exception as exc:
                    failure = as_stage_failure(name, exc, policy.timeout_seconds)
                    took = time.perf_counter() - started
                    logger.error(f"[{position}/{len(stages)}] {name}: FAILED after {took:.1f}s")
                    for later in stages[position:]:
                        _named(not_run_stage, later)(name, return_state=True)
                    publish_summary(params, outcomes, failure=failure, not_run=stages[position:])
                    raise failure from exc
                if not isinstance(result, StageOutcome):  # DVC skipped it after all: the task ended "Skipped"
                    result = StageOutcome(name=name, status="skipped", seconds=time.perf_counter() - started)
                outcome = result
            outcomes.append(outcome)
            logger.info(status_line(position, len(stages), outcome))
    return outcomes


def _publish(
    project: Path, orchestration: OrchestrationParams, run_id: str, started: datetime, outcomes: list[StageOutcome]
) -> Published:
    logger = get_run_logger()
    step = stage_task(publish_step, PUBLISH_STEP, orchestration.policy(PUBLISH_STEP))
    settings = orchestration.publish
    try:
        published = step(str(project), run_id, started, settings)
    except Exception as exc:
        failure = exc if isinstance(exc, PublishError) else PublishError(f"{type(exc).__name__}: {exc}")
        publish_summary(FlowParams(orchestration), outcomes, failure=StageFailedError(PUBLISH_STEP, str(failure)))
        raise failure from exc
    if published.branch is None:
        where = "nothing to commit: the workspace equals HEAD"
    elif published.new_branch:
        where = f"dvc.lock committed on branch {published.branch}"
    else:
        where = f"unchanged since branch {published.branch}, no new branch"
    logger.info(f"published: {published.pushed_files} files pushed to the DVC remote; {where}")
    return published


def _named(fn: Any, name: str) -> Any:
    return fn.with_options(name=name, task_run_name=name)  # the run graph and task-run list show the stage's name


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m flows.pipeline", description="Run dvc.yaml's stages as a Prefect flow, through DVC."
    )
    parser.add_argument("--root", default=".", help="project root holding dvc.yaml and params.yaml (default: .)")
    parser.add_argument("--force", action="store_true", help="run every stage even if unchanged (dvc repro --force)")
    parser.add_argument(
        "-S", "--set-param", action="append", default=[], metavar="KEY=VALUE", help="as `dvc exp run -S`; repeatable"
    )
    parser.add_argument("--data-path", help="the table to run on (writes data.path in params.yaml)")
    parser.add_argument(
        "--publish",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="dvc push + dvc.lock on a runs/ branch after success (default: orchestration.publish.manual)",
    )
    args = parser.parse_args(argv)
    quiet_telemetry()  # before the flow starts a local Prefect server, which inherits this environment
    home = project_prefect_home(args.root)
    try:
        refuse_secret_parameters(args.set_param, args.data_path)  # before they become Prefect parameters
    except ParamsError as exc:
        print(f"pipeline FAILED: {exc}", file=sys.stderr, flush=True)
        return ExitCode.BAD_INPUT
    guard_flow_process()  # a kill -9 of this process takes its temporary server and its stage with it
    try:
        with prefect_state_in(home), manual_run_settings():
            training_pipeline(
                root=args.root,
                force=args.force,
                params_overrides=args.set_param,
                data_path=args.data_path,
                publish=args.publish,
            )
    except (
        StageFailedError,
        PipelineDefinitionError,
        ParamsError,
        FileNotFoundError,
        WorkspaceLockTimeout,
        PublishError,
    ) as exc:
        print(f"pipeline FAILED: {exc}", file=sys.stderr, flush=True)
        return 1
    except KeyboardInterrupt as exc:
        print(f"pipeline interrupted: {exc}", file=sys.stderr, flush=True)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
