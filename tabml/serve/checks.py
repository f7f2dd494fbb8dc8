"""What one request's rows must satisfy, row by row and column by column: the model's input schema (the same
columns and kinds batch scoring checks, tabml.predict.checks), booleans that are booleans, numbers inside the
training range widened by `serve.range_margin` (`serve.out_of_range`), and categories the model knows
(`serve.unknown_levels`). Each policy refuses (422) or warns (scored, and listed under `warnings`). Nulls are
scored with the model's own fill, as in batch scoring."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd

from tabml.core.ops_params import ServeParams
from tabml.data.column_types import FALSE_WORDS, TRUE_WORDS
from tabml.data.preprocessing import PreprocessState, as_float, as_text, datetime_part

BOOLEAN_WORDS = TRUE_WORDS | FALSE_WORDS | {"1.0", "0.0"}
SHOWN_PROBLEMS = 20  # per response; the count says how many there were


@dataclass(frozen=True)
class Problem:
    """One bad cell (or a missing column, row None): what a 4xx response lists."""

    row: int | None
    column: str
    message: str

    def as_json(self) -> dict[str, object]:
        return {"row": self.row, "column": self.column, "message": self.message}


@dataclass(frozen=True)
class Policy:
    """What is refused and what is only warned about (serve.unknown_levels, serve.out_of_range)."""

    unknown_levels: Literal["refuse", "warn"]
    out_of_range: Literal["refuse", "warn"]
    range_margin: float

    @classmethod
    def of(cls, p: ServeParams) -> Policy:
        return cls(p.unknown_levels, p.out_of_range, p.range_margin)


def numeric_bounds(state: PreprocessState, margin: float) -> dict[str, tuple[float, float]]:
    """Per numeric source column: the training range (first and last kept quantile) widened by margin x span."""
    bounds = {}
    for feature in state.numeric:
        if feature.part is None and feature.quantiles:
            lo, hi = float(feature.quantiles[0]), float(feature.quantiles[-1])
            bounds[feature.source] = (lo - margin * (hi - lo), hi + margin * (hi - lo))
    return bounds


def range_problems(column: str, raw: np.ndarray, lo: float, hi: float) -> list[Problem]:
    """Pure: the cells of one parsed numeric column outside [lo, hi]."""
    rows = np.flatnonzero(np.isfinite(raw) & ((raw < lo) | (raw > hi)))[:SHOWN_PROBLEMS]
    return [Problem(int(r), column, f"{raw[r]:g} is outside the training range [{lo:g}, {hi:g}]") for r in rows]


def _bad_rows(values: pd.Series, kind: str) -> np.ndarray:
    """Positions whose value is present but not of `kind`."""
    present = values.notna().to_numpy() & values.astype("string").str.strip().ne("").fillna(False).to_numpy()
    if kind == "numeric":
        return np.flatnonzero(present & ~np.isfinite(as_float(values)))
    if kind == "datetime":
        return np.flatnonzero(present & ~np.isfinite(datetime_part(values, "epoch_days")))
    if kind == "boolean":
        words = values.astype("string").str.strip().str.lower()
        return np.flatnonzero(present & ~words.isin(BOOLEAN_WORDS).fillna(False).to_numpy())
    return np.array([], dtype=np.int64)


def row_problems(frame: pd.DataFrame, state: PreprocessState, policy: Policy) -> tuple[list[Problem], list[Problem]]:
    """Pure: (errors, warnings) of `frame` for a model with `state`; rows are positions in the request."""
    errors: list[Problem] = []
    warnings: list[Problem] = []
    for column in state.input_schema:
        if column.name not in frame.columns:
            errors.append(Problem(None, column.name, f"missing column (expected {column.kind})"))
            continue
        values = frame[column.name]
        for row in _bad_rows(values, column.kind)[:SHOWN_PROBLEMS]:
            errors.append(Problem(int(row), column.name, f"{values.iloc[row]!r} is not {column.kind}"))
    if errors:
        return errors, warnings
    for source, (lo, hi) in numeric_bounds(state, policy.range_margin).items():
        found = range_problems(source, as_float(frame[source]), lo, hi)
        (errors if policy.out_of_range == "refuse" else warnings).extend(found)
    levels = {c.name: c.levels for c in state.categorical}
    kinds = {c.name: c.kind for c in state.input_schema}
    for name, known in levels.items():
        if name not in frame.columns or kinds.get(name) == "boolean":
            continue
        text = as_text(frame[name], kinds.get(name, "categorical"))
        unknown = np.flatnonzero(text.notna().to_numpy() & ~text.isin(known).fillna(False).to_numpy())
        target = errors if policy.unknown_levels == "refuse" else warnings
        for row in unknown[:SHOWN_PROBLEMS]:
            message = f"{text.iloc[row]!r} is not a level the model knows ({known[:10]}...)"
            target.append(Problem(int(row), name, message))
    return errors, warnings
