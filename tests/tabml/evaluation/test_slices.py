import numpy as np
import pandas as pd

from tabml.evaluation.metrics import task_metrics
from tabml.evaluation.slices import MISSING, missing_columns, slice_groups, slice_plot_rows, slice_report


def frame() -> pd.DataFrame:
    return pd.DataFrame({"Home": ["rent", "own", "rent", None, "rent", "own", " own", "other"], "n": range(8)})


def test_groups_keep_values_with_enough_rows_largest_first_and_name_missing_values() -> None:
    groups = slice_groups(frame(), ["Home"], min_rows=1)
    assert list(groups["Home"]) == ["own", "rent", MISSING, "other"]  # " own" is "own"; ties keep sorted order
    assert groups["Home"]["own"].tolist() == [1, 5, 6] and groups["Home"][MISSING].tolist() == [3]
    assert list(slice_groups(frame(), ["Home"], min_rows=3)["Home"]) == ["own", "rent"]
    assert missing_columns(frame(), ["Home", "Job"]) == ["Job"]


def test_a_slice_where_the_metric_is_undefined_is_reported_as_such() -> None:
    y = np.array([0, 1, 0, 1, 1, 0, 1, 0])
    scores = np.linspace(0.1, 0.9, 8)
    groups = {"Home": {"mixed": np.array([0, 1, 2, 3]), "one class": np.array([1, 3])}}
    report = slice_report(groups, lambda rows: task_metrics("binary", scores[rows], y[rows], 0.5))
    mixed, single = report["Home"]
    assert mixed["n"] == 4 and set(mixed["metrics"]) >= {"auroc", "accuracy"}
    assert single["metrics"] is None and "class index(es) [0]" in single["undefined"]
    rows = slice_plot_rows(report, "auroc")
    assert rows == [{"slice": "Home=mixed", "metric": "auroc", "value": mixed["metrics"]["auroc"], "n": 4}]
