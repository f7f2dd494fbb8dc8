"""What the pipeline flow does around its stages: the failure notice when a run fails or crashes, and the run's
artifacts (`pipeline-summary`, links to the pages `make server` serves, the validation and metrics tables). Prefect
calls the hook; the flow calls `publish_summary`.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from prefect import Flow
from prefect.artifacts import create_link_artifact, create_markdown_artifact, create_table_artifact
from prefect.client.schemas.objects import FlowRun, State

from tabml.core.params import ParamsError
from tabml.evaluation.outputs import last_metrics
from tabml.orchestration.dvc_stages import StageFailedError, StageOutcome
from tabml.orchestration.flow_params import FlowParams, load_flow_params
from tabml.orchestration.notify import FailureNotice, deliver, explain, render
from tabml.orchestration.publish_run import Published
from tabml.orchestration.reports_server import report_pages, reports_base_url
from tabml.orchestration.summary import metrics_table, summary_markdown, validation_table
from tabml.registry.record import missing_here, read_record
from tabml.validation.report import read_report

SUMMARY_KEY = "pipeline-summary"
DATA_DOCS_KEY = "data-docs"  # and "compare-page", "dvc-plots" when those pages exist (reports_server.report_pages)
VALIDATION_KEY = "validation-checks"
METRICS_KEY = "evaluation-metrics"


def notify_failure(flow: Flow[..., Any], flow_run: FlowRun, state: State) -> None:
    """on_failure / on_crashed hook: which stage, why, what to do and the run's link, to the log and the webhook."""
    from prefect.logging.loggers import flow_run_logger
    from prefect.utilities.urls import url_for

    logger = flow_run_logger(flow_run, flow)
    failure = _failure_of(state)
    stage, why, todo = explain(failure)
    root = Path(str(flow_run.parameters.get("root", "."))).resolve()
    try:
        params_file = root / str(flow_run.parameters.get("params_file", "params.yaml"))
        settings = load_flow_params(params_file).orchestration.notify
    except ParamsError:
        settings = None
    notice = FailureNotice(
        flow=flow.name,
        run_name=flow_run.name,
        run_id=str(flow_run.id),
        state=state.name or state.type.value.title(),
        at=datetime.now(UTC).isoformat(timespec="seconds"),
        stage=stage,
        why=why,
        todo=todo,
        run_url=url_for("flow-run", obj_id=flow_run.id),
        deployment=_deployment_name(flow, flow_run),
    )
    if settings is None:  # params.yaml itself is what failed: it names no log file or webhook
        logger.error(f"{render(notice)}\n  (params.yaml is unreadable, so this log is the only notice)")
        return
    delivered = deliver(
        notice, root / settings.log_file, settings.webhook_url_env, settings.webhook_timeout_seconds, logger.warning
    )
    logger.error(f"{render(notice)}\n  (notice sent to: {', '.join(delivered) or 'nowhere'})")


def _failure_of(state: State) -> BaseException | None:
    try:
        result = state.result(raise_on_failure=False)
    except Exception:  # noqa: BLE001 - a crashed run may have no readable result; the notice says so
        return None
    return result if isinstance(result, BaseException) else None


def _deployment_name(flow: Flow[..., Any], flow_run: FlowRun) -> str | None:
    if flow_run.deployment_id is None:
        return None
    try:
        from prefect.client.orchestration import get_client

        with get_client(sync_client=True) as client:
            return f"{flow.name}/{client.read_deployment(flow_run.deployment_id).name}"
    except Exception:  # noqa: BLE001 - the notice goes out without the name rather than not at all
        return str(flow_run.deployment_id)


def publish_summary(
    params: FlowParams,
    outcomes: list[StageOutcome],
    failure: StageFailedError | None = None,
    not_run: list[str] | None = None,
    published: Published | None = None,
) -> None:
    """The run's artifacts: the `pipeline-summary` Markdown, and tables and links for what this run produced."""
    # A report is shown only if its stage (same name as its params section) ran, was skipped as unchanged (the
    # summary says so), or is the one that failed: a stage that did not run may have left a stale report.
    current = {o.name for o in outcomes} | ({failure.stage} if failure else set())
    ran = {o.name for o in outcomes if o.status == "ran"} | ({failure.stage} if failure else set())

    def report(stage: str, path: Path | None, read: Callable[[Path], dict[str, Any] | None]) -> dict[str, Any] | None:
        return read(path) if stage in current and path is not None else None

    validation = report("validate", params.validation_report, read_report)
    docs = validation.get("data_docs") if validation else None
    served_at = reports_base_url(params.orchestration.reports_server, os.environ)
    pages = report_pages(params.root, docs if isinstance(docs, str) else None, served_at)
    metrics = report("evaluate", params.metrics, last_metrics)
    markdown = summary_markdown(
        outcomes,
        failed_stage=failure.stage if failure else None,
        error=str(failure) if failure else None,
        not_run=not_run or [],
        validation=validation,
        metrics=metrics,
        registration=report("register", params.registration_record, read_record) if "register" in ran else None,
        published=None if published is None else vars(published),
        pages=pages,
        served_at=served_at,
    )
    create_markdown_artifact(markdown=markdown, key=SUMMARY_KEY, description="What this run did, stage by stage")
    # The other artifacts are new versions of their keys, so only the run that made their content publishes them:
    # a table when its stage ran in this run, the links when any stage did. A run with nothing to do changed no
    # report and no page; its summary above still shows every section and every link (and the requests this
    # saves are most of what such a run costs beyond `dvc repro`: bench/orchestration_overhead.py).
    for page in pages if ran else []:
        if page.url:
            create_link_artifact(link=page.url, link_text=page.title, key=page.key, description=page.path)
    if validation is not None and "validate" in ran and (rows := validation_table(validation)):
        create_table_artifact(table=rows, key=VALIDATION_KEY, description="the checks of the last validation")
    if metrics is not None and "evaluate" in ran and (rows := metrics_table(metrics)):
        create_table_artifact(table=rows, key=METRICS_KEY, description="test-split metrics of the model")


def missing_effects(params: FlowParams) -> Callable[[str], str | None]:
    """What an unchanged stage left outside DVC that this workspace lacks: for `register`, the registration its
    record names (a fresh clone has the record from git, not the registry); the flow then forces the stage."""

    def missing(stage: str) -> str | None:
        record = params.registration_record
        return missing_here(record, params.root) if stage == "register" and record is not None else None

    return missing
