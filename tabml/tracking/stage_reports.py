"""What evaluate and register add to the pipeline's W&B run: summary scalars, charts, the registration.

Never raises: a stage's reports are on disk whatever W&B does.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from tabml.core.ops_params import TrackingParams
from tabml.tracking.runs import experiment_group, finish_run, init_run, resume_run_id, tracking_mode

Rows = Sequence[Mapping[str, Any]]


def evaluation_summary(metrics: Mapping[str, Any], validation: Mapping[str, Any] | None) -> dict[str, Any]:
    """Scalars for the run summary: `test/<metric>`, the decision threshold and the validation verdict."""
    summary: dict[str, Any] = {f"test/{k}": v for k, v in (metrics.get("test") or {}).items()}
    summary |= {f"evaluate/{k}": metrics[k] for k in ("threshold", "n_test") if metrics.get(k) is not None}
    if validation:
        summary |= {
            "validation/success": validation.get("success"),
            "validation/rows": validation.get("rows"),
            "validation/errors": _count(validation.get("errors")),
            "validation/warnings": _count(validation.get("warnings")),
        }
        if validation.get("data_docs"):
            summary["validation/data_docs"] = str(validation["data_docs"])
    return {k: v for k, v in summary.items() if v is not None}


def registration_summary(record: Mapping[str, Any]) -> dict[str, Any]:
    """Scalars for the run summary from reports/registration.json: the gate and the version it produced."""
    keys = ("passed", "version", "stage", "primary_metric", "value", "registry_path", "previous_production")
    summary = {f"register/{k}": record.get(k) for k in keys if record.get(k) is not None}
    if record.get("reasons"):
        summary["register/reasons"] = "; ".join(map(str, record["reasons"]))
    return summary


@dataclass(frozen=True)
class Chart:
    """One chart for the run: `rows` drawn as a line (stroked by `class` when rows have it), a scatter, or a
    confusion matrix of the `x` (actual) and `y` (predicted) columns."""

    key: str
    kind: Literal["line", "scatter", "confusion"]
    rows: Rows
    x: str
    y: str
    title: str


def _count(value: object) -> int | None:
    return len(value) if isinstance(value, list) else value if isinstance(value, int) else None


def _chart(wandb: Any, chart: Chart) -> Any:
    if chart.kind == "confusion":
        labels = sorted({str(r[chart.x]) for r in chart.rows} | {str(r[chart.y]) for r in chart.rows})
        index = {label: i for i, label in enumerate(labels)}
        return wandb.plot.confusion_matrix(
            y_true=[index[str(r[chart.x])] for r in chart.rows],
            preds=[index[str(r[chart.y])] for r in chart.rows],
            class_names=labels,
            title=chart.title,
        )
    columns = list(chart.rows[0])
    table = wandb.Table(columns=columns, data=[[row.get(c) for c in columns] for row in chart.rows])
    if chart.kind == "scatter":
        return wandb.plot.scatter(table, chart.x, chart.y, title=chart.title)
    stroke = "class" if "class" in columns else None
    return wandb.plot.line(table, chart.x, chart.y, stroke=stroke, title=chart.title)


def track_stage(
    tracking: TrackingParams,
    stage: Literal["evaluate", "register"],
    recorded_run_id: str | None,
    config: Mapping[str, Any],
    summary: Mapping[str, Any],
    charts: Sequence[Chart] = (),
) -> None:
    """Add a stage's numbers (and charts) to the pipeline's W&B run, resumed by id; never raises.

    `recorded_run_id` is the run train recorded; the flow's TABML_WANDB_RUN_ID wins over it."""
    try:
        if tracking_mode(tracking) == "disabled":
            return
        dataset = config.get("dataset")
        group = experiment_group(str(dataset) if dataset else None)
        run = init_run(tracking, resume_run_id(recorded_run_id), stage, dict(config), group=group)
        if run is None:
            return
        try:
            import wandb

            run.summary.update(dict(summary))
            payload = {chart.key: _chart(wandb, chart) for chart in charts if chart.rows}
            if payload:
                run.log(payload)
        finally:
            finish_run(run)
    except Exception as exc:  # noqa: BLE001 - tracking must never fail the run
        warnings.warn(f"W&B: the {stage} reports were not tracked ({exc}); they are still on disk", stacklevel=2)
