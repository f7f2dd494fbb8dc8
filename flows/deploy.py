"""Schedule the pipeline: a local Prefect server, a work pool and worker, the deployment, and triggered runs.

Everything comes from `orchestration.deployment` in params.yaml (docs/scheduling.md):

    python -m flows.deploy server             # Prefect API + UI on http://127.0.0.1:4200, SQLite in $PREFECT_HOME,
                                              # and reports/ + dvc_plots/ read-only on orchestration.reports_server
    python -m flows.deploy worker [--pool P]  # a worker polling the deployment's work pool (or a stage pool P)
    python -m flows.deploy deploy             # create the work pools if needed, create/update the deployments
    python -m flows.deploy trigger [--wait]   # one run now, optionally with -S overrides or --data-path

`deploy`, `worker` and `trigger` talk to the server named by PREFECT_API_URL (the Makefile sets it).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from contextlib import suppress
from pathlib import Path
from typing import Any, cast

from tabml.core.env import quiet_telemetry
from tabml.core.ops_params import DeploymentParams, OrchestrationParams
from tabml.core.params import ParamsError
from tabml.orchestration.code_source import CodeSourceError, git_source, git_storage
from tabml.orchestration.entry import project_prefect_home
from tabml.orchestration.local_server import LocalServerError, load_reports_params, serve

FLOW_NAME = "training-pipeline"
ENTRYPOINT = "flows/pipeline.py:training_pipeline"  # loaded from the project the deployment points at
DEFAULT_PORT = 4200


class DeployError(RuntimeError):
    """Deploying or triggering failed in a way the user can fix: says what and how."""


def deployment_parameters(root: Path, d: DeploymentParams) -> dict[str, Any]:
    """The flow parameters every run of the deployment gets, unless the trigger passes its own; pure."""
    return {
        "root": "." if d.source == "git" else str(root),  # git: the worker's clone, where the pull steps leave it
        "force": d.force,
        "params_overrides": list(d.params_overrides),
        "data_path": d.data_path,
        "publish": None,  # None: orchestration.publish.scheduled decides, read when the run starts
    }


def trigger_parameters(force: bool, overrides: list[str], data_path: str | None) -> dict[str, Any]:
    """Only what the trigger sets: the rest keeps the deployment's defaults; refuses secrets."""
    from tabml.orchestration.entry import refuse_secret_parameters

    refuse_secret_parameters(overrides, data_path)  # a flow run's parameters are stored and shown by Prefect
    parameters: dict[str, Any] = {"force": True} if force else {}
    if overrides:
        parameters["params_overrides"] = overrides
    if data_path:
        parameters["data_path"] = data_path
    return parameters


def require_server() -> str:
    """The API URL of the server to use: a deployment on a throwaway in-process server would vanish with it."""
    from prefect.settings import get_current_settings

    url = get_current_settings().api.url
    if not url:
        raise DeployError(
            "PREFECT_API_URL is not set, so there is no server to deploy to or to trigger on.\n"
            f"  what to do: start one (`make server`), then `export PREFECT_API_URL=http://127.0.0.1:{DEFAULT_PORT}/api`"
            " (the Makefile's deploy, worker and trigger targets set it)."
        )
    return url


def ensure_work_pool(name: str, pool_type: str) -> bool:
    """Create the work pool with its type's default job template unless it exists; True when created."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound
    from prefect.workers.base import BaseWorker

    with get_client(sync_client=True) as client:
        try:
            existing = client.read_work_pool(name)
        except ObjectNotFound:
            existing = None
        if existing is not None:
            if existing.type != pool_type:
                raise DeployError(
                    f"work pool '{name}' exists with type '{existing.type}', params.yaml asks for '{pool_type}'.\n"
                    "  what to do: set orchestration.deployment.work_pool to a new name, or delete the pool "
                    f"(`prefect work-pool delete {name}`)."
                )
            return False
        worker = BaseWorker.get_worker_class_from_type(pool_type)
        if worker is None:
            raise DeployError(
                f"no worker of type '{pool_type}' is installed here (docker: prefect-docker, kubernetes: "
                "prefect-kubernetes).\n  what to do: install it, or create the pool yourself: "
                f"`prefect work-pool create {name} --type {pool_type}`."
            )
        try:
            client.create_work_pool(
                WorkPoolCreate(name=name, type=pool_type, base_job_template=worker.get_default_base_job_template())
            )
        except ObjectAlreadyExists:
            return False  # created meanwhile by a worker started with --type
    return True


def check_overrides(root: Path, d: DeploymentParams) -> None:
    """Apply the deployment's overrides to a copy of params.yaml now, so a bad one fails here, not at 3 am."""
    from tabml.orchestration.overrides import apply_param_overrides, override_for

    overrides = [*d.params_overrides, *([override_for("data.path", d.data_path)] if d.data_path else [])]
    if overrides:
        with tempfile.TemporaryDirectory(prefix="tabml-deploy-") as tmp:
            shutil.copy(root / "params.yaml", Path(tmp) / "params.yaml")
            apply_param_overrides(tmp, overrides)


def deploy(root: Path, d: DeploymentParams) -> str:
    """Create or update the deployment of the pipeline flow in `root`; returns its id."""
    from prefect import flow
    from prefect.client.schemas.objects import ConcurrencyLimitConfig, ConcurrencyLimitStrategy
    from prefect.runner.storage import LocalStorage
    from prefect.schedules import Cron

    check_overrides(root, d)
    where = str(root)
    if d.source == "git":  # the worker clones the git remote at this commit and `dvc pull`s (code_source)
        url, commit = git_source(root, d.git_remote)
        storage, where = git_storage(url, commit), f"{url} at {commit[:12]}"
    else:  # the worker runs the flow in this folder (a `set_working_directory` pull step), on its code
        storage = LocalStorage(str(root))
    ensure_work_pool(d.work_pool, d.work_pool_type)
    pipeline = cast(Any, flow.from_source(source=storage, entrypoint=ENTRYPOINT))  # sync here
    deployment_id = pipeline.deploy(
        name=d.name,
        work_pool_name=d.work_pool,
        schedule=Cron(d.cron, timezone=d.timezone) if d.cron else None,
        concurrency_limit=ConcurrencyLimitConfig(
            limit=d.concurrency_limit, collision_strategy=ConcurrencyLimitStrategy.ENQUEUE
        ),
        parameters=deployment_parameters(root, d),
        description=f"The tabml training pipeline in {where}, stage by stage through DVC.",
        tags=["tabml"],
        build=False,
        push=False,
        print_next_steps=False,
        ignore_warnings=True,  # "use .serve for local development": a worker is the point here
    )
    return str(deployment_id)


def deploy_stage_flows(root: Path, orchestration: OrchestrationParams) -> dict[str, str]:
    """The stage flow (flows/stage.py) as `tabml-stage/<pool>` on every pool a stage is sent to: {pool: id}."""
    from prefect import flow
    from prefect.runner.storage import LocalStorage

    from tabml.orchestration.stage_pool import STAGE_ENTRYPOINT, stage_flow_storage  # imports Prefect

    pools = orchestration.stage_work_pools()
    if not pools:
        return {}
    d = orchestration.deployment
    if d.source == "git":  # a clone at the deployed commit; the stage flow fetches the run's hand-over ref itself
        if orchestration.publish.git_remote is None:
            raise DeployError(
                f"orchestration.stages sends stages to {pools}, and a git-sourced run hands them over through "
                "orchestration.publish.git_remote, which is null.\n  what to do: set it (origin) and deploy again."
            )
        storage: Any = stage_flow_storage(*git_source(root, d.git_remote))
    else:  # the stage flow runs in the pipeline's own checkout (a path on a disk both workers share)
        storage = LocalStorage(str(root))
    ids = {}
    for pool in pools:
        ensure_stage_pool(pool, orchestration.stage_pools.work_pool_type)
        stage_flow = cast(Any, flow.from_source(source=storage, entrypoint=STAGE_ENTRYPOINT))
        ids[pool] = str(
            stage_flow.deploy(
                name=pool,
                work_pool_name=pool,
                parameters={"root": "." if d.source == "git" else str(root)},
                description=f"One tabml stage, sent here by the pipeline flow (orchestration.stages: {pool}).",
                tags=["tabml", "tabml-stage"],
                build=False,
                push=False,
                print_next_steps=False,
                ignore_warnings=True,
            )
        )
    return ids


def ensure_stage_pool(name: str, pool_type: str) -> None:
    """A stage pool that exists is used as it is (a GPU pool may be of another type); else it is created."""
    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectNotFound

    with get_client(sync_client=True) as client, suppress(ObjectNotFound):
        client.read_work_pool(name)
        return
    ensure_work_pool(name, pool_type)


def trigger(d: DeploymentParams, parameters: dict[str, Any], wait: bool, timeout: float | None) -> Any:
    """Create a flow run of the deployment now; with `wait`, return once it has finished."""
    from prefect.deployments import run_deployment
    from prefect.exceptions import ObjectNotFound

    try:
        return run_deployment(
            name=f"{FLOW_NAME}/{d.name}",
            parameters=parameters,
            timeout=timeout if wait else 0,
            poll_interval=2,
            tags=["triggered"],
        )
    except ObjectNotFound:
        raise DeployError(
            f"no deployment '{FLOW_NAME}/{d.name}' on this server.\n  what to do: `make deploy` first."
        ) from None


def load_orchestration(root: Path) -> OrchestrationParams:
    from tabml.orchestration.flow_params import load_flow_params

    return load_flow_params(root / "params.yaml").orchestration


def load_deployment_params(root: Path) -> DeploymentParams:
    return load_orchestration(root).deployment


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m flows.deploy", description=__doc__.split("\n")[0])
    parser.add_argument("--root", type=Path, default=Path("."), help="project root (default: .)")
    commands = parser.add_subparsers(dest="command", required=True)
    server = commands.add_parser("server", help="start a local Prefect server (SQLite) on 127.0.0.1")
    server.add_argument("--port", type=int, default=DEFAULT_PORT)
    server.add_argument("--reports-port", type=int, help="the reports' port (default: orchestration.reports_server)")
    worker = commands.add_parser("worker", help="start a worker for the deployment's work pool")
    worker.add_argument("--pool", help="a stage pool of orchestration.stages.*.work_pool instead")
    commands.add_parser("deploy", help="create the work pool if needed, create or update the deployment")
    run = commands.add_parser("trigger", help="start a run of the deployment now")
    run.add_argument("-S", "--set-param", action="append", default=[], metavar="KEY=VALUE", help="as dvc exp run -S")
    run.add_argument("--data-path", help="the table to run on (data.path)")
    run.add_argument("--force", action="store_true", help="rerun every stage")
    run.add_argument("--wait", action="store_true", help="wait for the run to finish; exit 1 if it failed")
    run.add_argument("--timeout", type=float, default=None, help="with --wait: give up after this many seconds")
    args = parser.parse_args(argv)
    quiet_telemetry()
    root = args.root.resolve()
    project_prefect_home(root)  # Prefect (imported below, lazily) keeps its state in .prefect/ unless set
    try:
        if args.command == "server":  # its state lives in $PREFECT_HOME (SQLite)
            return serve(root, args.port, load_reports_params(root, args.reports_port))
        orchestration = load_orchestration(root)
        d = orchestration.deployment
        api = require_server()
        if args.command == "worker":
            pool, kind = d.work_pool, d.work_pool_type
            if args.pool and args.pool != d.work_pool:
                pool, kind = args.pool, orchestration.stage_pools.work_pool_type
            worker_cmd = ["-m", "prefect", "worker", "start", "--pool", pool, "--type", kind]
            os.execv(sys.executable, [sys.executable, *worker_cmd])
        if args.command == "deploy":
            deployment_id = deploy(root, d)
            schedule = f"cron '{d.cron}' ({d.timezone})" if d.cron else "no schedule (trigger only)"
            print(f"deployment {FLOW_NAME}/{d.name} ({deployment_id}) on pool '{d.work_pool}', {schedule}")
            runs_on = root if d.source == "local" else f"a clone of git remote '{d.git_remote}' in the worker's folder"
            print(f"  runs on {runs_on}; UI: {api.removesuffix('/api')}/deployments; start a worker: make worker")
            from tabml.orchestration.stage_pool import routes

            plan = routes(orchestration, list(orchestration.stages))
            for pool, stage_id in deploy_stage_flows(root, orchestration).items():
                stages = [stage for stage, its_pool in plan.items() if its_pool == pool]
                print(f"deployment tabml-stage/{pool} ({stage_id}) on pool '{pool}' runs {', '.join(stages)}")
                print(f"  start its worker where that pool's machines are: python -m flows.deploy worker --pool {pool}")
            return 0
        flow_run = trigger(d, trigger_parameters(args.force, args.set_param, args.data_path), args.wait, args.timeout)
        state = flow_run.state
        print(f"flow run '{flow_run.name}' ({flow_run.id}): {state.name if state else 'Scheduled'}")
        print(f"  UI: {api.removesuffix('/api')}/runs/flow-run/{flow_run.id}")
        return 1 if args.wait and (state is None or not state.is_completed()) else 0
    except (DeployError, LocalServerError, ParamsError, CodeSourceError) as exc:
        print(f"FAILED: {exc}", file=sys.stderr, flush=True)
        return 1


if __name__ == "__main__":
    sys.exit(main())
