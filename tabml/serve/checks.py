"""What one request's rows must satisfy, row by row and column by column: the model's input schema (the same
columns and kinds batch scoring checks, tabml.predict.checks), booleans that are booleans, and categories the
model knows (`serve.unknown_levels`: refuse, or score them as the rare level and say so)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd

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


def row_problems(
    frame: pd.DataFrame, state: PreprocessState, unknown_levels: Literal["refuse", "warn"]
) -> tuple[list[Problem], list[Problem]]:
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
    levels = {c.name: c.levels for c in state.categorical}
    kinds = {c.name: c.kind for c in state.input_schema}
    for name, known in levels.items():
        if name not in frame.columns or kinds.get(name) == "boolean":
            continue
        text = as_text(frame[name], kinds.get(name, "categorical"))
        unknown = np.flatnonzero(text.notna().to_numpy() & ~text.isin(known).fillna(False).to_numpy())
        target = errors if unknown_levels == "refuse" else warnings
        for row in unknown[:SHOWN_PROBLEMS]:
            message = f"{text.iloc[row]!r} is not a level the model knows ({known[:10]}...)"
            target.append(Problem(int(row), name, message))
    return errors, warnings
