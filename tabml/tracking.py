"""W&B tracking that can never fail a run: offline by default, online falls back to offline, then to nothing."""

from __future__ import annotations

import os
import secrets
import warnings
from pathlib import Path
from typing import Any

from tabml.params import TrackingParams

RUN_ID_ENV = "TABML_WANDB_RUN_ID"
INIT_TIMEOUT_SECONDS = 30


def tracking_mode(tracking: TrackingParams) -> str:
    """`WANDB_MODE` from the environment wins over params.yaml (so CI and laptops can force offline)."""
    return os.environ.get("WANDB_MODE", tracking.mode)


def new_run_id() -> str:
    """One W&B run per pipeline run: the flow sets TABML_WANDB_RUN_ID, a bare `dvc repro` gets a fresh id."""
    return os.environ.get(RUN_ID_ENV) or secrets.token_hex(4)


def init_run(tracking: TrackingParams, run_id: str, job_type: str, config: dict[str, Any] | None = None) -> Any:
    """Start (or resume) the run; return None instead of raising when W&B cannot be used."""
    mode = tracking_mode(tracking)
    if mode == "disabled":
        return None
    import wandb

    tracking.dir.mkdir(parents=True, exist_ok=True)
    for attempt_mode in dict.fromkeys([mode, "offline"]):
        try:
            return wandb.init(
                project=tracking.project,
                id=run_id,
                resume="allow",
                job_type=job_type,
                config=config,
                dir=str(tracking.dir),
                mode=attempt_mode,
                reinit="finish_previous",
                settings=wandb.Settings(init_timeout=INIT_TIMEOUT_SECONDS, silent=True, console="off"),
            )
        except Exception as exc:  # noqa: BLE001 - tracking must never fail the run
            warnings.warn(f"W&B {attempt_mode} run could not start ({exc}); continuing", stacklevel=2)
    return None


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
