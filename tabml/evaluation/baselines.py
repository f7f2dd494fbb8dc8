"""Baselines fitted on the same split as the network: the majority class (the mean, for regression) and a
linear model (L2 logistic regression, or ridge).

The linear model reads the RAW columns where evaluate passes them (`RawColumns`: each numeric column
median-imputed and standardised, unclipped; each category column one-hot over every level seen in train,
missing as a level of its own, unseen levels all zero), the encoding a user's own ridge/logistic would have.
Without them it falls back to the network's encoded inputs (quantile ranks, robust views, category codes).

A network that cannot beat these has not earned its complexity; the register gate checks that it does.
Scores come back in the network's conventions (see tabml.metrics): P(positive), class probabilities, or
values in target units; binary baselines carry their own decision threshold, chosen on val like the network's.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from scipy import sparse

from tabml.data.preprocessing import SplitArrays
from tabml.evaluation.metrics import recorded_threshold

if TYPE_CHECKING:
    import pandas as pd

    from tabml.data.preprocessing import PreprocessState

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


@dataclass(frozen=True)
class RawColumns:
    """Raw design matrices of the three splits, built by `raw_columns`."""

    train: sparse.csr_matrix
    val: sparse.csr_matrix
    test: sparse.csr_matrix


def raw_columns(frames: Mapping[str, pd.DataFrame], state: PreprocessState) -> RawColumns:
    """Pure: raw table rows of the splits `train`, `val`, `test` -> standardised numerics (median-imputed,
    unclipped) + one-hot categories (every train level, missing its own level), all fitted on train. The state
    says which columns are features and of which kind (datetime columns enter as their numeric parts)."""
    import pandas as pd

    from tabml.data.preprocessing import as_text, numeric_source

    names = ("train", "val", "test")
    kinds = {c.name: c.kind for c in state.input_schema}
    blocks: dict[str, list[sparse.spmatrix]] = {s: [] for s in names}
    columns: dict[str, list[np.ndarray]] = {s: [] for s in names}
    for feature in state.numeric:
        values = {s: numeric_source(frames[s], feature) for s in names}
        finite = values["train"][np.isfinite(values["train"])]
        fill = float(np.median(finite)) if finite.size else 0.0
        filled = {s: np.where(np.isfinite(v), v, fill) for s, v in values.items()}
        mean, std = float(filled["train"].mean()), float(filled["train"].std()) or 1.0
        for s in names:
            columns[s].append((filled[s] - mean) / std)
    for s in names:
        dense = np.column_stack(columns[s]) if columns[s] else np.zeros((len(frames[s]), 0))
        blocks[s].append(sparse.csr_matrix(dense))
    for column in state.categorical:
        text = {s: as_text(frames[s][column.name], kinds[column.name]).fillna("\0missing") for s in names}
        levels = pd.Index(sorted(text["train"].unique()))
        for s in names:
            codes = levels.get_indexer(text[s])
            inside = codes >= 0
            one_hot = (np.ones(int(inside.sum())), (np.flatnonzero(inside), codes[inside]))
            blocks[s].append(sparse.csr_matrix(one_hot, shape=(len(codes), len(levels))))
    built = {s: sparse.hstack(blocks[s], format="csr") for s in names}
    return RawColumns(built["train"], built["val"], built["test"])


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
    train: SplitArrays,
    val: SplitArrays,
    test: SplitArrays,
    task: str,
    n_classes: int,
    l2: float,
    raw: RawColumns | None = None,
) -> BaselinePrediction:
    """L2 logistic regression (binary, multiclass) or ridge (regression) on numerics + one-hot categories:
    the raw columns when given, else the network's encoded inputs."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression, Ridge

    if raw is not None:
        x_train, x_val, x_test = raw.train, raw.val, raw.test
    else:
        splits = (train, val, test)
        levels = [max(int(s.x_cat[:, i].max(initial=0)) for s in splits) + 1 for i in range(train.x_cat.shape[1])]
        x_train, x_val, x_test = (design_matrix(s, levels) for s in splits)
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
    val_scores = logistic.predict_proba(x_val)[:, list(logistic.classes_).index(1)]
    threshold = recorded_threshold(val_scores, val.y)  # as tasks.evaluate records the network's
    return BaselinePrediction("linear", full[:, 1], threshold)


def fit_baselines(
    train: SplitArrays,
    val: SplitArrays,
    test: SplitArrays,
    task: str,
    n_classes: int,
    l2: float,
    raw: RawColumns | None = None,
) -> list[BaselinePrediction]:
    """Pure: both baselines' test predictions (the linear one on `raw` columns when given)."""
    return [majority(train, len(test), task, n_classes), linear(train, val, test, task, n_classes, l2, raw)]
