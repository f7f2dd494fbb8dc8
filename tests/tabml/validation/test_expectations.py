"""The reference profile, the GX suite built from it, and the pandas-only rules, on tiny frames."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tabml.core.params import DataParams
from tabml.validation.drift import ColumnDrift
from tabml.validation.expectations import Reference, build_expectations, drift_checks, problems, validate_frame
from tabml.validation.reference import derive_reference
from tests.tabml.validation.test_reference import LIMITS, data_params, toy


def failures(df: pd.DataFrame, ref: Reference, data: DataParams, **kw: object) -> list[str]:
    return validate_frame(df, ref, data, LIMITS, **kw).problems("error")  # type: ignore[arg-type]


def test_build_expectations_skips_missing_and_mistyped_columns() -> None:
    data = data_params(id_column="id")
    ref = derive_reference(toy(), data, LIMITS, snapshot="s")
    every = build_expectations(ref, skip=set(), min_rows=10)
    kinds = [type(e).__name__ for e in every]
    assert kinds[:2] == ["ExpectTableColumnsToMatchSet", "ExpectTableRowCountToBeBetween"]
    per_column = {  # aggregate expectations only: GX copies the whole table for each per-value one
        "ExpectColumnValuesToNotBeNull",
        "ExpectColumnQuantileValuesToBeBetween",
        "ExpectColumnDistinctValuesToBeInSet",
        "ExpectColumnProportionOfUniqueValuesToBeBetween",
    }
    assert set(kinds[2:]) == per_column
    assert kinds.count("ExpectColumnQuantileValuesToBeBetween") == 2  # one range per numeric column: age, income
    assert every[1].configuration.kwargs["min_value"] == 10  # params.min_rows wins over a laxer reference
    fewer = build_expectations(ref, skip={"age", "id"}, min_rows=1)
    assert all(getattr(e, "column", None) not in {"age", "id"} for e in fewer)


def test_same_frame_passes_and_new_column_only_warns() -> None:
    data = data_params(id_column="id")
    ref = derive_reference(toy(), data, LIMITS, snapshot="s")
    result = validate_frame(toy().assign(extra=1), ref, data, LIMITS)
    assert problems(result.checks, "error") == []
    assert result.problems("warning") == ["column 'extra' is not in the reference (a new column); it is not checked"]
    assert {c.name for c in result.checks} >= {"columns_present", "row_count", "not_null", "range", "unique_id"}
    assert {d.column: d.psi for d in result.drift} == dict.fromkeys(
        ["age", "income", "city", "note", "y"]
    )  # too few rows


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
    assert errors.count("column 'age'") == 1
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


def shifted(n: int = 2000, shift: float = 0.0, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "amount": rng.normal(100 + shift, 10, n),
            "city": rng.choice(["a", "b", "c"], n, p=[0.6, 0.3, 0.1]),
            "y": rng.integers(0, 2, n),
        }
    )


DRIFT = LIMITS.model_copy(update={"drift": LIMITS.drift.model_copy(update={"min_rows": 500})})


def test_a_fresh_sample_is_stable_and_a_shift_blocks_naming_the_column() -> None:
    data = data_params()
    ref = derive_reference(shifted(), data, DRIFT, snapshot="s")
    stable = validate_frame(shifted(seed=1), ref, data, DRIFT)
    assert stable.problems("error") == [] and all(d.psi is not None and d.psi < 0.05 for d in stable.drift)
    moved = validate_frame(shifted(shift=10, seed=1), ref, data, DRIFT)  # one standard deviation
    [error] = moved.problems("error")
    assert error.startswith("column 'amount': distribution shifted, PSI ") and "> 0.25" in error
    [amount] = [d for d in moved.drift if d.column == "amount"]
    assert amount.drifted and amount.psi is not None and amount.psi > 0.25


def test_drift_warns_or_is_ignored_per_params() -> None:
    data = data_params()
    ref = derive_reference(shifted(), data, DRIFT, snapshot="s")
    moved = shifted(shift=10, seed=1)
    warn = DRIFT.model_copy(update={"drift": DRIFT.drift.model_copy(update={"action": "warn"})})
    result = validate_frame(moved, ref, data, warn)
    assert result.problems("error") == [] and "column 'amount': distribution shifted" in result.problems("warning")[0]
    ignore = DRIFT.model_copy(update={"drift": DRIFT.drift.model_copy(update={"columns": {"amount": "ignore"}})})
    result = validate_frame(moved, ref, data, ignore)
    assert result.problems("error") == result.problems("warning") == []
    assert [d.note for d in result.drift if d.column == "amount"] == ["ignored (validate.drift.columns)"]


def test_drift_checks_turn_assessed_columns_into_checks() -> None:
    common = {"threshold": 0.25, "bins": ["a", "b"], "reference": [0.5, 0.5]}
    drift = [
        ColumnDrift("x", 0.4, action="block", drifted=True, current=[0.9, 0.1], **common),  # type: ignore[arg-type]
        ColumnDrift("y", 0.4, action="warn", drifted=True, current=[0.1, 0.9], **common),  # type: ignore[arg-type]
        ColumnDrift("z", 0.01, action="block", drifted=False, current=[0.5, 0.5], **common),  # type: ignore[arg-type]
        ColumnDrift("w", None, action="block", drifted=False, current=[0.5, 0.5], note="few", **common),  # type: ignore[arg-type]
    ]
    checks = drift_checks(drift)
    assert [(c.column, c.severity, c.success) for c in checks] == [
        ("x", "error", False),
        ("y", "warning", False),
        ("z", "error", True),
    ]
    assert "bin 'a' moved most: 50.0% of values in the reference, 90.0% now" in checks[0].message


def test_range_fails_on_either_side_and_ignores_nulls() -> None:
    data = data_params()
    ref = derive_reference(toy(), data, LIMITS, snapshot="s")
    both = failures(toy().assign(age=[-50, 20, 15, 12, 18, 99]), ref, data)
    assert both == ["column 'age': 2 value(s) outside [5, 25], e.g. [-50, 99]"]
    empty = validate_frame(toy().assign(income=[np.nan] * 6), ref, data, LIMITS)
    assert empty.problems("error") == ["column 'income': 100.0% nulls (6 rows), the reference allows at most 26.7%"]
    assert not [c for c in empty.checks if c.column == "income" and c.name == "range"]  # nothing to compare
