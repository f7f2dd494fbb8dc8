"""Registered versions in the W&B model registry, best-effort.

Nothing here may fail a stage: W&B disabled, offline or unreachable means a warning at most. The JSON
registry (tabml.registry) stays the record; W&B is a view of it.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

from tabml.core.ops_params import TrackingParams
from tabml.tracking.runs import finish_run, init_run, tracking_mode


def run_id_of(run_info: Path) -> str | None:
    """The W&B run id train recorded in run_info.json, if any."""
    try:
        return json.loads(run_info.read_text()).get("wandb_run_id") or None
    except (OSError, ValueError, AttributeError):
        return None


def link_to_model_registry(
    tracking: TrackingParams, run_id: str | None, package: Path, name: str, version: int, stage: str | None
) -> dict[str, object]:
    """Link the package to the W&B model registry as `<name>` with aliases `v<N>` and the stage, online only.

    Returns what happened, for the registration record: {"linked": bool, "reason"/"artifact": ...}.
    """
    mode = tracking_mode(tracking)
    if mode != "online":
        return {"linked": False, "reason": f"W&B mode is {mode}: the model registry needs online mode"}
    run = init_run(tracking, run_id or f"register-{name}-v{version}", "register")
    if run is None or getattr(run, "offline", False):
        finish_run(run)
        return {"linked": False, "reason": "no online W&B run could start"}
    try:
        aliases = [f"v{version}", *([stage] if stage else [])]
        artifact = run.link_model(str(package), registered_model_name=name, name=f"{name}-model", aliases=aliases)
        linked = {"linked": True, "registered_model": name, "aliases": aliases}
        if artifact is not None:
            linked["artifact"] = str(getattr(artifact, "qualified_name", "") or artifact.name)
        return linked
    except Exception as exc:  # noqa: BLE001 - the JSON registry is the record; W&B is best-effort
        warnings.warn(f"W&B model registry link for {name} v{version} skipped ({exc})", stacklevel=2)
        return {"linked": False, "reason": f"W&B refused the link: {exc}"}
    finally:
        finish_run(run)
