"""The metric vocabulary: what each task reports, which metric judges it, and which way each metric runs.

Plain data, no torch: params validation, the gate and the reports use it; tabml.evaluation.metrics computes it.
"""

from __future__ import annotations

TASK_METRICS = {
    "binary": ("auroc", "pr_auc", "accuracy", "balanced_accuracy", "f1", "precision", "recall", "log_loss"),
    "multiclass": ("accuracy", "balanced_accuracy", "macro_f1", "auroc", "log_loss"),
    "regression": ("rmse", "mae", "r2"),
}
PRIMARY_METRIC = {"binary": "auroc", "multiclass": "accuracy", "regression": "rmse"}  # unless register.primary_metric
LOWER_IS_BETTER = frozenset({"rmse", "mae", "mse", "log_loss"})


def improvement(metric: str, a: float, b: float) -> float:
    """How much better `a` is than `b` (positive: better), whichever direction the metric runs."""
    return b - a if metric in LOWER_IS_BETTER else a - b
