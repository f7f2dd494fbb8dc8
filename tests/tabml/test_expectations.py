"""The reference profile, the GX suite built from it, and the pandas-only rules, on tiny frames."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tabml.expectations import (
    Reference,
    build_expectations,
    column_kind,
    derive_reference,
    label,
    problems,
    validate_frame,
)
from tabml.params import DataParams, ValidateParams

LIMITS = ValidateParams(
    report=Path("reports/validation.json"),
    reference_dir=Path("references"),
    min_rows=4,
    max_null_fraction_margin=0.1,
    range_margin=0.5,
    max_categories_checked=3,
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


def failures(df: pd.DataFrame, ref: Reference, data: DataParams, **kw: object) -> list[str]:
    return problems(validate_frame(df, ref, data, LIMITS, **kw), "error")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("series", "kind"),
    [
        (pd.Series([1, 2]), "integer"),
        (pd.Series([1.5, None]), "numeric"),
        (pd.Series([True, False]), "boolean"),
        (pd.Series([True, None], dtype=object), "boolean"),
        (pd.Series(["a", None]), "string"),
        (pd.Series(["a", "b"], dtype=object), "string"),
        (pd.Series(pd.to_datetime(["2024-01-01", None], utc=True)), "datetime"),
    ],
)
def test_column_kind(series: pd.Series, kind: str) -> None:
    assert column_kind(series) == kind


def test_label_compares_file_values_as_text() -> None:
    assert [label(v) for v in (1, 1.0, True, "yes")] == ["1", "1", "True", "yes"]


def test_derive_reference_widens_ranges_and_caps_categories() -> None:
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


def test_derive_reference_regression_target_and_many_categories() -> None:
    df = toy().assign(city=list("abcdef"))
    ref = derive_reference(df, data_params(task="regression", positive_class=None), LIMITS, snapshot="s")
    assert ref.columns["city"].allowed_values is None  # 6 distinct > max_categories_checked
    assert ref.target.classes is None
    assert ref.columns["y"].min is not None


def test_reference_json_round_trip_keeps_label_types() -> None:
    df = toy().assign(y=[True, False] * 3)
    ref = derive_reference(df, data_params(positive_class="True"), LIMITS, snapshot="s")
    text = json.dumps(ref.to_json_dict(), indent=2)
    assert "allowed_values" not in json.loads(text)["columns"]["age"]  # keys that do not apply are left out
    again = Reference.model_validate_json(text)
    assert again == ref and again.target.classes == [False, True]


def test_build_expectations_skips_missing_and_mistyped_columns() -> None:
    data = data_params(id_column="id")
    ref = derive_reference(toy(), data, LIMITS, snapshot="s")
    every = build_expectations(ref, skip=set(), min_rows=10)
    kinds = [type(e).__name__ for e in every]
    assert kinds[:2] == ["ExpectTableColumnsToMatchSet", "ExpectTableRowCountToBeBetween"]
    per_column = {"ExpectColumnValuesToBeBetween", "ExpectColumnValuesToBeInSet", "ExpectColumnValuesToBeUnique"}
    assert per_column <= set(kinds)
    assert every[1].configuration.kwargs["min_value"] == 10  # params.min_rows wins over a laxer reference
    fewer = build_expectations(ref, skip={"age", "id"}, min_rows=1)
    assert all(getattr(e, "column", None) not in {"age", "id"} for e in fewer)


def test_same_frame_passes_and_new_column_only_warns() -> None:
    data = data_params(id_column="id")
    ref = derive_reference(toy(), data, LIMITS, snapshot="s")
    checks = validate_frame(toy().assign(extra=1), ref, data, LIMITS)
    assert problems(checks, "error") == []
    assert problems(checks, "warning") == ["column 'extra' is not in the reference (a new column); it is not checked"]


def test_integers_loaded_as_floats_are_still_integers() -> None:
    data = data_params()
    ref = derive_reference(toy(), data, LIMITS, snapshot="s")
    assert failures(toy().assign(age=[10.0, 20.0, 15.0, 12.0, 18.0, np.nan]), ref, data) == [
        "column 'age': 16.7% nulls (1 rows), the reference allows at most 10.0%"  # a null, but no type change
    ]
    assert "type changed" in failures(toy().assign(age=[10.5, 20, 15, 12, 18, 11]), ref, data)[0]


def test_value_failures_name_column_and_examples() -> None:
    data = data_params(id_column="id")
    ref = derive_reference(toy(), data, LIMITS, snapshot="s")
    bad = toy().assign(id=[1, 1, 3, 4, 5, 6], age=[10, 99, 15, 12, 18, 11], city=["a", "z", "a", "c", "b", "a"])
    errors = " | ".join(failures(bad, ref, data))
    assert "column 'age': 1 value(s) outside [5, 25], e.g. [99]" in errors
    assert "column 'city': 1 row(s) with unseen categories, e.g. 'z'" in errors
    assert "column 'id': 2 row(s) with duplicate ids, e.g. '1'" in errors


def test_numbers_as_strings_and_non_finite_values() -> None:
    data = data_params()
    ref = derive_reference(toy(), data, LIMITS, snapshot="s")
    as_text = toy().assign(income=["1.0", None, "3", "2", "n/a", "1.5"])
    [error] = failures(as_text, ref, data)
    assert error.startswith("column 'income': numbers stored as strings (4 of 5 values")
    assert "'n/a'" in error
    inf = toy().assign(income=[1.0, np.inf, 3.0, 2.0, 2.5, 1.5])
    assert "column 'income': 1 NaN and 1 ±inf value(s)" in " ".join(failures(inf, ref, data, nan_counts={"income": 1}))


@pytest.mark.parametrize(
    ("task", "positive", "y", "expected"),
    [
        ("binary", "1", [0] * 6, "a binary task needs exactly 2 classes, found 1: '0'"),
        ("binary", "yes", [0, 1] * 3, "positive_class 'yes' not among '0', '1'"),
        ("multiclass", None, [2] * 6, "a multiclass task needs at least 2 classes"),
        ("regression", None, list("abcdef"), "regression needs a numeric target"),
    ],
)
def test_target_rules(task: str, positive: str | None, y: list[object], expected: str) -> None:
    data = data_params(task=task, positive_class=positive)
    df = toy().assign(y=y)
    ref = derive_reference(df, data, LIMITS, snapshot="s")
    assert any(expected in e for e in failures(df, ref, data))


def test_missing_column_and_too_few_rows() -> None:
    data = data_params()
    ref = derive_reference(toy(), data, LIMITS, snapshot="s")
    errors = failures(toy().head(3).rename(columns={"city": "town"}), ref, data)
    assert any("missing column(s) 'city'" in e and "'town'" in e for e in errors)
    assert "3 rows, expected at least 4 and at most any" in errors
