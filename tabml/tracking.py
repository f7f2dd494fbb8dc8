"""W&B tracking that can never fail a run: offline by default, online falls back to offline, then to nothing.

One W&B run per pipeline run: train starts it (id from TABML_WANDB_RUN_ID when the flow sets it, else a fresh
one recorded in run_info.json); evaluate and register resume the same id and add their reports. Runs are
grouped by experiment: the DVC experiment name under `dvc exp run`, else `data.name`.

`python -m tabml.tracking_sync` uploads offline runs once: see docs/experiments.md.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import time
import warnings
from collections.abc import Mapping
from contextlib import suppress
from pathlib import Path
from typing import Any, Literal

from tabml.params import Params, TrackingParams

RUN_ID_ENV = "TABML_WANDB_RUN_ID"  # set by the Prefect flow: every stage of one flow run joins one W&B run
EXPERIMENT_ENV = "DVC_EXP_NAME"  # set by `dvc exp run` for the stage commands
PROJECT_ROOT_ENV = "DVC_ROOT"  # set by DVC: the repo root, also when a queued experiment runs in a temp copy
INIT_TIMEOUT_ENV = "WANDB_INIT_TIMEOUT"
INIT_TIMEOUT_SECONDS = 30.0
RUN_INFO_FILE = "run_info.json"  # written by train; holds `wandb_run_id`


def tracking_mode(tracking: TrackingParams) -> str:
    """`WANDB_MODE` from the environment wins over params.yaml (so CI and laptops can force offline)."""
    return os.environ.get("WANDB_MODE", tracking.mode)


def wandb_run_id(flow_run_id: str) -> str:
    """8 lowercase hex characters derived from the flow run id: every stage (and every retry) joins one W&B run."""
    return hashlib.sha256(flow_run_id.encode()).hexdigest()[:8]


def new_run_id() -> str:
    """One W&B run per pipeline run: the flow sets TABML_WANDB_RUN_ID, a bare `dvc repro` gets a fresh id."""
    return os.environ.get(RUN_ID_ENV) or secrets.token_hex(4)


def resume_run_id(run_info_path: Path) -> str:
    """The run a later stage joins: the flow's id, else the one train recorded, else a fresh one."""
    if os.environ.get(RUN_ID_ENV):
        return os.environ[RUN_ID_ENV]
    try:
        recorded = json.loads(run_info_path.read_text()).get("wandb_run_id")
    except (OSError, ValueError, AttributeError):
        recorded = None
    return recorded if isinstance(recorded, str) and recorded else new_run_id()


def experiment_group(dataset: str | None) -> str | None:
    """W&B group: the DVC experiment name under `dvc exp run`, else the dataset (`data.name`)."""
    return os.environ.get(EXPERIMENT_ENV) or dataset


def tracking_dir(tracking: TrackingParams) -> Path:
    """`tracking.dir`, relative to the DVC project root: a queued experiment runs in a temp copy that is deleted."""
    root = os.environ.get(PROJECT_ROOT_ENV)
    return tracking.dir if tracking.dir.is_absolute() or not root else Path(root) / tracking.dir


def init_timeout() -> float:
    try:
        return float(os.environ.get(INIT_TIMEOUT_ENV, INIT_TIMEOUT_SECONDS))
    except ValueError:
        return INIT_TIMEOUT_SECONDS


def init_run(
    tracking: TrackingParams,
    run_id: str,
    job_type: str,
    config: dict[str, Any] | None = None,
    *,
    group: str | None = None,
    offline_fallback: bool = True,
) -> Any:
    """Start (or resume) the run; return None instead of raising when W&B cannot be used.

    An online run that cannot start is retried offline (the run id stays the same, `sync` uploads it later),
    unless `offline_fallback` is False (for work that only makes sense online, such as registry links).
    """
    mode = tracking_mode(tracking)
    if mode == "disabled":
        return None
    import wandb

    directory = tracking_dir(tracking)
    dataset = (config or {}).get("dataset")  # train's config names it
    group = group or experiment_group(str(dataset) if dataset else None)
    for attempt_mode in dict.fromkeys([mode, "offline"] if offline_fallback else [mode]):
        started = time.monotonic()
        try:
            directory.mkdir(parents=True, exist_ok=True)
            return wandb.init(
                project=tracking.project,
                id=run_id,
                resume="allow",
                group=group,
                job_type=job_type,
                config=config,
                dir=str(directory.resolve()),  # wandb resolves a relative dir against its first cwd
                mode=attempt_mode,  # type: ignore[arg-type]  # WANDB_MODE may hold anything: wandb rejects it
                reinit="finish_previous",
                settings=wandb.Settings(init_timeout=init_timeout(), silent=True, console="off"),
            )
        except Exception as exc:  # noqa: BLE001 - tracking must never fail the run
            waited = time.monotonic() - started
            warnings.warn(
                f"W&B {attempt_mode} run could not start after {waited:.1f}s ({exc}); continuing", stacklevel=2
            )
            _teardown(wandb)  # a failed online stream keeps the run id busy: offline would refuse it
    return None


def _teardown(wandb: Any) -> None:
    with suppress(Exception):  # best effort before the offline retry
        wandb.teardown()


def finish_run(run: Any) -> None:
    if run is None:
        return
    try:
        run.finish()
    except Exception as exc:  # noqa: BLE001
        warnings.warn(f"W&B run did not finish cleanly ({exc}); metrics are still in the local files", stacklevel=2)


def run_dir(run: Any) -> Path | None:
    return Path(run.dir).parent if run is not None else None


def log_model_artifact(run: Any, model_dir: Path, name: str) -> None:
    """Attach the weights and config to the run as a W&B model artifact (works offline)."""
    try:
        import wandb

        artifact = wandb.Artifact(name=f"{name}-model", type="model")
        for path in sorted(model_dir.iterdir()):
            if path.is_file():
                artifact.add_file(str(path))
        run.log_artifact(artifact)
    except Exception as exc:  # noqa: BLE001
        warnings.warn(f"W&B model artifact not logged ({exc})", stacklevel=2)


# ---- what evaluate and register add to the run (pure) ------------------------------------------------


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
