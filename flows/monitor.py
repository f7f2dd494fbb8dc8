"""Watch what the served model sees and retrain when the world moves: the monitoring flow and its deployment.

    python -m flows.monitor [--root .]          # one run now (PREFECT_API_URL: report to that server)
    python -m flows.monitor deploy [--root .]   # the cron deployment `monitor.deployment_name` beside the training one

One run reads the last `monitor.window_hours` of the prediction log (tabml.predict.prediction_log), measures feature
drift against the production model's reference profile, prediction drift and, once `monitor.labels_path` exists,
live performance with a bootstrap interval (tabml.monitor.assess); writes `monitor.report` (HTML) and a Prefect
artifact; and when a threshold is crossed outside the cooldown, writes the window as a new batch under
`monitor.batch_dir` and starts the training deployment (`monitor.deployment`) on it with `run_deployment`.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import pandas as pd
from prefect import flow, task

from tabml.core.env import quiet_telemetry
from tabml.core.errors import StageError
from tabml.core.params import Params, ParamsError, load_params
from tabml.monitor.assess import feature_drift, joined_labels, live_performance, logged_scores, prediction_drift
from tabml.monitor.report import markdown, summary, write_html
from tabml.monitor.trigger import crossed, decide, read_state, write_state
from tabml.predict.batch import load_model_package
from tabml.predict.prediction_log import TIME, read_window
from tabml.registry.gate import primary_metric_for
from tabml.validation.report import load_reference, reference_path

ENTRYPOINT = "flows/monitor.py:monitor"
Trigger = Callable[[str, dict[str, Any]], str]  # (deployment, parameters) -> flow run id


def start_training(deployment: str, parameters: dict[str, Any]) -> str:
    """A flow run of the training deployment, now; its id (nothing waits for it)."""
    from prefect.deployments import run_deployment
    from prefect.exceptions import ObjectNotFound

    try:
        run = run_deployment(name=deployment, parameters=parameters, timeout=0, tags=["monitor"])
    except ObjectNotFound:
        raise StageError(
            f"no deployment {deployment!r} on the Prefect server", "monitor.deployment", "`make deploy` first"
        ) from None
    return str(cast(Any, run).id)


def live(params: Params, root: Path, window: pd.DataFrame, package: Any, scorer: Any) -> Any:
    """Live performance when the labels file has arrived (and the model has an id column to join it by)."""
    m, state = params.monitor, scorer.state
    if m.labels_path is None or not (root / m.labels_path).exists() or not state.id_column:
        return None, None
    from tabml.data.tables import read_table

    joined = joined_labels(
        window, read_table(root / m.labels_path), state.id_column, state.target, params.serve.hash_ids
    )
    if joined.empty:
        return None, joined
    metric = primary_metric_for(state.task, params.register_)
    result = live_performance(
        logged_scores(joined, state),
        scorer.target(joined),
        state,
        metric,
        scorer.threshold,
        package.entry.metrics.get(metric),
        samples=m.bootstrap_samples,
        confidence=m.confidence,
        seed=0,
    )
    return result, joined


def write_batch(params: Params, root: Path, window: pd.DataFrame, labelled: pd.DataFrame | None, now: datetime) -> Path:
    """The window's rows (with the target when labels were joined) as a CSV the training flow can take."""
    columns = [c for c in window.columns if not c.startswith("_")]
    rows = labelled if labelled is not None and not labelled.empty else window
    keep = [c for c in [*columns, params.data.target] if c in rows.columns]
    path = root / params.monitor.batch_dir / f"{params.data.name}-{now.strftime('%Y%m%dT%H%M%SZ')}.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    rows[keep].to_csv(path, index=False)
    return path


def run_monitor(root: Path, params: Params, now: datetime, trigger: Trigger) -> dict[str, Any]:
    """One monitoring pass over the prediction log; the summary of what it found and did."""
    m, name = params.monitor, params.data.name
    package, scorer = load_model_package(root / params.register_.registry_dir, name, None, None)
    log = read_window(root / params.serve.log_dir, name)
    window = log[log[TIME] >= pd.Timestamp(now - timedelta(hours=m.window_hours))] if len(log) else log
    drift_p = params.validate_.drift.model_copy(
        update={"threshold": m.drift_threshold, "action": "warn", "min_rows": m.min_rows}
    )
    features, prediction, performance, labelled = [], None, None, None
    if len(window) >= m.min_rows:
        reference = load_reference(reference_path(root / params.validate_.reference_dir, name))
        features = feature_drift(window, reference.profiles(), drift_p, reference.derived_from.rows)
        prediction = prediction_drift(log, window, scorer.state, package.entry.version, drift_p)
        performance, labelled = live(params, root, window, package, scorer)
    state_file = root / m.state_file
    state = read_state(state_file)
    decision = decide(crossed(features, prediction, performance, m), state, now, m)
    triggered = None
    if decision.retrain:
        batch = write_batch(params, root, window, labelled, now)
        triggered = trigger(m.deployment, {"data_path": str(batch)})
        at = now.isoformat()
        write_state(
            state_file,
            {"last_triggered_at": at, "flow_run_id": triggered, "batch": str(batch), "reasons": decision.reasons},
        )
    found = summary(name, package.entry.version, len(window), features, prediction, performance, decision, triggered)
    write_html(found, root / m.report)
    return found


@task
def publish_artifact(found: dict[str, Any]) -> None:
    from prefect.artifacts import create_markdown_artifact

    create_markdown_artifact(key=f"monitor-{found['model']}", markdown=markdown(found), description="tabml monitor")


@flow(name="model-monitor", log_prints=True)
def monitor(root: str = ".", params_file: str = "params.yaml") -> dict[str, Any]:
    """Drift and live performance of the served model; retrains through the training deployment when needed."""
    project = Path(root).resolve()
    found = run_monitor(project, load_params(project / params_file), datetime.now(UTC), start_training)
    publish_artifact(found)
    verdict = f"triggered flow run {found['triggered_flow_run']}" if found["retrain"] else found["held_back"] or "ok"
    print(f"[monitor] {found['model']} v{found['version']}, {found['rows']} rows: {verdict}")
    return found


def deploy_monitor(root: Path, params: Params) -> str:
    """Create or update the monitor's cron deployment on the training deployment's work pool; its id."""
    from prefect.runner.storage import LocalStorage
    from prefect.schedules import Cron

    from flows.deploy import ensure_work_pool, require_server

    require_server()
    d, m = params.orchestration.deployment, params.monitor
    ensure_work_pool(d.work_pool, d.work_pool_type)
    monitored = flow.from_source(source=LocalStorage(str(root)), entrypoint=ENTRYPOINT)
    deployment_id = monitored.deploy(  # type: ignore[union-attr]
        name=m.deployment_name,
        work_pool_name=d.work_pool,
        schedule=Cron(m.cron, timezone=d.timezone) if m.cron else None,
        parameters={"root": str(root)},
        description=f"Drift and live performance of the model served from {root}; retrains when they cross.",
        tags=["tabml", "monitor"],
        build=False,
        push=False,
        print_next_steps=False,
        ignore_warnings=True,
    )
    return str(deployment_id)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m flows.monitor", description=__doc__.split("\n")[0])
    parser.add_argument("command", nargs="?", choices=["run", "deploy"], default="run")
    parser.add_argument("--root", type=Path, default=Path("."))
    args = parser.parse_args(argv)
    quiet_telemetry()
    root = args.root.resolve()
    try:
        if args.command == "deploy":
            params = load_params(root / "params.yaml")
            deployment_id = deploy_monitor(root, params)
            m = params.monitor
            print(f"deployment model-monitor/{m.deployment_name} ({deployment_id}), cron {m.cron}")
            return 0
        monitor(root=str(root))
    except (StageError, ParamsError) as exc:
        print(f"[monitor] FAILED: {exc}", file=sys.stderr, flush=True)
        return int(getattr(exc, "exit_code", 65))
    except Exception as exc:  # noqa: BLE001 - flows.deploy.DeployError and Prefect's own: one line
        print(f"[monitor] FAILED: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
