"""Pure scoring: predictions and targets in, metric dicts and plot rows out (torchmetrics functional API).

Conventions: binary scores are P(positive) and a row is predicted positive when `score >= threshold`;
multiclass scores are (n, K) probabilities; regression predictions are in target units.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torchmetrics.functional import mean_absolute_error, mean_squared_error, r2_score
from torchmetrics.functional.classification import (
    binary_auroc,
    binary_average_precision,
    binary_f1_score,
    binary_precision,
    binary_precision_recall_curve,
    binary_recall,
    binary_roc,
    multiclass_accuracy,
    multiclass_auroc,
    multiclass_f1_score,
)

# Predictions arrive as float32; log loss clips to its machine epsilon, as scikit-learn does.
LOG_LOSS_EPS = float(np.finfo(np.float32).eps)


class UndefinedMetricError(ValueError):
    """A metric cannot be computed on this data (e.g. one class only); the message says why."""


def _tensor(values: np.ndarray, dtype: torch.dtype) -> torch.Tensor:
    return torch.as_tensor(np.ascontiguousarray(values), dtype=dtype)


def _require_classes(target: np.ndarray, n_classes: int, metric: str) -> None:
    missing = sorted(set(range(n_classes)) - {int(v) for v in np.unique(target)})
    if missing:
        raise UndefinedMetricError(
            f"{metric} needs every class present, but class index(es) {missing} have no rows "
            f"({len(target)} rows in all)"
        )


def _finite(metrics: dict[str, float]) -> dict[str, float]:
    bad = [name for name, value in metrics.items() if not math.isfinite(value)]
    if bad:
        raise UndefinedMetricError(f"{', '.join(bad)} came out non-finite")
    return {name: round(value, 6) for name, value in metrics.items()}


def binary_log_loss(score: np.ndarray, target: np.ndarray) -> float:
    p = _tensor(score, torch.float64).clamp(LOG_LOSS_EPS, 1 - LOG_LOSS_EPS)
    return float(F.binary_cross_entropy(p, _tensor(target, torch.float64)))


def multiclass_log_loss(proba: np.ndarray, target: np.ndarray) -> float:
    p = _tensor(proba, torch.float64).clamp(LOG_LOSS_EPS, 1 - LOG_LOSS_EPS)
    return float(F.nll_loss(p.log(), _tensor(target, torch.long)))


def choose_threshold(score: np.ndarray, target: np.ndarray) -> float:
    """The cut on P(positive) that maximises F1 (ties: the lowest such cut); meant for the validation split."""
    _require_classes(target, 2, "choosing the F1 threshold")
    precision, recall, thresholds = binary_precision_recall_curve(
        _tensor(score, torch.float64), _tensor(target, torch.long)
    )
    # precision/recall carry one extra final point (recall 0) with no threshold; drop it.
    p, r = precision[:-1].double(), recall[:-1].double()
    f1 = torch.where(p + r > 0, 2 * p * r / (p + r), torch.zeros_like(p))
    return float(thresholds[int(torch.argmax(f1))])


def recorded_threshold(score: np.ndarray, target: np.ndarray) -> float:
    """`choose_threshold` rounded down to 6 digits, so the recorded value reproduces every decision made with it."""
    return math.floor(choose_threshold(score, target) * 1e6) / 1e6


def binary_metrics(score: np.ndarray, target: np.ndarray, threshold: float) -> dict[str, float]:
    """auroc, pr_auc (average precision), log_loss on scores; the rest on `score >= threshold`."""
    _require_classes(target, 2, "AUROC and average precision")
    s, y = _tensor(score, torch.float64), _tensor(target, torch.long)
    hard = (s >= threshold).long()  # integer predictions: torchmetrics applies no threshold of its own
    return _finite(
        {
            "auroc": float(binary_auroc(s, y)),
            "pr_auc": float(binary_average_precision(s, y)),
            "accuracy": float((hard == y).double().mean()),
            "balanced_accuracy": float(multiclass_accuracy(hard, y, num_classes=2, average="macro")),
            "f1": float(binary_f1_score(hard, y)),
            "precision": float(binary_precision(hard, y)),
            "recall": float(binary_recall(hard, y)),
            "log_loss": binary_log_loss(score, target),
        }
    )


def multiclass_metrics(proba: np.ndarray, target: np.ndarray) -> dict[str, float]:
    """accuracy, balanced_accuracy (mean per-class recall), macro_f1, macro one-vs-rest auroc, log_loss."""
    n_classes = proba.shape[1]
    _require_classes(target, n_classes, "macro one-vs-rest AUROC")
    p, y = _tensor(proba, torch.float64), _tensor(target, torch.long)
    hard = p.argmax(dim=1)
    return _finite(
        {
            "accuracy": float((hard == y).double().mean()),
            "balanced_accuracy": float(multiclass_accuracy(hard, y, num_classes=n_classes, average="macro")),
            "macro_f1": float(multiclass_f1_score(hard, y, num_classes=n_classes, average="macro")),
            "auroc": float(multiclass_auroc(p, y, num_classes=n_classes, average="macro")),
            "log_loss": multiclass_log_loss(proba, target),
        }
    )


def regression_metrics(pred: np.ndarray, target: np.ndarray) -> dict[str, float]:
    """rmse, mae, r2 in target units."""
    if len(target) < 2 or float(np.var(target)) == 0.0:
        raise UndefinedMetricError(f"r2 needs at least two distinct target values ({len(target)} rows)")
    p, y = _tensor(pred, torch.float64), _tensor(target, torch.float64)
    return _finite(
        {
            "rmse": float(mean_squared_error(p, y, squared=False)),
            "mae": float(mean_absolute_error(p, y)),
            "r2": float(r2_score(p, y)),
        }
    )


def task_metrics(task: str, scores: np.ndarray, target: np.ndarray, threshold: float | None) -> dict[str, float]:
    """The metric set of `task` (see the three functions above); binary needs its decision threshold."""
    if task == "regression":
        return regression_metrics(scores, target)
    if task == "multiclass":
        return multiclass_metrics(scores, target)
    if threshold is None:
        raise ValueError("binary metrics need the decision threshold chosen on val")
    return binary_metrics(scores, target, threshold)


def predicted_classes(scores: np.ndarray, threshold: float | None) -> np.ndarray:
    """Class index per row: `score >= threshold` for binary (1-D scores), argmax for multiclass."""
    if scores.ndim == 1:
        if threshold is None:
            raise ValueError("binary scores need a threshold")
        return (scores >= threshold).astype(np.int64)
    return scores.argmax(axis=1).astype(np.int64)


def evenly_spaced(n: int, max_points: int) -> np.ndarray:
    """At most `max_points` indices into range(n), evenly spread, always keeping the first and the last."""
    if n <= max_points:
        return np.arange(n)
    return np.unique(np.round(np.linspace(0, n - 1, max_points)).astype(np.int64))


def _r(value: object) -> float:
    return round(float(value), 6)  # type: ignore[arg-type]


def roc_rows(score: np.ndarray, target: np.ndarray, max_points: int) -> list[dict[str, float]]:
    """ROC curve as {"fpr","tpr","threshold"} rows, thresholds descending, at most `max_points` of them."""
    fpr, tpr, thr = binary_roc(_tensor(score, torch.float64), _tensor(target, torch.long))
    keep = evenly_spaced(len(fpr), max_points)
    return [{"fpr": _r(fpr[i]), "tpr": _r(tpr[i]), "threshold": _r(thr[i])} for i in keep]


def pr_rows(score: np.ndarray, target: np.ndarray, max_points: int) -> list[dict[str, float]]:
    """Precision-recall curve as {"recall","precision"} rows, recall descending, at most `max_points`."""
    precision, recall, _ = binary_precision_recall_curve(_tensor(score, torch.float64), _tensor(target, torch.long))
    keep = evenly_spaced(len(precision), max_points)
    return [{"recall": _r(recall[i]), "precision": _r(precision[i])} for i in keep]


def one_vs_rest_rows(
    proba: np.ndarray, target: np.ndarray, labels: list[str], max_points: int
) -> tuple[list[dict[str, object]], list[dict[str, object]]]:
    """ROC and PR rows of every class against the rest, stacked, each row tagged with its "class" label."""
    roc: list[dict[str, object]] = []
    pr: list[dict[str, object]] = []
    for k, label in enumerate(labels):
        is_k = (target == k).astype(np.int64)
        roc += [{"class": label, **row} for row in roc_rows(proba[:, k], is_k, max_points)]
        pr += [{"class": label, **row} for row in pr_rows(proba[:, k], is_k, max_points)]
    return roc, pr


def confusion_rows(target: np.ndarray, predicted: np.ndarray, labels: list[str]) -> list[dict[str, str]]:
    """One {"actual","predicted"} row per example, in the file's own labels (DVC's confusion template)."""
    return [{"actual": labels[int(a)], "predicted": labels[int(p)]} for a, p in zip(target, predicted, strict=True)]


def residual_rows(pred: np.ndarray, target: np.ndarray, max_points: int) -> list[dict[str, float]]:
    """{"actual","predicted","residual"} (residual = actual - predicted) for at most `max_points` rows, evenly
    spread over the split so the sample is the same every run."""
    return [
        {"actual": _r(target[i]), "predicted": _r(pred[i]), "residual": _r(float(target[i]) - float(pred[i]))}
        for i in evenly_spaced(len(target), max_points)
    ]


def calibration_rows(score: np.ndarray, target: np.ndarray, bins: int) -> list[dict[str, float]]:
    """Reliability curve: per non-empty equal-width bin of P(positive), the mean prediction, the observed
    positive rate and the row count; `perfect` repeats the mean prediction so a plot can draw the diagonal."""
    which = np.clip((np.asarray(score, dtype=np.float64) * bins).astype(np.int64), 0, bins - 1)
    rows = []
    for b in range(bins):
        members = which == b
        if members.any():
            mean = _r(np.mean(score[members]))
            observed = _r(np.mean(target[members]))
            count = int(members.sum())
            rows.append({"mean_predicted": mean, "fraction_positive": observed, "perfect": mean, "count": count})
    return rows


def one_vs_rest_calibration(proba: np.ndarray, target: np.ndarray, labels: list[str], bins: int) -> list[dict]:
    """Calibration rows of every class against the rest, each tagged with its "class" label."""
    return [
        {"class": label, **row}
        for k, label in enumerate(labels)
        for row in calibration_rows(proba[:, k], (target == k).astype(np.int64), bins)
    ]
