import pandas as pd
import pytest

from tabml.core.errors import StageError
from tabml.core.params import load_params
from tabml.data.target import encode_target, fit_target, label_text, present_rows
from tests.workspace import EXAMPLE_PARAMS

DATA = load_params(EXAMPLE_PARAMS).data


def data(**update: object):
    return DATA.model_copy(update={"target": "t", **update})


def test_binary_labels_put_the_positive_class_last() -> None:
    enc = fit_target(pd.Series(["no", "yes", "no"] * 3), data(positive_class="yes"))
    assert enc.labels == ["no", "yes"]
    assert encode_target(pd.Series(["yes", "no"]), enc).tolist() == [1, 0]


def test_positive_class_matches_numbers_read_as_floats() -> None:
    target = pd.Series([0.0, 1.0, None, 1.0] * 3).dropna()
    assert label_text(target).tolist()[:2] == ["0", "1"]
    assert fit_target(target, data(positive_class="1")).labels == ["0", "1"]


def test_positive_class_that_never_occurs_lists_the_values() -> None:
    with pytest.raises(StageError, match=r"never occurs.*\['bad', 'good'\]"):
        fit_target(pd.Series(["good", "bad"] * 3), data(positive_class="default"))


def test_single_class_target_is_a_clear_error() -> None:
    with pytest.raises(StageError, match="single class"):
        fit_target(pd.Series(["a"] * 10), data(positive_class="a"))


def test_binary_task_with_three_classes_suggests_multiclass() -> None:
    with pytest.raises(StageError, match="multiclass"):
        fit_target(pd.Series(["a", "b", "c"] * 3), data(positive_class="a"))


def test_regression_target_that_is_not_numeric_names_the_values() -> None:
    with pytest.raises(StageError, match="not numeric.*'n/a'"):
        fit_target(pd.Series(["1.5", "2", "n/a"] * 3), data(task="regression"))


def test_missing_targets_are_not_present_rows() -> None:
    assert present_rows(pd.Series([1.0, None, 2.0])).tolist() == [True, False, True]
    assert present_rows(pd.Series(["a", "", None, "b"])).tolist() == [True, False, False, True]
