"""The registration gate: a pure decision over test metrics and the thresholds in params.yaml."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from tabml.params import RegisterParams, TaskType

LOWER_IS_BETTER = frozenset({"rmse", "mae", "mse", "log_loss"})
DEFAULT_PRIMARY_METRIC: dict[TaskType, str] = {"binary": "auroc", "multiclass": "accuracy", "regression": "rmse"}


@dataclass(frozen=True)
class ThresholdCheck:
    """One `register.thresholds` entry compared with the measured value."""

    metric: str
    bound: float
    kind: Literal["min", "max"]  # a minimum (higher is better) or a maximum (error metrics)
    value: float | None
    passed: bool
    reason: str


@dataclass(frozen=True)
class GateDecision:
    passed: bool
    primary_metric: str
    value: float | None
    reasons: list[str] = field(default_factory=list)  # every check, passed or not
    blocking: list[str] = field(default_factory=list)  # the reasons it failed; empty when passed
    checks: list[ThresholdCheck] = field(default_factory=list)


def primary_metric_for(task: TaskType, params: RegisterParams) -> str:
    return params.primary_metric or DEFAULT_PRIMARY_METRIC[task]


def _available(metrics: Mapping[str, float | None]) -> str:
    return ", ".join(sorted(k for k, v in metrics.items() if v is not None)) or "none"


def check_threshold(metrics: Mapping[str, float | None], metric: str, bound: float) -> ThresholdCheck:
    """Compare one metric with its bound: a minimum, or a maximum for error metrics."""
    kind: Literal["min", "max"] = "max" if metric in LOWER_IS_BETTER else "min"
    raw = metrics.get(metric)
    if raw is None:  # absent, or null in metrics.json
        reason = f"{metric}: not in metrics.json (available: {_available(metrics)})"
        return ThresholdCheck(metric, bound, kind, None, False, reason)
    value = float(raw)
    if math.isnan(value):
        return ThresholdCheck(metric, bound, kind, value, False, f"{metric}=nan: not a number, cannot pass {bound}")
    passed = value <= bound if kind == "max" else value >= bound
    op = ("<=" if passed else ">") if kind == "max" else (">=" if passed else "<")
    word = "maximum" if kind == "max" else "minimum"
    reason = f"{metric}={value:.4g} {op} {word} {bound:g}: {'ok' if passed else 'FAILED'}"
    return ThresholdCheck(metric, bound, kind, value, passed, reason)


def gate(metrics: Mapping[str, float | None], task: TaskType, params: RegisterParams) -> GateDecision:
    """Pass when every threshold for `task` holds and the primary metric was measured."""
    primary = primary_metric_for(task, params)
    checks = [check_threshold(metrics, m, b) for m, b in params.thresholds.get(task, {}).items()]
    raw = metrics.get(primary)
    value = None if raw is None or math.isnan(float(raw)) else float(raw)
    missing = (
        [] if value is not None else [f"primary metric {primary}: not measured (available: {_available(metrics)})"]
    )
    unchecked = [] if checks else [f"no thresholds for task {task}: nothing to check"]
    blocking = [c.reason for c in checks if not c.passed] + missing
    reasons = [c.reason for c in checks] + missing + unchecked
    return GateDecision(not blocking, primary, value, reasons, blocking, checks)
