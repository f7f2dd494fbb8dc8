"""The training pipeline as a Prefect flow: dvc.yaml's stages, in DVC's order, each run through DVC.

A flow run and `dvc repro` therefore skip the same stages and write the same dvc.lock.
Usage: python -m flows.pipeline [--root .] [--force]
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE
from prefect.runtime import flow_run
from pydantic import ValidationError

from tabml.dvc_stages import PipelineDefinitionError, StageFailedError, StageOutcome, reproduce_stage, stage_order
from tabml.env import quiet_telemetry
from tabml.lineage import FLOW_RUN_ENV  # the register stage records the run that produced a version
from tabml.params import OrchestrationParams, ParamsError
from tabml.run_summary import read_report, status_line, summary_markdown

SUMMARY_KEY = "pipeline-summary"


@dataclass(frozen=True)
class FlowParams:
    """What the flow itself reads from params.yaml: retry policies and where the stages leave their reports."""

    orchestration: OrchestrationParams
    validation_report: Path | None = None
    metrics: Path | None = None
    registration_record: Path | None = None


def load_flow_params(path: Path) -> FlowParams:
    """Read `orchestration` and the report paths; other sections are the stages' to validate when they run."""
    if not path.is_file():
        raise ParamsError(f"{path}: file not found. Pass the project root with --root.")
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ParamsError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise ParamsError(f"{path}: expected a mapping of sections, got {type(raw).__name__}.")
    try:
        orchestration = OrchestrationParams.model_validate(raw.get("orchestration") or {})
    except ValidationError as exc:
        keys = "; ".join(f"orchestration.{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise ParamsError(f"{path}: invalid parameters: {keys}") from None

    def report_path(section: str, key: str) -> Path | None:
        value = (raw.get(section) or {}).get(key)
        return path.parent / value if value else None

    return FlowParams(
        orchestration=orchestration,
        validation_report=report_path("validate", "report"),
        metrics=report_path("evaluate", "metrics"),
        registration_record=report_path("register", "record"),
    )


@task(cache_policy=NO_CACHE, persist_result=False)
def run_stage(root: str, name: str, force: bool, env: dict[str, str]) -> StageOutcome:
    """One dvc.yaml stage through DVC; the flow renames this task after the stage."""
    return reproduce_stage(root, name, force=force, env=env)


@flow(name="training-pipeline")
def training_pipeline(root: str = ".", force: bool = False, params_file: str = "params.yaml") -> list[StageOutcome]:
    """Run every dvc.yaml stage in DVC's order; the first failure stops the run and names its stage.

    `params_file` (relative to `root`) is what the flow reads for retry policies and report paths;
    the stages themselves always read what dvc.yaml reads.
    """
    quiet_telemetry()
    logging.getLogger("dvc").propagate = False  # DVC prints its own lines; Prefect's console would repeat them
    logger = get_run_logger()
    project = Path(root).resolve()
    params = load_flow_params(project / params_file)
    stages = stage_order(project)
    # Passed to each stage command's environment, not set on this process: nothing leaks past the run.
    env = {FLOW_RUN_ENV: flow_run.id or ""}

    outcomes: list[StageOutcome] = []
    for position, name in enumerate(stages, start=1):
        policy = params.orchestration.policy(name)
        stage_task = run_stage.with_options(
            name=name,
            retries=policy.retries,
            retry_delay_seconds=policy.retry_delay_seconds,
            timeout_seconds=policy.timeout_seconds,
        )
        started = time.perf_counter()
        try:
            outcome = stage_task(str(project), name, force, env)
        except Exception as exc:
            failure = _as_stage_failure(name, exc, policy.timeout_seconds)
            logger.error(f"[{position}/{len(stages)}] {name}: FAILED after {time.perf_counter() - started:.1f}s")
            _publish_summary(params, outcomes, failure=failure, not_run=stages[position:])
            raise failure from exc
        outcomes.append(outcome)
        logger.info(status_line(position, len(stages), outcome))

    _publish_summary(params, outcomes)
    return outcomes


def _as_stage_failure(name: str, exc: Exception, timeout_seconds: float | None) -> StageFailedError:
    # A Prefect timeout arrives as TimeoutError, not as DVC's error: name the stage and the setting either way.
    if isinstance(exc, StageFailedError):
        return exc
    if isinstance(exc, TimeoutError):
        return StageFailedError(
            name,
            f"timed out after {timeout_seconds}s and its command was stopped; if it needs longer, raise "
            f"orchestration.stages.{name}.timeout_seconds in params.yaml",
        )
    return StageFailedError(name, f"{type(exc).__name__}: {exc}")


def _publish_summary(
    params: FlowParams,
    outcomes: list[StageOutcome],
    failure: StageFailedError | None = None,
    not_run: list[str] | None = None,
) -> None:
    # A report is shown only if its stage (same name as its params section) ran, was skipped as
    # unchanged, or is the one that failed: a stage that did not run may have left a stale report.
    current = {o.name for o in outcomes} | ({failure.stage} if failure else set())

    def report(stage: str, path: Path | None) -> dict[str, Any] | None:
        return read_report(path) if stage in current else None

    markdown = summary_markdown(
        outcomes,
        failed_stage=failure.stage if failure else None,
        error=str(failure) if failure else None,
        not_run=not_run or [],
        validation=report("validate", params.validation_report),
        metrics=report("evaluate", params.metrics),
        registration=report("register", params.registration_record),
    )
    create_markdown_artifact(markdown=markdown, key=SUMMARY_KEY, description="Stages run or skipped, and the reports")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m flows.pipeline", description="Run dvc.yaml's stages as a Prefect flow, through DVC."
    )
    parser.add_argument("--root", default=".", help="project root holding dvc.yaml and params.yaml (default: .)")
    parser.add_argument("--force", action="store_true", help="run every stage even if unchanged (dvc repro --force)")
    args = parser.parse_args(argv)
    quiet_telemetry()  # before the flow starts a local Prefect server, which inherits this environment
    try:
        training_pipeline(root=args.root, force=args.force)
    except (StageFailedError, PipelineDefinitionError, ParamsError, FileNotFoundError) as exc:
        print(f"pipeline FAILED: {exc}", file=sys.stderr, flush=True)
        return 1
    except KeyboardInterrupt as exc:
        print(f"pipeline interrupted: {exc}", file=sys.stderr, flush=True)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
