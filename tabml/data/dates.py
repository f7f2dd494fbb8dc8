"""Dates written as text, parsed by one declared or detected format per column, never guessed value by value.

Recognised: ISO 8601 (with a time and a time zone or not), dd/mm/yyyy and mm/dd/yyyy (with `/` or `-`; a day
over 12 in either position decides), dd.mm.yyyy, and yyyymmdd (text or integers); each with an optional time.
A column whose values fit both day-first and month-first is refused: `data.date_formats: {col: "%d/%m/%Y"}`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import pandas as pd

ISO = re.compile(r"^\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?)?(?:Z|[+-]\d{2}:?\d{2})?$")
ISO_ZONE = re.compile(r"(?:Z|[+-]\d{2}:?\d{2})$")
DAY_MONTH = re.compile(r"^(\d{1,2})([/.-])(\d{1,2})\2(\d{4})(?: (\d{1,2}:\d{2}(:\d{2})?))?$")
COMPACT = re.compile(r"^(?:19|20)\d{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])$")
SAMPLE = 20_000


@dataclass(frozen=True)
class DateDetection:
    """A column's date format (`ISO8601` or a strptime format), or why none can be chosen."""

    format: str | None
    ambiguous: str | None = None  # an example value that fits day-first and month-first alike


def _time_suffix(times: pd.Series) -> str | None:
    """The time part's format when every value has the same shape; None when they differ."""
    shapes = set(times.fillna("").map(lambda t: t.count(":")))
    if len(shapes) != 1:
        return None
    return {0: "", 1: " %H:%M", 2: " %H:%M:%S"}[shapes.pop()]


def _day_month(text: pd.Series, declared: str | None, hinted: str | None) -> DateDetection | None:
    parts = text.str.extract(DAY_MONTH)
    if parts[0].isna().any():
        return None
    first, second, sep = parts[0].astype(int), parts[2].astype(int), parts[1].iloc[0]
    if parts[1].nunique() != 1:
        return None
    suffix = _time_suffix(parts[4])
    if suffix is None:
        return None
    day_first, month_first = f"%d{sep}%m{sep}%Y{suffix}", f"%m{sep}%d{sep}%Y{suffix}"
    if (first > 12).any() and (second > 12).any():
        return None  # neither position is a month: not dates
    if (first > 12).any() or sep == ".":  # dd.mm.yyyy is the dotted convention
        return DateDetection(None if (second > 12).any() else day_first)
    if (second > 12).any():
        return DateDetection(month_first)
    for chosen in (declared, hinted):
        if chosen in (day_first, month_first):
            return DateDetection(chosen)
    return DateDetection(None, ambiguous=str(text.iloc[0]))


def _as_text(values: pd.Series) -> pd.Series:
    return (
        values.astype("int64").astype(str) if pd.api.types.is_integer_dtype(values) else values.astype(str).str.strip()
    )


def _may_be_dates(head: pd.Series) -> bool:
    """A cheap first look at a few values: could the column be dates in any recognised form?"""
    text = _as_text(head)
    return bool(text.str.fullmatch(COMPACT).all() or text.str.fullmatch(ISO).all() or text.str.match(DAY_MONTH).all())


def detect_date_format(values: pd.Series, declared: str | None = None, hinted: str | None = None) -> DateDetection:
    """The format every non-missing value of a text (or integer) column is written in, or none."""
    integers = pd.api.types.is_integer_dtype(values)
    if not (integers or values.dtype == object or isinstance(values.dtype, pd.StringDtype)):
        return DateDetection(None)
    nonnull = values.dropna()
    if declared:
        return DateDetection(declared)
    if nonnull.empty or not _may_be_dates(nonnull.head(100)):
        return DateDetection(None)
    text = _as_text(pd.Series(nonnull.unique()[:SAMPLE]))
    if text.str.fullmatch(COMPACT).all() and text.nunique() > 1:
        return DateDetection("%Y%m%d")
    if integers:
        return DateDetection(None)
    if text.str.fullmatch(ISO).all():
        return DateDetection("ISO8601")
    found = _day_month(text, declared, hinted)
    return found if found is not None else DateDetection(None)


def parse_dates(values: pd.Series, fmt: str, zoned: bool | None = None) -> pd.Series:
    """The column parsed with `fmt`; values that do not fit become NaT (the caller counts them). ISO values with
    a time zone are read as UTC instants (`zoned`: whether any value of the whole column has one; default: these)."""
    nonnull = values.dropna()
    text = nonnull.astype("int64").astype(str) if pd.api.types.is_integer_dtype(values) else nonnull.astype(str)
    text = text.str.strip()
    if zoned is None:
        zoned = bool(text.str.contains(ISO_ZONE).any())
    zoned = fmt == "ISO8601" and zoned
    parsed = pd.to_datetime(text, format=fmt, errors="coerce", utc=zoned)
    out = pd.Series(pd.NaT, index=values.index, dtype=parsed.dtype)
    out.loc[parsed.index] = parsed
    return out
