"""Whether the monitor retrains: the thresholds of `monitor:` in params.yaml (a pure decision, unit-tested), and
the cooldown remembered in `monitor.state_file` so a drifted population does not start a retraining every hour."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from tabml.core.files import write_json_atomic
from tabml.core.metric_names import LOWER_IS_BETTER
from tabml.core.ops_params import MonitorParams
from tabml.monitor.assess import LivePerformance
from tabml.validation.drift import ColumnDrift


@dataclass(frozen=True)
class Decision:
    retrain: bool
    reasons: list[str] = field(default_factory=list)  # why it would retrain (empty: nothing crossed)
    held_back: str | None = None  # why it does not although something crossed (cooldown)


def crossed(
    features: list[ColumnDrift], prediction: ColumnDrift | None, live: LivePerformance | None, p: MonitorParams
) -> list[str]:
    """Pure: every threshold the window crossed, one line each."""
    reasons = []
    drifted = [d for d in features if d.psi is not None and d.psi > p.drift_threshold]
    if len(drifted) >= p.drifted_columns:
        named = ", ".join(f"{d.column} (PSI {d.psi:.3f})" for d in drifted)
        reasons.append(f"{len(drifted)} features drifted beyond PSI {p.drift_threshold}: {named}")
    if prediction is not None and prediction.psi is not None and prediction.psi > p.prediction_drift_threshold:
        reasons.append(f"predictions drifted: PSI {prediction.psi:.3f} > {p.prediction_drift_threshold}")
    if live is not None and live.registered is not None:
        drop = live.value - live.registered if live.metric in LOWER_IS_BETTER else live.registered - live.value
        if drop > p.max_metric_drop:
            reasons.append(
                f"live {live.metric} {live.value:.4f} (interval {live.low:.4f}-{live.high:.4f}, {live.rows} rows) "
                f"is {drop:.4f} worse than registered {live.registered:.4f} (> {p.max_metric_drop})"
            )
    return reasons


def decide(reasons: list[str], state: dict[str, Any], now: datetime, p: MonitorParams) -> Decision:
    """Pure: retrain when a threshold was crossed and the last trigger is older than the cooldown."""
    if not reasons:
        return Decision(False)
    last = state.get("last_triggered_at")
    if last is not None:
        until = datetime.fromisoformat(last) + timedelta(hours=p.cooldown_hours)
        if now < until:
            return Decision(False, reasons, f"cooldown: last retraining triggered at {last}, next allowed {until}")
    return Decision(True, reasons)


def read_state(path: Path) -> dict[str, Any]:
    """The cooldown state; an unreadable file is reported, not taken as 'never triggered'."""
    if not path.exists():
        return {}
    try:
        state = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        from tabml.core.errors import StageError

        raise StageError(f"the monitor state is not JSON ({exc})", path, "fix or delete the file") from None
    return state if isinstance(state, dict) else {}


def write_state(path: Path, state: dict[str, Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(path, state)
    return path
