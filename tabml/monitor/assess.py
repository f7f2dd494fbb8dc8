"""What the monitor measures on a window of the prediction log (pure functions over frames):

- feature drift: PSI of each logged feature against the production model's reference profile (the profiles of
  `references/<name>/expectations.json`, computed by tabml.validation.drift, the same code validate gates on);
- prediction drift: PSI of the predicted score in the window against the first rows that version scored;
- live performance, once a labels file joined by id arrives: the primary metric with a bootstrap interval.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from tabml.core.params import DriftParams
from tabml.data.preprocessing import PreprocessState
from tabml.evaluation.bootstrap import Scored, metric_on_resamples, resample_counts
from tabml.evaluation.metrics import UndefinedMetricError, task_metrics
from tabml.predict.prediction_log import PREDICTION_PREFIX, VERSION, hash_id
from tabml.validation.drift import ColumnDrift, Profile, assess_drift, column_drift, numeric_profile


@dataclass(frozen=True)
class LivePerformance:
    """The primary metric on the labelled logged rows, its interval, and the registered value beside it."""

    metric: str
    rows: int
    value: float
    low: float
    high: float
    confidence: float
    registered: float | None


def feature_drift(window: pd.DataFrame, profiles: Mapping[str, Profile], p: DriftParams, ref_rows: int) -> list:
    """PSI per logged feature that has a reference profile (validation's drift code, unchanged)."""
    return assess_drift(window, profiles, p, ref_rows)


def score_column(state: PreprocessState) -> str:
    """The logged column whose distribution is the model's output: P(positive), or the predicted value."""
    if state.task == "binary" and state.labels:
        return f"{PREDICTION_PREFIX}proba_{state.labels[1]}"
    return f"{PREDICTION_PREFIX}prediction"


def prediction_drift(
    log: pd.DataFrame, window: pd.DataFrame, state: PreprocessState, version: int, p: DriftParams
) -> ColumnDrift | None:
    """PSI of the window's predictions (of `version`) against the first `p.min_rows` that version ever scored."""
    column = score_column(state)
    if state.task == "multiclass" or column not in log.columns:
        return None
    ours = log[log[VERSION] == version]
    reference = ours.head(p.min_rows)
    current = window[(window[VERSION] == version) & ~window.index.isin(reference.index)]
    profile = numeric_profile(reference[column], p.bins)
    if profile is None:
        return None
    return column_drift(column, current[column], profile, p, len(reference))


def joined_labels(
    window: pd.DataFrame, labels: pd.DataFrame, id_column: str, target: str, hashed: bool
) -> pd.DataFrame:
    """The logged rows that have a label, joined by id (hashed as the log hashes it); the last label wins."""
    keys = labels[id_column].map(hash_id) if hashed else labels[id_column].astype(str)
    right = pd.DataFrame({"_key": keys.to_numpy(), target: labels[target].to_numpy()}).drop_duplicates(
        "_key", keep="last"
    )
    left = window.assign(_key=window[id_column].astype(str))
    return left.merge(right, on="_key", how="inner", suffixes=("", "_label")).drop(columns="_key")


def logged_scores(rows: pd.DataFrame, state: PreprocessState) -> np.ndarray:
    """The model's scores as the log holds them, in tabml.evaluation.metrics conventions."""
    if state.task == "multiclass":
        return rows[[f"{PREDICTION_PREFIX}proba_{label}" for label in state.labels or []]].to_numpy(np.float64)
    return rows[score_column(state)].to_numpy(np.float64)


def live_performance(
    scores: np.ndarray,
    target: np.ndarray,
    state: PreprocessState,
    metric: str,
    threshold: float | None,
    registered: float | None,
    *,
    samples: int,
    confidence: float,
    seed: int,
) -> LivePerformance | None:
    """Pure: the metric on labelled rows with a percentile bootstrap interval; None when it is undefined."""
    known = target >= 0 if state.task != "regression" else np.isfinite(target)
    scores, target = scores[known], target[known]
    if len(target) < 2:
        return None
    try:
        value = task_metrics(state.task, scores, target, threshold)[metric]
    except (UndefinedMetricError, KeyError):
        return None
    on_resamples = metric_on_resamples(state.task, metric, Scored(scores, threshold), target)
    values = on_resamples(resample_counts(np.random.default_rng(seed), len(target), samples))
    values = values[np.isfinite(values)]
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(values, [tail, 100 - tail]) if len(values) else (np.nan, np.nan)
    return LivePerformance(metric, len(target), float(value), float(low), float(high), confidence, registered)
