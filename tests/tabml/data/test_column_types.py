import numpy as np
import pandas as pd

from tabml.core.params import load_params
from tabml.data.column_types import infer_column, infer_column_kinds
from tests.workspace import EXAMPLE_PARAMS

P = load_params(EXAMPLE_PARAMS).preprocess


def kind(name: str, values: list | pd.Series) -> str:
    return infer_column(name, pd.Series(values), P).kind


def test_numbers_stored_as_text_become_numeric() -> None:
    assert kind("amount", [" 1,200.5", "30", "12.0", None] * 20) == "numeric"


def test_zip_like_codes_with_leading_zeros_stay_categorical() -> None:
    assert kind("zip", ["02134", "10001", "94105", "02134"] * 20) == "categorical"


def test_integer_area_codes_are_categorical_by_name() -> None:
    assert kind("area_code", [408, 415, 510] * 30) == "categorical"


def test_yes_no_strings_are_boolean() -> None:
    assert kind("intl_plan", ["yes", "no", "Yes", None] * 10) == "boolean"


def test_date_strings_are_datetime() -> None:
    assert kind("signup", ["2024-01-03", "2023-12-30 10:00", "2022-07-01"] * 10) == "datetime"


def test_constant_and_all_null_columns_are_dropped_with_a_reason() -> None:
    constant = infer_column("c", pd.Series(["x"] * 10), P)
    empty = infer_column("e", pd.Series([None] * 10, dtype=object), P)
    assert (constant.kind, empty.kind) == ("drop", "drop")
    assert "constant" in constant.reason and "missing" in empty.reason


def test_unique_strings_are_identifiers_and_long_ones_free_text() -> None:
    ids = [f"CUST-{i:05d}" for i in range(200)]
    text = [f"customer wrote a long complaint about item {i} and the delivery" for i in range(200)]
    assert "identifier" in infer_column("customer", pd.Series(ids), P).reason
    assert "free text" in infer_column("notes", pd.Series(text), P).reason


def test_high_cardinality_strings_stay_categorical_with_capped_levels() -> None:
    rng = np.random.default_rng(0)
    values = pd.Series(rng.choice([f"lvl{i}" for i in range(4000)], 20000))
    decision = infer_column("merchant", values, P)
    assert decision.kind == "categorical" and "other" in decision.reason


def test_roles_and_overrides_win_over_inference() -> None:
    params = load_params(EXAMPLE_PARAMS).data.model_copy(
        update={"target": "y", "id_column": "id", "drop_columns": ["leak"], "column_types": {"n": "categorical"}}
    )
    frame = pd.DataFrame({"y": [0, 1] * 5, "id": range(10), "leak": range(10), "n": range(10), "x": range(10)})
    kinds = {d.name: d.kind for d in infer_column_kinds(frame, params, P)}
    assert kinds == {"y": "drop", "id": "drop", "leak": "drop", "n": "categorical", "x": "numeric"}
