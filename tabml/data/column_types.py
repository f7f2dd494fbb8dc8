"""Decide what each column of a real table is: numeric, categorical, boolean, datetime, or dropped."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd

from tabml.core.params import ColumnInferenceParams, DataParams, PreprocessParams
from tabml.data.dates import detect_date_format, parse_dates
from tabml.data.dialect import COMMA_NUMBER, DOT_NUMBER

FeatureKind = Literal["numeric", "categorical", "boolean", "datetime", "drop"]
TRUE_WORDS = {"true", "t", "yes", "y", "1", "on"}
FALSE_WORDS = {"false", "f", "no", "n", "0", "off"}
CODE_NAME = re.compile(r"(^|[^a-z])(zip|postal|postcode|code|area|fips|sic|naics|region|state)([^a-z]|$)", re.I)
ID_NAME = re.compile(r"(^|[^a-z])(id|uuid|guid|key)([^a-z]|$)|id$", re.I)


@dataclass(frozen=True)
class ColumnDecision:
    name: str
    kind: FeatureKind
    reason: str


def _sample(values: pd.Series, rows: int) -> pd.Series:
    return values if len(values) <= rows else values.sample(rows, random_state=0)


def numeric_from_text(values: pd.Series) -> pd.Series:
    """Parse numbers written as text (`" 1,234.5 "`, `"12%"`, `"129,0"`, `"1.234,5"`); unparsable values become NaN.

    A value is read by the convention it fits: `1,234.5` (comma thousands) first, else `1.234,5` (decimal comma),
    so `129,0` is 129.0, never 1290."""
    text = values.astype("string").str.strip().str.replace(r"[%$€£]", "", regex=True).str.strip()
    dotted = text.str.fullmatch(DOT_NUMBER.pattern).fillna(False).astype(bool)
    comma = ~dotted & text.str.fullmatch(COMMA_NUMBER.pattern).fillna(False).astype(bool)
    european = text.str.replace(r"[.\s\u00a0\u202f]", "", regex=True).str.replace(",", ".", regex=False)
    plain = text.str.replace(",", "", regex=False).where(dotted, text)
    return pd.to_numeric(european.where(comma, plain), errors="coerce")


def datetime_format(values: pd.Series) -> str:
    """The one format the column's values (written as text) fit (tabml.data.dates); else ISO 8601."""
    return detect_date_format(values.astype("string").astype(object)).format or "ISO8601"


def datetime_from_text(values: pd.Series, fmt: str | None = None) -> pd.Series:
    """Dates written as text, by `fmt` (decided on the whole column) or else `datetime_format(values)`."""
    text = values.astype("string").astype(object)
    return pd.to_datetime(parse_dates(text, fmt or datetime_format(text)), utc=True)


def _is_boolean_text(lowered: set[str]) -> bool:
    return len(lowered) == 2 and lowered <= TRUE_WORDS | FALSE_WORDS and bool(lowered & TRUE_WORDS)


def _looks_like_datetime(sample: pd.Series, parse_share: float) -> bool:
    text = sample.astype("string")
    if not text.str.contains(r"\d", regex=True).all() or not text.str.contains(r"[-/:T ]", regex=True).all():
        return False
    return bool(datetime_from_text(sample).notna().mean() >= parse_share)


def is_row_counter(values: pd.Series) -> bool:
    """Unique integers that are consecutive once sorted (`rownames` 1..n) or step evenly in file order."""
    numbers = values.dropna().to_numpy(dtype=float)
    if len(numbers) < 3 or not np.all(np.mod(numbers, 1) == 0) or len(np.unique(numbers)) != len(numbers):
        return False
    steps = np.diff(numbers)
    return bool(np.all(np.diff(np.sort(numbers)) == 1) or (steps[0] != 0 and np.all(steps == steps[0])))


def infer_numeric(name: str, values: pd.Series, p: ColumnInferenceParams) -> ColumnDecision:
    nonnull = values.dropna()
    distinct = nonnull.nunique()
    integral = bool(np.all(np.mod(nonnull.to_numpy(dtype=float), 1) == 0))
    if pd.api.types.is_integer_dtype(values) and len(nonnull) >= p.min_unique_rows and is_row_counter(values):
        return ColumnDecision(name, "drop", "identifier: a row number or counter (unique, evenly stepped integers)")
    if integral and ID_NAME.search(name) and distinct >= p.unique_share * len(nonnull):
        return ColumnDecision(name, "drop", f"identifier: integer name-tagged as an id, {distinct:,} distinct values")
    if integral and CODE_NAME.search(name) and distinct <= p.code_max_levels:
        return ColumnDecision(name, "categorical", f"integer codes: the name suggests a code, {distinct} levels")
    return ColumnDecision(name, "numeric", "numeric values")


def infer_text(name: str, values: pd.Series, p: PreprocessParams) -> ColumnDecision:
    nonnull = values.dropna().astype("string").str.strip()
    distinct = nonnull.nunique()
    lowered = set(nonnull.str.lower().unique()) if distinct <= 12 else set()
    if _is_boolean_text(lowered):
        return ColumnDecision(name, "boolean", f"two values read as a boolean: {sorted(lowered)}")
    rules = p.inference
    sample = _sample(nonnull, rules.sample_rows)
    if sample.str.fullmatch(r"0\d+").any() and sample.str.fullmatch(r"\d+").all():
        return ColumnDecision(name, "categorical", "digit codes with leading zeros (zip-like), kept as text")
    if numeric_from_text(sample).notna().mean() >= rules.parse_share:
        return ColumnDecision(name, "numeric", "numbers stored as text")
    if _looks_like_datetime(sample, rules.parse_share):
        return ColumnDecision(name, "datetime", "dates or timestamps stored as text")
    unique_share = distinct / max(1, len(nonnull))
    if unique_share > rules.unique_share and len(nonnull) > rules.min_unique_rows:
        mean_length = float(sample.str.len().mean())
        what = "free text" if mean_length > rules.free_text_length else "identifier"
        return ColumnDecision(name, "drop", f"{what}: {unique_share:.0%} of values are unique")
    if distinct > p.text_levels_threshold and (
        unique_share > 0.5 or float(sample.str.len().mean()) > rules.free_text_length
    ):
        # most values distinct (or long): free text whatever its length; a merchant code repeated stays categorical
        what = f"{distinct:,} distinct values ({unique_share:.0%} of rows), over preprocess.text_levels_threshold"
        return ColumnDecision(name, "drop", f"free text: {what}")
    kept = min(distinct, p.max_levels)
    note = f", the {kept} most frequent kept and the rest grouped as 'other'" if distinct > kept else ""
    return ColumnDecision(name, "categorical", f"text with {distinct:,} levels{note}")


def infer_column(name: str, values: pd.Series, p: PreprocessParams) -> ColumnDecision:
    """One column's kind from its values and name alone."""
    nonnull = values.dropna()
    if nonnull.empty:
        return ColumnDecision(name, "drop", "all values are missing")
    if nonnull.nunique() == 1:
        return ColumnDecision(name, "drop", f"constant: every value is {nonnull.iloc[0]!r}")
    if pd.api.types.is_bool_dtype(values):
        return ColumnDecision(name, "boolean", "boolean values")
    if isinstance(values.dtype, pd.CategoricalDtype) and values.dtype.ordered:
        order = " < ".join(map(str, values.cat.categories[:8])) + (" < ..." if len(values.cat.categories) > 8 else "")
        return ColumnDecision(name, "categorical", f"ordered categorical ({order})")
    if pd.api.types.is_datetime64_any_dtype(values):
        return ColumnDecision(name, "datetime", "datetime values")
    if pd.api.types.is_numeric_dtype(values):
        return infer_numeric(name, values, p.inference)
    return infer_text(name, values, p)


def role_columns(data: DataParams) -> dict[str, str]:
    """Columns that are never features, with the params key that makes them so."""
    roles = {data.target: "the target (data.target)"}
    if data.id_column:
        roles[data.id_column] = "the id column (data.id_column): carried into predictions, never a feature"
    roles |= {c: "listed in data.drop_columns" for c in data.drop_columns}
    return roles


def infer_column_kinds(frame: pd.DataFrame, data: DataParams, p: PreprocessParams) -> list[ColumnDecision]:
    """A decision for every column of the table, overrides from `data.column_types` first."""
    roles = role_columns(data)
    decisions = []
    for name in map(str, frame.columns):
        if name in roles:
            decisions.append(ColumnDecision(name, "drop", roles[name]))
        elif name in data.column_types:
            kind = data.column_types[name]
            kind = "categorical" if kind == "text" else kind
            decisions.append(ColumnDecision(name, kind, "set in data.column_types"))  # type: ignore[arg-type]
        else:
            decisions.append(infer_column(name, frame[name], p))
    return decisions
