"""The reference of a dataset: what `<reference_dir>/<dataset>/expectations.json` holds, and how it is derived.

GX 1.x has no profiler, so this is ours: column kinds, null-fraction bounds, numeric ranges with a margin,
allowed category sets, row-count bounds, the id column, the target's classes, and a drift profile per column.
The file is plain JSON for people to review and edit; `python -m tasks.validate --rederive-reference` rebuilds it.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any, Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from tabml.core.params import DataParams, TaskType, ValidateParams
from tabml.data.dialect import Dialect
from tabml.validation.drift import CategoricalProfile, NumericProfile, categorical_profile, numeric_profile

EXAMPLES = 5  # values quoted per failed check
Kind = Literal["numeric", "integer", "boolean", "string", "datetime"]
NUMERIC: tuple[Kind, ...] = ("numeric", "integer")
Label = bool | int | float | str  # pydantic keeps the first exact match, so `true` stays a bool
FLAT_LIST = re.compile(r"\[\n\s*([^\[\]{}\n]*(?:,\n\s*[^\[\]{}\n]*)*)\n\s*\]")  # items hold no brackets


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ColumnReference(_Model):
    kind: Kind
    max_null_fraction: float = Field(ge=0, le=1)
    min: int | float | None = None
    max: int | float | None = None
    allowed_values: list[str] | None = None  # absent: not enforced (too many distinct values)
    profile: NumericProfile | CategoricalProfile | None = None  # absent: no drift check for the column


class TargetReference(_Model):
    column: str
    task: TaskType
    classes: list[Label] | None = None  # classification only, as stored in the file


class RowCount(_Model):
    min: int | None = Field(default=None, ge=0)
    max: int | None = Field(default=None, ge=0)


class DerivedFrom(_Model):
    snapshot: str
    rows: int


class Reference(_Model):
    """What `<reference_dir>/<dataset>/expectations.json` holds; users may edit it."""

    format_version: Literal[1] = 1
    dataset: str
    derived_from: DerivedFrom
    row_count: RowCount
    target: TargetReference
    id_column: str | None = None
    columns: dict[str, ColumnReference]
    dialect: Dialect | None = None  # how the reference table was read: new batches and predict inputs alike

    def to_json_dict(self) -> dict[str, Any]:
        """Plain JSON; per-column keys that do not apply are left out so the file reads easily."""
        out = self.model_dump(mode="json")
        out["columns"] = {c: col.model_dump(mode="json", exclude_none=True) for c, col in self.columns.items()}
        if self.dialect is None:
            del out["dialect"]
        return out

    def to_json_text(self) -> str:
        """The file's text: indented, with lists of plain values on one line so a diff stays short."""
        text = json.dumps(self.to_json_dict(), indent=2)
        return FLAT_LIST.sub(lambda m: "[" + re.sub(r",\n\s*", ", ", m.group(1)) + "]", text) + "\n"

    def profiles(self) -> dict[str, NumericProfile | CategoricalProfile]:
        return {c: col.profile for c, col in self.columns.items() if col.profile is not None}


def plain(value: Any) -> Any:
    """A JSON-safe Python scalar: numpy unwrapped, NaN and ±inf as text (strict JSON has neither)."""
    value = value.item() if isinstance(value, np.generic) else value
    return str(value) if isinstance(value, float) and not math.isfinite(value) else value


def distinct(values: pd.Series, limit: int | None = EXAMPLES) -> list[Any]:
    """Distinct values as plain Python scalars, at most `limit` of them."""
    values = values.drop_duplicates()
    return [plain(v) for v in (values if limit is None else values.head(limit))]


def label(value: object) -> str:
    """A target value as text, so `1`, `1.0`, `True` and `yes` compare with `positive_class`."""
    return str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)


def column_kind(s: pd.Series) -> Kind:
    """The kind of a column as the reference records it."""
    if pd.api.types.is_bool_dtype(s.dtype):
        return "boolean"
    if pd.api.types.is_integer_dtype(s.dtype):
        return "integer"
    if pd.api.types.is_float_dtype(s.dtype):
        return "numeric"
    if pd.api.types.is_datetime64_any_dtype(s.dtype):
        return "datetime"
    values = s.dropna()
    if s.dtype == object and len(values):  # bools or numbers with nulls load as object
        if values.map(lambda v: isinstance(v, bool | np.bool_)).all():
            return "boolean"
        if values.map(lambda v: isinstance(v, int | float | np.number) and not isinstance(v, bool)).all():
            return "numeric"
    return "string"


def excluded_columns(data: DataParams) -> set[str]:
    """Columns params.yaml drops: neither in the reference nor reported as new."""
    return set(data.drop_columns) | {c for c, kind in data.column_types.items() if kind == "drop"}


def _profile(s: pd.Series, kind: Kind, p: ValidateParams, values_checked: bool, profiled: bool) -> ColumnReference:
    null_fraction = float(s.isna().mean()) if len(s) else 0.0
    bounds: dict[str, Any] = {}
    if values_checked and kind in NUMERIC:
        values = s.astype("float64")
        finite = values[np.isfinite(values)]
        if len(finite):
            bounds["min"], bounds["max"] = allowed_range(finite, kind, p.range_margin)
    elif values_checked and kind == "string":
        values = s.dropna().astype(str).unique()
        if len(values) <= p.max_categories_checked:
            bounds["allowed_values"] = sorted(values.tolist())
    max_null = min(1.0, round(null_fraction + p.max_null_fraction_margin, 6))
    profile = drift_profile(s, kind, p) if profiled else None
    return ColumnReference(kind=kind, max_null_fraction=max_null, profile=profile, **bounds)


def allowed_range(finite: pd.Series, kind: Kind, margin: float) -> tuple[float, float]:
    """The observed range widened by `margin` of its span, never across zero and whole numbers for whole values.

    A column never below zero (ages, amounts, codes) gets no negative lower bound, one never above zero no positive
    upper bound; a column of whole numbers (integer, or float only because of nulls) gets whole-number bounds.
    """
    lo, hi = float(finite.min()), float(finite.max())
    widen = margin * ((hi - lo) or max(abs(hi), 1.0))  # a constant column still gets a margin
    low, high = lo - widen, hi + widen
    if lo >= 0:
        low = max(low, 0.0)
    if hi <= 0:
        high = min(high, 0.0)
    if kind == "integer" or bool((finite == np.floor(finite)).all()):
        return math.floor(low), math.ceil(high)
    return low, high


DATE_TEXT = re.compile(r"^\s*(\d{4}-\d{1,2}-\d{1,2}|\d{1,2}/\d{1,2}/\d{2,4})")  # 2024-03-01, 3/1/2024
DATE_SHARE = 0.95  # text columns whose values look like dates this often are profiled on a time axis


def looks_like_dates(s: pd.Series) -> bool:
    """Text whose values are dates (or date-times), as most tables store them."""
    values = s.dropna().astype(str)
    return bool(len(values)) and float(values.str.match(DATE_TEXT).mean()) >= DATE_SHARE


def drift_profile(s: pd.Series, kind: Kind, p: ValidateParams) -> NumericProfile | CategoricalProfile | None:
    """Quantile bins for numbers, and on a time axis for dates (datetime values or date text); value shares for
    other text and booleans."""
    if kind in NUMERIC:
        return numeric_profile(s, p.drift.bins)
    if kind == "datetime" or (kind == "string" and looks_like_dates(s)):
        return numeric_profile(s, p.drift.bins, time=True)
    return categorical_profile(s, p.drift.bins) if kind in ("string", "boolean") else None


def derive_reference(
    df: pd.DataFrame, data: DataParams, p: ValidateParams, snapshot: str, dialect: Dialect | None = None
) -> Reference:
    """Profile a table into the reference that later snapshots are checked against."""
    classified = data.task != "regression"
    plain_columns = [c for c in df.columns if c not in excluded_columns(data)]
    columns = {}
    for c in plain_columns:
        # ids get no range, set or profile (new ids are always unseen); a class target is checked by `target.classes`
        checked = c != data.id_column and not (classified and c == data.target)
        columns[str(c)] = _profile(df[c], column_kind(df[c]), p, values_checked=checked, profiled=c != data.id_column)
    has_target = classified and data.target in df.columns
    classes = sorted(distinct(df[data.target].dropna(), None), key=label) if has_target else None
    return Reference(
        dataset=data.name,
        derived_from=DerivedFrom(snapshot=snapshot, rows=len(df)),
        row_count=RowCount(min=p.min_rows),
        target=TargetReference(column=data.target, task=data.task, classes=classes),
        id_column=data.id_column,
        columns=columns,
        dialect=dialect,
    )
