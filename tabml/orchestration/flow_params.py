"""What the Prefect flow itself reads from params.yaml: orchestration settings and where stages leave reports.

Read leniently: the other sections are the stages' to validate when they run, so a flow can start (and report
a stage's clear error) even when a stage section is wrong.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml
from pydantic import ValidationError

from tabml.core.ops_params import OrchestrationParams
from tabml.core.params import ParamsError

# libyaml's safe loader when PyYAML has it: the same YAML, ten times faster than the Python one, which a run with
# nothing to do notices (bench/orchestration_overhead.py)
_SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@dataclass(frozen=True)
class FlowParams:
    """What the flow itself reads from params.yaml: orchestration settings and where the stages leave reports."""

    orchestration: OrchestrationParams
    validation_report: Path | None = None
    metrics: Path | None = None
    registration_record: Path | None = None
    root: Path = Path(".")  # the folder of params.yaml, which the report paths inside reports are relative to


def load_flow_params(path: Path) -> FlowParams:
    """Read `orchestration` and the report paths; other sections are the stages' to validate when they run."""
    if not path.is_file():
        raise ParamsError(f"{path}: file not found. Pass the project root with --root.")
    try:
        raw = yaml.load(path.read_text(), Loader=_SAFE_LOADER) or {}
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
        root=path.parent,
    )
