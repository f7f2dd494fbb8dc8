"""Distribution drift against the reference profile: population stability index (PSI) per column.

The reference keeps, per column, the share of its values in a few bins: quantile bins for numbers, the most
frequent values for categories (the rest pooled as OTHER). A new snapshot is binned the same way and compared:
PSI = sum over bins of (current - reference) * ln(current / reference). Rules of thumb: below 0.1 stable,
0.1-0.25 a moderate shift, above 0.25 a major one.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict

from tabml.core.params import DriftParams

OTHER = "(other)"  # the bin of every value outside a categorical profile's most frequent ones
FLOOR = 1e-4  # an empty bin counts as this share, so a value appearing from nowhere gives a large, finite PSI
DIGITS = 6
Action = Literal["block", "warn", "ignore"]


class NumericProfile(BaseModel):
    """Quantile bins of the reference's finite values: bin i holds cuts[i-1] <= x < cuts[i]."""

    model_config = ConfigDict(extra="forbid")
    cuts: list[float]
    fractions: list[float]
    time: bool = False  # a date/time column: cuts are seconds since 1970-01-01 UTC, bins labelled as dates


class CategoricalProfile(BaseModel):
    """Share of each of the reference's most frequent values (as text); OTHER holds the rest."""

    model_config = ConfigDict(extra="forbid")
    fractions: dict[str, float]


Profile = NumericProfile | CategoricalProfile


@dataclass(frozen=True)
class ColumnDrift:
    """One column's drift, as the validation report and Data Docs show it."""

    column: str
    psi: float | None  # None: not assessed (see `note`)
    threshold: float
    action: Action
    drifted: bool
    bins: list[str]
    reference: list[float]
    current: list[float]
    note: str = ""


def epoch_seconds(s: pd.Series) -> pd.Series:
    """Dates and times (datetime values or date text) as float seconds since 1970-01-01 UTC; NaN if unparsable."""
    stamps = pd.to_datetime(s, utc=True, errors="coerce", format="mixed")
    return (stamps - pd.Timestamp(0, tz="UTC")) / pd.Timedelta(seconds=1)  # any resolution; NaT -> NaN


def _finite(s: pd.Series, time: bool = False) -> np.ndarray:
    if time:
        numbers = epoch_seconds(s)
    else:
        numbers = s if pd.api.types.is_numeric_dtype(s.dtype) else pd.to_numeric(s, errors="coerce")
    values = numbers.to_numpy(dtype="float64", na_value=np.nan)
    return values[np.isfinite(values)]


def _shares(counts: np.ndarray) -> list[float]:
    total = counts.sum()
    return [round(float(c / total), DIGITS) for c in counts] if total else [0.0] * len(counts)


def _bin_counts(values: np.ndarray, cuts: list[float]) -> np.ndarray:
    """Values per bin, bin i holding cuts[i-1] <= x < cuts[i]: one vectorised comparison per cut (for a profile's
    ten or so cuts, several times faster than a binary search per value)."""
    below = [np.count_nonzero(values < cut) for cut in cuts]
    return np.diff(np.array([0, *below, len(values)]))


def numeric_profile(s: pd.Series, bins: int, time: bool = False) -> NumericProfile | None:
    """Up to `bins` quantile bins of the finite values (of the times, for `time`); None for a column without any."""
    values = _finite(s, time)
    if not len(values):
        return None
    quantiles = np.quantile(values, np.linspace(0, 1, bins + 1)[1:-1], method="inverted_cdf")  # actual values
    digits = 12 if time else DIGITS  # seconds since 1970 need ten digits to stay within a second
    cuts = sorted({float(f"{q:.{digits}g}") for q in quantiles})  # rounded for a readable JSON file
    return NumericProfile(cuts=cuts, fractions=_shares(_bin_counts(values, cuts)), time=time)


def _value_counts(s: pd.Series) -> pd.Series:
    """Non-null values counted by their text (so 1, 1.0 and '1' from different files meet)."""
    counts = s.value_counts(dropna=True)  # on a categorical: per code, fast
    counts = counts[counts > 0]
    counts.index = counts.index.map(str)
    return counts.groupby(level=0).sum()


def categorical_profile(s: pd.Series, bins: int) -> CategoricalProfile | None:
    """Shares of the `bins` most frequent values and of OTHER; None for an all-null column."""
    counts = _value_counts(s)
    if counts.sum() == 0:
        return None
    counts = counts.sort_values(ascending=False, kind="stable")
    top = counts.iloc[:bins]
    shares = _shares(np.append(top.to_numpy(), counts.iloc[bins:].sum()))
    return CategoricalProfile(fractions=dict(zip([*map(str, top.index), OTHER], shares, strict=True)))


def psi(reference: np.ndarray | list[float], current: np.ndarray | list[float]) -> float:
    """Population stability index of two share vectors over the same bins."""
    r = np.maximum(np.asarray(reference, dtype="float64"), FLOOR)
    c = np.maximum(np.asarray(current, dtype="float64"), FLOOR)
    return float(np.sum((c - r) * np.log(c / r)))


def _bin_labels(cuts: list[float], time: bool = False) -> list[str]:
    if not cuts:
        return ["all"]
    shown = [_when(c) for c in cuts] if time else [f"{c:g}" for c in cuts]
    inner = [f"[{lo}, {hi})" for lo, hi in zip(shown, shown[1:], strict=False)]
    return [f"< {shown[0]}", *inner, f">= {shown[-1]}"]


def _when(seconds: float) -> str:
    """A cut of a time profile as a date (and the time of day when it is not midnight), UTC."""
    stamp = pd.Timestamp(seconds, unit="s", tz="UTC")
    return stamp.strftime("%Y-%m-%d" if stamp == stamp.normalize() else "%Y-%m-%d %H:%M")


def current_shares(s: pd.Series, profile: Profile) -> tuple[list[str], list[float], int]:
    """Bin labels, this column's share per bin of the profile, and how many values were binned."""
    if isinstance(profile, NumericProfile):
        values = _finite(s, profile.time)
        labels = _bin_labels(profile.cuts, profile.time)
        return labels, _shares(_bin_counts(values, profile.cuts)), len(values)
    counts = _value_counts(s)
    known = [v for v in profile.fractions if v != OTHER]
    inside = counts.reindex(known, fill_value=0).to_numpy()
    total = int(counts.sum())
    return [*known, OTHER], _shares(np.append(inside, total - inside.sum())), total


def column_drift(name: str, s: pd.Series, profile: Profile, p: DriftParams, reference_rows: int) -> ColumnDrift:
    """PSI of one column against its profile, and whether it is beyond the threshold."""
    action: Action = p.columns.get(name, p.action)
    bins, shares, n = current_shares(s, profile)
    reference = list(profile.fractions if isinstance(profile, NumericProfile) else profile.fractions.values())
    value, note = None, ""
    if action == "ignore":
        note = "ignored (validate.drift.columns)"
    elif min(n, reference_rows) < p.min_rows:
        note = f"not assessed: {min(n, reference_rows)} values, fewer than validate.drift.min_rows ({p.min_rows})"
    else:
        value = round(psi(reference, shares), DIGITS)
    drifted = value is not None and value > p.threshold
    return ColumnDrift(name, value, p.threshold, action, drifted, bins, reference, shares, note)


def assess_drift(
    df: pd.DataFrame, profiles: Mapping[str, Profile], p: DriftParams, reference_rows: int
) -> list[ColumnDrift]:
    """Drift of every profiled column present in `df` (missing columns are the structure checks' to report)."""
    return [column_drift(c, df[c], prof, p, reference_rows) for c, prof in profiles.items() if c in df.columns]
