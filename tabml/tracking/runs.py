"""W&B tracking that can never fail a run: offline by default, online falls back to offline, then to nothing.

One W&B run per pipeline run: train starts it (id from TABML_WANDB_RUN_ID when the flow sets it, else a fresh
one recorded in run_info.json); evaluate and register resume the same id and add their reports. Runs are
grouped by experiment: the DVC experiment name under `dvc exp run`, else `data.name`.

`python -m tabml.tracking.sync` uploads offline runs once: see docs/experiments.md.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import time
import warnings
from contextlib import suppress
from pathlib import Path
from typing import Any

from tabml.core.ops_params import TrackingParams

RUN_ID_ENV = "TABML_WANDB_RUN_ID"  # set by the Prefect flow: every stage of one flow run joins one W&B run
EXPERIMENT_ENV = "DVC_EXP_NAME"  # set by `dvc exp run` for the stage commands
PROJECT_ROOT_ENV = "DVC_ROOT"  # set by DVC: the repo root, also when a queued experiment runs in a temp copy
INIT_TIMEOUT_ENV = "WANDB_INIT_TIMEOUT"
INIT_TIMEOUT_SECONDS = 30.0
SHARED_SERVICE_ENV = "WANDB_SERVICE"  # set by wandb for child processes: they join the parent's wandb-core


def tracking_mode(tracking: TrackingParams) -> str:
    """`WANDB_MODE` from the environment wins over params.yaml (so CI and laptops can force offline)."""
    return os.environ.get("WANDB_MODE", tracking.mode)


def wandb_run_id(flow_run_id: str) -> str:
    """8 lowercase hex characters derived from the flow run id: every stage (and every retry) joins one W&B run."""
    return hashlib.sha256(flow_run_id.encode()).hexdigest()[:8]


def new_run_id() -> str:
    """One W&B run per pipeline run: the flow sets TABML_WANDB_RUN_ID, a bare `dvc repro` gets a fresh id."""
    return os.environ.get(RUN_ID_ENV) or secrets.token_hex(4)


def resume_run_id(recorded: object) -> str:
    """The run a later stage joins: the flow's id, else the one train recorded (run_info.json), else a fresh one."""
    if os.environ.get(RUN_ID_ENV):
        return os.environ[RUN_ID_ENV]
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
    settings = {
        "project": tracking.project,
        "id": run_id,
        "resume": "allow",
        "group": group or experiment_group(str(dataset) if dataset else None),
        "job_type": job_type,
        "config": config,
        "dir": str(directory.resolve()),  # wandb resolves a relative dir against its first cwd
        "reinit": "finish_previous",
    }
    for attempt_mode in dict.fromkeys([mode, "offline"] if offline_fallback else [mode]):
        started = time.monotonic()
        try:
            directory.mkdir(parents=True, exist_ok=True)
            return _start(wandb, attempt_mode, settings)
        except Exception as exc:  # noqa: BLE001 - tracking must never fail the run
            waited = time.monotonic() - started
            warnings.warn(
                f"W&B {attempt_mode} run could not start after {waited:.1f}s ({exc}); continuing", stacklevel=2
            )
            _teardown(wandb)  # a failed online stream keeps the run id busy: offline would refuse it
    return None


def _start(wandb: Any, mode: str, settings: dict[str, Any]) -> Any:
    """wandb.init; on "run ID is in use" once more with a service of this process's own.

    A process that inherits WANDB_SERVICE (its parent ran wandb) shares the parent's wandb-core service, and a
    failed online stream stays registered there under the run id: the offline retry would be refused for good."""
    for last in (False, True):
        try:
            return wandb.init(
                **settings,
                mode=mode,  # WANDB_MODE may hold anything: wandb rejects it
                settings=wandb.Settings(init_timeout=init_timeout(), silent=True, console="off"),
            )
        except Exception as exc:
            if last or "is in use" not in str(exc) or SHARED_SERVICE_ENV not in os.environ:
                raise
            _teardown(wandb)
            os.environ.pop(SHARED_SERVICE_ENV, None)  # the next init starts its own service
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
