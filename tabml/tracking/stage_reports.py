"""What evaluate and register add to the pipeline's W&B run: summary scalars, charts, the registration.

Never raises: a stage's reports are on disk whatever W&B does.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from tabml.core.params import Params
from tabml.tracking.runs import RUN_INFO_FILE, experiment_group, finish_run, init_run, resume_run_id, tracking_mode


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


# name under plots/ -> (W&B key, x, y, chart title)
PLOT_CHARTS = {
    "roc.json": ("evaluate/roc", "fpr", "tpr", "ROC (test)"),
    "precision_recall.json": ("evaluate/precision_recall", "recall", "precision", "Precision-recall (test)"),
    "calibration.json": ("evaluate/calibration", "mean_predicted", "fraction_positive", "Calibration (test)"),
    "residuals.json": ("evaluate/residuals", "predicted", "residual", "Residuals (test)"),
}


def _count(value: object) -> int | None:
    return len(value) if isinstance(value, list) else value if isinstance(value, int) else None


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _plot_payload(wandb: Any, plots_dir: Path) -> dict[str, Any]:
    """W&B tables and charts from evaluate's plot JSONs (ROC, PR, residuals as lines/scatter; confusion)."""
    payload: dict[str, Any] = {}
    for file, (key, x, y, title) in PLOT_CHARTS.items():
        rows = _read_json(plots_dir / file)
        if not isinstance(rows, list) or not rows:
            continue
        columns = list(rows[0])
        table = wandb.Table(columns=columns, data=[[row.get(c) for c in columns] for row in rows])
        if file == "residuals.json":
            payload[key] = wandb.plot.scatter(table, x, y, title=title)
        else:
            stroke = "class" if "class" in columns else None
            payload[key] = wandb.plot.line(table, x, y, stroke=stroke, title=title)
    confusion = _read_json(plots_dir / "confusion.json")
    if isinstance(confusion, list) and confusion:
        labels = sorted({str(r["actual"]) for r in confusion} | {str(r["predicted"]) for r in confusion})
        index = {label: i for i, label in enumerate(labels)}
        payload["evaluate/confusion"] = wandb.plot.confusion_matrix(
            y_true=[index[str(r["actual"])] for r in confusion],
            preds=[index[str(r["predicted"])] for r in confusion],
            class_names=labels,
            title="Confusion (test)",
        )
    return payload


def track_stage(params: Params, stage: Literal["evaluate", "register"]) -> None:
    """Add a stage's reports to the pipeline run's W&B run (resumed by id); never raises, never fails the stage."""
    try:
        if tracking_mode(params.tracking) == "disabled":
            return
        run_id = resume_run_id(params.train.out_dir / RUN_INFO_FILE)
        section = params.evaluate if stage == "evaluate" else params.register_
        config = {stage: section.model_dump(mode="json"), "dataset": params.data.name}
        run = init_run(params.tracking, run_id, stage, config, group=experiment_group(params.data.name))
        if run is None:
            return
        try:
            import wandb

            if stage == "evaluate":
                metrics = _read_json(params.evaluate.metrics) or {}
                run.summary.update(evaluation_summary(metrics, _read_json(params.validate_.report)))
                charts = _plot_payload(wandb, params.evaluate.out_dir / "plots")
                if charts:
                    run.log(charts)
            else:
                run.summary.update(registration_summary(_read_json(params.register_.record) or {}))
        finally:
            finish_run(run)
    except Exception as exc:  # noqa: BLE001 - tracking must never fail the run
        warnings.warn(f"W&B: the {stage} reports were not tracked ({exc}); they are still on disk", stacklevel=2)
