"""Baselines fitted on the same split as the network: the majority class (the mean, for regression) and a
linear model (L2 logistic regression, or ridge) on the same encoded inputs.

A network that cannot beat these has not earned its complexity; the register gate checks that it does.
Scores come back in the network's conventions (see tabml.metrics): P(positive), class probabilities, or
values in target units; binary baselines carry their own decision threshold, chosen on val like the network's.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
from scipy import sparse

from tabml.data.preprocessing import SplitArrays
from tabml.evaluation.metrics import choose_threshold

BASELINES = ("majority", "linear")


@dataclass(frozen=True)
class BaselinePrediction:
    name: str
    test_scores: np.ndarray
    threshold: float | None  # binary only


def design_matrix(arrays: SplitArrays, levels: list[int]) -> sparse.csr_matrix:
    """Numeric inputs as they are, each category column one-hot over `levels[i]` codes (unseen codes: all zero)."""
    blocks: list[sparse.spmatrix] = [sparse.csr_matrix(arrays.x_num.astype(np.float64))]
    n = len(arrays)
    for i, width in enumerate(levels):
        codes = arrays.x_cat[:, i]
        inside = codes < width
        one_hot = sparse.csr_matrix(
            (np.ones(int(inside.sum())), (np.flatnonzero(inside), codes[inside])), shape=(n, width)
        )
        blocks.append(one_hot)
    return sparse.hstack(blocks, format="csr")


def majority(train: SplitArrays, n_test: int, task: str, n_classes: int) -> BaselinePrediction:
    """The training prior for every row: the most frequent class wins every decision; regression predicts the mean."""
    if task == "regression":
        return BaselinePrediction("majority", np.full(n_test, float(np.mean(train.y))), None)
    prior = np.bincount(train.y, minlength=n_classes) / len(train)
    if task == "multiclass":
        return BaselinePrediction("majority", np.tile(prior, (n_test, 1)), None)
    p = float(prior[1])
    # score >= threshold is positive: the constant score decides for the majority class
    return BaselinePrediction("majority", np.full(n_test, p), p if p >= 0.5 else 1.0)


def linear(
    train: SplitArrays, val: SplitArrays, test: SplitArrays, task: str, n_classes: int, l2: float
) -> BaselinePrediction:
    """L2 logistic regression (binary, multiclass) or ridge (regression) on numerics + one-hot categories."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression, Ridge

    splits = (train, val, test)
    levels = [max(int(s.x_cat[:, i].max(initial=0)) for s in splits) + 1 for i in range(train.x_cat.shape[1])]
    x_train, x_test = design_matrix(train, levels), design_matrix(test, levels)
    if task == "regression":
        ridge = Ridge(alpha=l2).fit(x_train, train.y.astype(np.float64))
        return BaselinePrediction("linear", ridge.predict(x_test).astype(np.float64), None)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # the baseline is what it is after max_iter
        logistic = LogisticRegression(C=1.0 / l2, max_iter=2000).fit(x_train, train.y)
    proba = logistic.predict_proba(x_test)
    full = np.zeros((len(test), n_classes))
    full[:, logistic.classes_] = proba  # a class absent from train keeps probability 0
    if task == "multiclass":
        return BaselinePrediction("linear", full, None)
    val_scores = logistic.predict_proba(design_matrix(val, levels))[:, list(logistic.classes_).index(1)]
    threshold = math.floor(choose_threshold(val_scores, val.y) * 1e6) / 1e6  # as tasks.evaluate rounds the network's
    return BaselinePrediction("linear", full[:, 1], threshold)


def fit_baselines(
    train: SplitArrays, val: SplitArrays, test: SplitArrays, task: str, n_classes: int, l2: float
) -> list[BaselinePrediction]:
    """Pure: both baselines' test predictions."""
    return [majority(train, len(test), task, n_classes), linear(train, val, test, task, n_classes, l2)]
