"""Drift profiles and the population stability index, on small frames with known answers."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from tabml.core.params import DriftParams
from tabml.validation.drift import (
    OTHER,
    CategoricalProfile,
    NumericProfile,
    assess_drift,
    categorical_profile,
    column_drift,
    current_shares,
    numeric_profile,
    psi,
)

DRIFT = DriftParams(threshold=0.25, action="block", bins=4, min_rows=10)


def test_psi_is_zero_for_equal_shares_and_grows_with_the_shift() -> None:
    assert psi([0.25] * 4, [0.25] * 4) == 0
    small, large = psi([0.5, 0.5], [0.55, 0.45]), psi([0.5, 0.5], [0.9, 0.1])
    assert 0 < small < 0.1 < 0.25 < large
    assert large == pytest.approx(0.4 * math.log(0.9 / 0.5) + (-0.4) * math.log(0.1 / 0.5))


def test_an_empty_reference_bin_gives_a_large_finite_psi() -> None:
    value = psi([1.0, 0.0], [0.7, 0.3])
    assert math.isfinite(value) and value > 2


def test_numeric_profile_uses_quantile_bins_of_finite_values() -> None:
    s = pd.Series([*range(1, 101), np.nan, np.inf])
    profile = numeric_profile(s, bins=4)
    assert profile is not None and profile.cuts == [25, 50, 75]  # values of the column, not interpolated
    assert profile.fractions == [0.24, 0.25, 0.25, 0.26]
    assert numeric_profile(pd.Series([np.nan, np.inf]), bins=4) is None


def test_a_column_with_few_values_gets_fewer_bins() -> None:
    profile = numeric_profile(pd.Series([0] * 80 + [1] * 20), bins=10)
    assert profile is not None and profile.cuts == [0.0, 1.0]  # repeated quantiles collapse
    assert profile.fractions == [0.0, 0.8, 0.2]


def test_categorical_profile_keeps_the_most_frequent_and_pools_the_rest() -> None:
    s = pd.Series(list("aaaabbbcc") + ["d", None])
    profile = categorical_profile(s, bins=2)
    assert profile is not None
    assert profile.fractions == pytest.approx({"a": 0.4, "b": 0.3, OTHER: 0.3})
    as_category = categorical_profile(s.astype("category"), bins=2)
    assert as_category == profile  # the reader's category dtype changes nothing
    assert categorical_profile(pd.Series([None, None], dtype=object), bins=2) is None


def test_booleans_are_profiled_as_text() -> None:
    profile = categorical_profile(pd.Series([True, False, True, True]), bins=5)
    assert profile is not None and profile.fractions == {"True": 0.75, "False": 0.25, OTHER: 0.0}


def test_current_shares_bin_new_data_like_the_reference() -> None:
    labels, shares, n = current_shares(pd.Series([1, 5, 5, 9, 100]), NumericProfile(cuts=[2, 6], fractions=[0.3] * 3))
    assert labels == ["< 2", "[2, 6)", ">= 6"] and shares == [0.2, 0.4, 0.4] and n == 5
    profile = CategoricalProfile(fractions={"a": 0.5, "b": 0.5, OTHER: 0.0})
    labels, shares, n = current_shares(pd.Series(["a", "z", "z", None]), profile)
    assert labels == ["a", "b", OTHER] and shares == pytest.approx([1 / 3, 0, 2 / 3]) and n == 3


def test_column_drift_flags_a_new_category_and_skips_small_samples() -> None:
    profile = CategoricalProfile(fractions={"a": 0.5, "b": 0.5, OTHER: 0.0})
    same = column_drift("c", pd.Series(["a", "b"] * 10), profile, DRIFT, reference_rows=100)
    assert same.psi == 0 and not same.drifted and same.action == "block"
    new = column_drift("c", pd.Series(["a", "b", "z", "z"] * 5), profile, DRIFT, reference_rows=100)
    assert new.drifted and new.psi is not None and new.psi > 1
    few = column_drift("c", pd.Series(["z"] * 5), profile, DRIFT, reference_rows=100)
    assert few.psi is None and not few.drifted and "5 values, fewer than validate.drift.min_rows (10)" in few.note
    small_reference = column_drift("c", pd.Series(["z"] * 50), profile, DRIFT, reference_rows=3)
    assert small_reference.psi is None


def test_assess_drift_skips_columns_the_snapshot_lacks_and_applies_overrides() -> None:
    profiles: dict[str, NumericProfile | CategoricalProfile] = {
        "x": NumericProfile(cuts=[0.0], fractions=[0.5, 0.5]),
        "gone": CategoricalProfile(fractions={"a": 1.0, OTHER: 0.0}),
    }
    frame = pd.DataFrame({"x": np.r_[np.full(5, -1.0), np.full(45, 1.0)]})
    p = DRIFT.model_copy(update={"columns": {"x": "warn"}})
    [x] = assess_drift(frame, profiles, p, reference_rows=100)
    assert x.column == "x" and x.action == "warn" and x.drifted and x.current == [0.1, 0.9]


def test_dates_are_binned_on_a_time_axis_with_date_labels_whether_stored_as_dates_or_text() -> None:
    from tabml.validation.drift import current_shares, numeric_profile

    days = pd.Series(pd.date_range("2024-01-01", periods=400, freq="D"))
    for column in (days, days.dt.strftime("%Y-%m-%d")):
        profile = numeric_profile(column, bins=4, time=True)
        assert profile is not None and profile.time and len(profile.fractions) == 4  # not one "(other)" bar
        labels, shares, n = current_shares(column, profile)
        assert labels[0] == "< 2024-04-09" and labels[-1].startswith(">= 2024-") and n == 400
        assert shares == profile.fractions
