import numpy as np
import pytest

from tabml.data.preprocessing import SplitArrays
from tabml.evaluation.baselines import design_matrix, fit_baselines, majority
from tabml.evaluation.metrics import task_metrics


def split(rng: np.random.Generator, n: int, task: str) -> SplitArrays:
    x_num = rng.normal(size=(n, 3)).astype(np.float32)
    x_cat = rng.integers(0, 4, size=(n, 2))
    signal = x_num[:, 0] + (x_cat[:, 0] == 2)
    if task == "regression":
        y = (10 + 3 * signal + rng.normal(0, 0.5, n)).astype(np.float32)
    elif task == "binary":
        y = (signal + rng.normal(0, 0.5, n) > 0.8).astype(np.int64)
    else:
        y = np.digitize(signal + rng.normal(0, 0.3, n), [0.0, 1.0]).astype(np.int64)
    return SplitArrays(x_num, x_cat, y)


@pytest.mark.parametrize(("task", "metric"), [("binary", "auroc"), ("multiclass", "accuracy"), ("regression", "r2")])
def test_the_linear_baseline_learns_and_the_majority_baseline_does_not(task: str, metric: str) -> None:
    rng = np.random.default_rng(0)
    train, val, test = split(rng, 600, task), split(rng, 200, task), split(rng, 300, task)
    n_classes = {"binary": 2, "multiclass": 3, "regression": 0}[task]
    trivial, linear = fit_baselines(train, val, test, task, n_classes, l2=1.0)
    scores = {b.name: task_metrics(task, b.test_scores, test.y, b.threshold)[metric] for b in (trivial, linear)}
    assert scores["linear"] > scores["majority"] + 0.2
    if task == "binary":
        assert scores["majority"] == 0.5 and 0 < linear.threshold < 1  # type: ignore[operator]


def test_majority_predicts_the_most_frequent_class_and_the_mean() -> None:
    train = SplitArrays(np.zeros((4, 0), np.float32), np.zeros((4, 0), np.int64), np.array([0, 0, 0, 1]))
    binary = majority(train, 3, "binary", 2)
    assert binary.test_scores.tolist() == [0.25] * 3 and binary.threshold == 1.0  # every row: the negative class
    assert majority(train, 2, "multiclass", 3).test_scores.tolist() == [[0.75, 0.25, 0.0]] * 2
    reg = SplitArrays(train.x_num, train.x_cat, np.array([1.0, 2.0, 3.0, 6.0], np.float32))
    assert majority(reg, 2, "regression", 0).test_scores.tolist() == [3.0, 3.0]


def test_codes_never_seen_in_training_get_no_column_of_their_own() -> None:
    arrays = SplitArrays(np.ones((2, 1), np.float32), np.array([[1], [7]]), np.zeros(2, np.int64))
    x = design_matrix(arrays, [3]).toarray()
    assert x.tolist() == [[1.0, 0.0, 1.0, 0.0], [1.0, 0.0, 0.0, 0.0]]


def test_the_linear_baseline_reads_raw_columns_unclipped_with_every_train_level() -> None:
    import pandas as pd
    import yaml

    from tabml.core.params import PreprocessParams
    from tabml.data.column_types import ColumnDecision
    from tabml.data.preprocessing import fit_state
    from tabml.data.target import TargetEncoding
    from tabml.evaluation.baselines import raw_columns
    from tests.workspace import EXAMPLE_PARAMS

    train = pd.DataFrame({"delay": [0.0, 1.0, 2.0, None, 1000.0], "city": ["a", "b", "b", None, "c"]})
    test = pd.DataFrame({"delay": [5000.0], "city": ["zzz"]})
    decisions = [ColumnDecision("delay", "numeric", ""), ColumnDecision("city", "categorical", "")]
    example = yaml.safe_load(EXAMPLE_PARAMS.read_text())["preprocess"]
    p = PreprocessParams.model_validate({**example, "max_levels": 2, "min_level_count": 2})
    state = fit_state(train, decisions, TargetEncoding(task="regression", column="y", labels=None), p, None)
    raw = raw_columns({"train": train, "val": train, "test": test}, state)
    x_train, x_test = raw.train.toarray(), raw.test.toarray()
    assert x_train.shape == (5, 1 + 4)  # every train level (a, b, c, missing), not the network's top 2
    assert abs(x_train[:, 0].mean()) < 1e-9 and x_test[0, 0] > 10  # standardised, never clipped
    assert x_test[0, 1:].tolist() == [0.0, 0.0, 0.0, 0.0]  # an unseen level: all zero
