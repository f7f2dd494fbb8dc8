"""The fast JSON path gives the arrays the batch path (pandas, tabml.data.preprocessing) gives, or hands over."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tabml.data.preprocessing import PreprocessState
from tabml.serve.checks import Policy
from tabml.serve.encoding import Fallback, Plan, batch_encode, encode, fast_encode
from tests.serve_process import FIXTURE

STATE = PreprocessState.model_validate_json((FIXTURE / "credit/versions/v1/preprocess_state.json").read_text())
ROWS = pd.read_csv(FIXTURE / "rows.csv")
WARN = Policy(unknown_levels="warn", out_of_range="warn", range_margin=0.5)
REFUSE = Policy(unknown_levels="refuse", out_of_range="refuse", range_margin=0.5)
PLAN = Plan.of(STATE, WARN)


def as_json(frame: pd.DataFrame) -> dict[str, list]:
    return {c: frame[c].astype(object).where(frame[c].notna(), None).tolist() for c in frame.columns}


def test_the_fast_path_gives_the_batch_arrays() -> None:
    fast = fast_encode(as_json(ROWS), len(ROWS), PLAN)
    slow = batch_encode(ROWS, STATE, WARN)
    np.testing.assert_array_equal(fast.arrays.x_num, slow.arrays.x_num)
    np.testing.assert_array_equal(fast.arrays.x_cat, slow.arrays.x_cat)


def test_numbers_sent_as_text_and_unknown_levels_agree_with_the_batch_path() -> None:
    columns = as_json(ROWS.head(4))
    columns["Age"] = [" 41", "30.5", None, "400"]
    columns["Home"] = ["rent", "castle", None, " owner "]
    columns["Records"] = ["YES", True, "no", None]
    fast = fast_encode(columns, 4, PLAN)
    slow = batch_encode(pd.DataFrame(columns), STATE, WARN)
    np.testing.assert_array_equal(fast.arrays.x_num, slow.arrays.x_num)
    np.testing.assert_array_equal(fast.arrays.x_cat, slow.arrays.x_cat)
    cells = [(3, "Age"), (1, "Home")]  # 400 is far beyond the training ages
    assert [(w.row, w.column) for w in fast.warnings] == [(w.row, w.column) for w in slow.warnings] == cells
    assert fast.warnings[0].message.startswith("400 is outside the training range [")
    refused = fast_encode(columns, 4, Plan.of(STATE, REFUSE))
    assert [(e.row, e.column) for e in refused.errors] == cells


@pytest.mark.parametrize("value", ["1,200", "12%", "forty", True])
def test_values_the_fast_path_does_not_read_take_the_batch_path(value: object) -> None:
    columns = as_json(ROWS.head(2))
    columns["Amount"] = [value, 800]
    with pytest.raises(Fallback):
        fast_encode(columns, 2, PLAN)
    both = encode(columns, 2, PLAN)
    slow = batch_encode(pd.DataFrame(columns), STATE, WARN)
    assert [(e.row, e.column) for e in both.errors] == [(e.row, e.column) for e in slow.errors]
    if not both.errors:
        np.testing.assert_array_equal(both.arrays.x_num, slow.arrays.x_num)
