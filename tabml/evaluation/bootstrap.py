"""Paired bootstrap of a metric difference: two models scored on the same rows, resampled together.

Each resample draws n rows with replacement, kept as per-row counts, and both models are
scored on the same counts, so the interval reflects the difference between the models and not the luck of
the test split twice over. The usual primary metrics (binary AUROC, accuracy, log loss, RMSE, MAE, R²) are
computed for a whole block of resamples at once from the counts; any other metric falls back to
tabml.metrics (torchmetrics) one resample at a time, on the same draws.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from tabml.core.metric_names import LOWER_IS_BETTER, improvement
from tabml.evaluation.metrics import LOG_LOSS_EPS, UndefinedMetricError, predicted_classes, task_metrics

BLOCK_CELLS = 4_000_000  # resamples x rows held in memory at once


@dataclass(frozen=True)
class PairedInterval:
    """Percentile interval of the challenger's gain over the champion (positive: challenger better)."""

    improvement: float  # on all rows
    low: float
    high: float
    confidence: float
    samples: int  # resamples where the metric was defined for both models
    undefined: int  # resamples dropped (e.g. a class missing from the draw)


@dataclass(frozen=True)
class Scored:
    """One model's predictions on the shared rows (tabml.metrics conventions) and its binary threshold."""

    scores: np.ndarray
    threshold: float | None


def _weighted_auroc(counts: np.ndarray, score: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Mann-Whitney AUROC with ties counted half, for each row of `counts` (= trapezoidal ROC area)."""
    order = np.argsort(score, kind="stable")
    sorted_score = score[order]
    starts = np.flatnonzero(np.r_[True, sorted_score[1:] != sorted_score[:-1]])
    w = counts[:, order]
    pos = np.add.reduceat(w * (target[order] == 1), starts, axis=1)
    neg = np.add.reduceat(w * (target[order] == 0), starts, axis=1)
    below = np.cumsum(neg, axis=1) - neg
    with np.errstate(invalid="ignore", divide="ignore"):
        return (pos * (below + 0.5 * neg)).sum(axis=1) / (pos.sum(axis=1) * neg.sum(axis=1))


def _per_row_loss(task: str, metric: str, m: Scored, y: np.ndarray) -> np.ndarray | None:
    """The row-wise quantity whose (weighted) mean gives the metric, or None if there is none."""
    if metric == "accuracy" and task != "regression":
        return (predicted_classes(m.scores, m.threshold) == y).astype(np.float64)
    if metric == "log_loss" and task == "binary":
        p = np.clip(m.scores.astype(np.float64), LOG_LOSS_EPS, 1 - LOG_LOSS_EPS)
        return -(y * np.log(p) + (1 - y) * np.log(1 - p))
    if metric == "log_loss" and task == "multiclass":
        p = np.clip(m.scores.astype(np.float64), LOG_LOSS_EPS, 1 - LOG_LOSS_EPS)
        return -np.log(p[np.arange(len(y)), y])
    if task == "regression" and metric in ("rmse", "mae", "mse"):
        error = m.scores.astype(np.float64) - y.astype(np.float64)
        return np.abs(error) if metric == "mae" else error**2
    return None


def vectorised(task: str, metric: str, m: Scored, y: np.ndarray) -> Callable[[np.ndarray], np.ndarray] | None:
    """counts (k, n) -> the metric on each of the k resamples; None when the metric has no fast form here."""
    n = len(y)
    if metric == "auroc" and task == "binary":
        score = m.scores.astype(np.float64)
        return lambda counts: _weighted_auroc(counts, score, y)
    if metric == "r2" and task == "regression":
        yf, pred = y.astype(np.float64), m.scores.astype(np.float64)

        def r2(counts: np.ndarray) -> np.ndarray:
            mean = counts @ yf / n
            total = counts @ (yf**2) - n * mean**2
            with np.errstate(invalid="ignore", divide="ignore"):
                return np.where(total > 0, 1 - counts @ ((yf - pred) ** 2) / total, np.nan)

        return r2
    loss = _per_row_loss(task, metric, m, y)
    if loss is None:
        return None
    if metric == "rmse":
        return lambda counts: np.sqrt(counts @ loss / n)
    return lambda counts: counts @ loss / n


def _one_at_a_time(task: str, metric: str, m: Scored, y: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
    rows = np.arange(len(y))

    def each(counts: np.ndarray) -> np.ndarray:
        values = []
        for row_counts in counts:
            idx = np.repeat(rows, row_counts.astype(np.int64))
            try:
                values.append(task_metrics(task, m.scores[idx], y[idx], m.threshold)[metric])
            except UndefinedMetricError:
                values.append(math.nan)
        return np.asarray(values, dtype=np.float64)

    return each


def metric_on_resamples(
    task: str, metric: str, m: Scored, y: np.ndarray, vectorise: bool = True
) -> Callable[[np.ndarray], np.ndarray]:
    return (vectorise and vectorised(task, metric, m, y)) or _one_at_a_time(task, metric, m, y)


def resample_counts(rng: np.random.Generator, n: int, k: int) -> np.ndarray:
    """(k, n): how often each row is drawn in each of k resamples of n rows with replacement."""
    draws = rng.integers(0, n, size=(k, n)) + (np.arange(k) * n)[:, None]
    return np.bincount(draws.ravel(), minlength=k * n).reshape(k, n).astype(np.float64)


def paired_bootstrap(
    task: str,
    metric: str,
    y: np.ndarray,
    a: Scored,
    b: Scored,
    *,
    samples: int,
    confidence: float,
    seed: int,
    vectorise: bool = True,
) -> PairedInterval:
    """Pure: the interval of A's improvement over B on `metric`, from `samples` paired resamples of the rows.

    `vectorise=False` forces the torchmetrics loop (the benchmark's baseline)."""
    n = len(y)
    point = improvement(
        metric,
        task_metrics(task, a.scores, y, a.threshold)[metric],
        task_metrics(task, b.scores, y, b.threshold)[metric],
    )
    fa, fb = (metric_on_resamples(task, metric, m, y, vectorise) for m in (a, b))
    rng = np.random.default_rng(seed)
    block = max(1, BLOCK_CELLS // max(n, 1))
    deltas: list[np.ndarray] = []
    done = 0
    while done < samples:
        k = min(block, samples - done)
        counts = resample_counts(rng, n, k)
        ours, theirs = fa(counts), fb(counts)
        deltas.append(theirs - ours if metric in LOWER_IS_BETTER else ours - theirs)
        done += k
    all_deltas = np.concatenate(deltas)
    valid = all_deltas[np.isfinite(all_deltas)]
    if valid.size == 0:
        raise UndefinedMetricError(f"{metric} is undefined on every bootstrap resample of {n} rows")
    alpha = 1 - confidence
    low, high = np.quantile(valid, [alpha / 2, 1 - alpha / 2])
    return PairedInterval(
        improvement=float(point),
        low=float(low),
        high=float(high),
        confidence=confidence,
        samples=int(valid.size),
        undefined=int(all_deltas.size - valid.size),
    )
