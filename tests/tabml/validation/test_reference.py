"""The reference: column kinds, what derive_reference records, and its reviewable JSON file."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tabml.core.params import DataParams, DriftParams, ValidateParams
from tabml.validation.drift import OTHER, CategoricalProfile, NumericProfile
from tabml.validation.reference import Reference, column_kind, derive_reference, label

LIMITS = ValidateParams(
    report=Path("reports/validation.json"),
    data_docs=Path("reports/validation.html"),
    quarantine_dir=Path("quarantine"),
    reference_dir=Path("references"),
    min_rows=4,
    max_null_fraction_margin=0.1,
    range_margin=0.5,
    max_categories_checked=3,
    drift=DriftParams(threshold=0.25, action="block", bins=4, min_rows=1000),  # tiny frames: drift not assessed
)


def data_params(**overrides: object) -> DataParams:
    values = {"name": "toy", "path": "toy.csv", "target": "y", "task": "binary", "positive_class": "1"}
    return DataParams.model_validate(values | overrides)


def toy() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "id": [1, 2, 3, 4, 5, 6],
            "age": [10, 20, 15, 12, 18, 11],
            "income": [1.0, None, 3.0, 2.0, 2.5, 1.5],
            "city": ["a", "b", "a", "c", "b", "a"],
            "note": ["p", "q", "r", "s", "t", "u"],
            "y": [0, 1, 0, 1, 0, 0],
        }
    )


@pytest.mark.parametrize(
    ("series", "kind"),
    [
        (pd.Series([1, 2]), "integer"),
        (pd.Series([1.5, None]), "numeric"),
        (pd.Series([True, False]), "boolean"),
        (pd.Series([True, None], dtype=object), "boolean"),
        (pd.Series(["a", None]), "string"),
        (pd.Series(["a", "b"], dtype=object), "string"),
        (pd.Series(["a", "b"], dtype="category"), "string"),
        (pd.Series(pd.to_datetime(["2024-01-01", None], utc=True)), "datetime"),
    ],
)
def test_column_kind(series: pd.Series, kind: str) -> None:
    assert column_kind(series) == kind


def test_label_compares_file_values_as_text() -> None:
    assert [label(v) for v in (1, 1.0, True, "yes")] == ["1", "1", "True", "yes"]


def test_derive_reference_widens_ranges_caps_categories_and_profiles_columns() -> None:
    data = data_params(id_column="id", drop_columns=["note"])
    ref = derive_reference(toy(), data, LIMITS, snapshot="snap.parquet")
    cols = ref.columns
    assert "note" not in cols
    assert (cols["age"].kind, cols["age"].min, cols["age"].max) == ("integer", 5, 25)  # 10..20 ± 0.5 × 10
    assert cols["income"].kind == "numeric"
    assert cols["income"].max_null_fraction == pytest.approx(1 / 6 + 0.1, abs=1e-6)
    assert cols["city"].allowed_values == ["a", "b", "c"]
    assert cols["id"].min is None and cols["id"].max is None  # new ids are not out of range
    assert cols["y"].min is None and ref.target.classes == [0, 1]
    assert ref.row_count.min == LIMITS.min_rows and ref.id_column == "id"
    # drift profiles: quantile bins for numbers, shares for categories and the target; none for the id
    assert isinstance(cols["age"].profile, NumericProfile) and len(cols["age"].profile.cuts) == 3
    assert sum(cols["age"].profile.fractions) == pytest.approx(1)
    assert isinstance(cols["city"].profile, CategoricalProfile)
    assert cols["city"].profile.fractions == pytest.approx({"a": 0.5, "b": 1 / 3, "c": 1 / 6, OTHER: 0}, abs=1e-6)
    assert isinstance(cols["y"].profile, NumericProfile) and cols["id"].profile is None
    assert set(ref.profiles()) == {"age", "income", "city", "y"}


def test_derive_reference_regression_target_and_many_categories() -> None:
    df = toy().assign(city=list("abcdef"))
    ref = derive_reference(df, data_params(task="regression", positive_class=None), LIMITS, snapshot="s")
    assert ref.columns["city"].allowed_values is None  # 6 distinct > max_categories_checked
    assert ref.target.classes is None
    assert ref.columns["y"].min is not None


def test_reference_json_round_trip_keeps_label_types_and_reads_easily() -> None:
    df = toy().assign(y=[True, False] * 3)
    ref = derive_reference(df, data_params(positive_class="True"), LIMITS, snapshot="s")
    text = ref.to_json_text()
    assert "allowed_values" not in json.loads(text)["columns"]["age"]  # keys that do not apply are left out
    assert '"allowed_values": ["a", "b", "c"]' in text  # lists of plain values on one line
    assert '"classes": [false, true]' in text
    again = Reference.model_validate_json(text)
    assert again == ref and again.target.classes == [False, True]
    assert isinstance(again.columns["y"].profile, CategoricalProfile)  # a boolean target: shares of True/False


def test_flattening_lists_leaves_text_with_brackets_alone() -> None:
    df = pd.DataFrame({"y": [0, 1] * 3, "code": ["a ]", "[b]", "c,\td", "a ]", "[b]", "c,\td"]})
    ref = derive_reference(df, data_params(), LIMITS, snapshot="s")
    assert Reference.model_validate_json(ref.to_json_text()).columns["code"].allowed_values == ["[b]", "a ]", "c,\td"]


def test_a_reference_without_profiles_still_loads() -> None:
    ref = derive_reference(toy(), data_params(), LIMITS, snapshot="s").to_json_dict()
    for column in ref["columns"].values():
        column.pop("profile", None)
    assert Reference.model_validate(ref).profiles() == {}


def test_non_finite_and_empty_numeric_columns_get_no_range_or_profile() -> None:
    df = toy().assign(income=[np.inf, np.nan, -np.inf, np.nan, np.nan, np.nan])
    column = derive_reference(df, data_params(), LIMITS, snapshot="s").columns["income"]
    assert column.min is None and column.profile is None


def test_ranges_never_cross_zero_for_one_signed_columns_and_stay_whole_for_whole_values() -> None:
    frame = pd.DataFrame(
        {
            "age": [19.0, 25.0, None, 70.0, 33.0, 41.0],  # whole numbers, float only because of the null
            "amount": [0.5, 120.25, 3000.0, 8.75, 14.0, 99.5],  # never negative
            "loss": [-3.5, -0.25, -10.0, -1.0, -2.0, -7.5],  # never positive
            "zip": [10001, 94105, 60601, 2139, 73301, 98101],  # a code stored as a number
            "delta": [-2.5, 1.5, 0.0, 3.0, -1.0, 2.0],  # both signs: widened both ways
            "y": [0, 1, 0, 1, 0, 0],
        }
    )
    cols = derive_reference(frame, data_params(), LIMITS, snapshot="snap.parquet").columns
    assert (cols["age"].min, cols["age"].max) == (0, 96)  # 19..70 ± 25.5, floored at 0, whole
    assert isinstance(cols["age"].min, int) and isinstance(cols["age"].max, int)
    assert cols["amount"].min == 0.0 and cols["amount"].max == pytest.approx(3000.0 + 0.5 * 2999.5)
    assert cols["loss"].max == 0.0 and cols["loss"].min == pytest.approx(-10.0 - 0.5 * 9.75)
    assert cols["zip"].min == 0 and cols["zip"].max == 98101 + 47981  # 2139..98101 widened by half the span
    assert (cols["delta"].min, cols["delta"].max) == (-5.25, 5.75)
