"""Which metric judges a task and which way each metric runs. Imports no torch: the gate and reports use it."""

from __future__ import annotations

PRIMARY_METRIC = {"binary": "auroc", "multiclass": "accuracy", "regression": "rmse"}  # unless register.primary_metric
LOWER_IS_BETTER = frozenset({"rmse", "mae", "mse", "log_loss"})


def improvement(metric: str, a: float, b: float) -> float:
    """How much better `a` is than `b` (positive: better), whichever direction the metric runs."""
    return b - a if metric in LOWER_IS_BETTER else a - b
