"""A request's rows -> the model's input arrays, with the row/column checks, in one pass.

The fast path reads JSON values column by column in plain Python and numpy (a pandas call costs ~50 us, and a
one-row request made a few hundred of them). It covers the values JSON clients send: numbers, numbers as plain
text, null, and text or booleans for categories. Anything else (text with thousands separators, a date column,
a category sent as a number) takes the batch path instead: a DataFrame, tabml.serve.checks and
tabml.data.preprocessing.transform, exactly as `tabml.predict` scores a file. Both give the same arrays, so both
give the numbers batch scoring gives (the tests hold them to 1e-6).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy.special import ndtri

from tabml.data.preprocessing import PreprocessState, SplitArrays, transform
from tabml.serve.checks import SHOWN_PROBLEMS, Policy, Problem, numeric_bounds, range_problems, row_problems

PLAIN_NUMBER = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")
TRUE_TEXT = {"true", "t", "yes", "y", "1", "on", "1.0"}  # tabml.data.preprocessing.as_text's booleans
BOOLEAN_TEXT = TRUE_TEXT | {"false", "f", "no", "n", "0", "off", "0.0"}
Columns = dict[str, list[Any]]


_EMPTY = SplitArrays(np.zeros((0, 0), np.float32), np.zeros((0, 0), np.int64), np.zeros(0, np.float32))


class Fallback(Exception):
    """A value the fast path does not read: the batch path scores the request."""


@dataclass(frozen=True)
class Encoded:
    arrays: SplitArrays
    errors: list[Problem]
    warnings: list[Problem]


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _number(value: Any) -> float:
    """One value as batch scoring reads a number (nan: missing); Fallback when unsure, ValueError when bad."""
    if _missing(value):
        return math.nan
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str):
        text = value.strip()
        if text == "":
            return math.nan
        if PLAIN_NUMBER.match(text):
            return float(text)
        raise Fallback
    raise Fallback


def _text(value: Any, kind: str) -> str | None:
    """One category value as tabml.data.preprocessing.as_text reads it; None: missing."""
    if _missing(value):
        return None
    if kind == "boolean":
        if isinstance(value, bool):
            return "true" if value else "false"
        word = str(value).strip().lower() if isinstance(value, str | int) else None
        if word is None or word not in BOOLEAN_TEXT:
            raise Fallback  # the batch path names it as a bad boolean
        return "true" if word in TRUE_TEXT else "false"
    if isinstance(value, str):
        return value.strip()
    raise Fallback


@dataclass(frozen=True)
class NumericPlan:
    """One numeric feature's transform with its arrays built once (tabml.data.preprocessing.quantile_normal's)."""

    source: str
    fill: float
    q: np.ndarray
    ranks: np.ndarray
    center: float
    scale: float
    missing_indicator: bool

    def columns(self, raw: np.ndarray, clip: float | None) -> list[np.ndarray]:
        missing = ~np.isfinite(raw)
        filled = np.where(missing, self.fill, raw)
        forward = np.interp(filled, self.q, self.ranks)
        backward = -np.interp(-filled, -self.q[::-1], -self.ranks[::-1])
        robust = (filled - self.center) / self.scale
        out = [
            ndtri(np.clip(0.5 * (forward + backward), 1e-7, 1 - 1e-7)),
            robust if clip is None else np.clip(robust, -clip, clip),
        ]
        return [*out, missing.astype(np.float64)] if self.missing_indicator else out


@dataclass(frozen=True)
class Plan:
    """How one model's state reads JSON values, built once per loaded model."""

    state: PreprocessState
    numeric: list[NumericPlan]
    categorical: list[tuple[str, str, dict[str, int], list[str]]]  # name, kind, level -> code, levels
    supported: bool  # False: a date feature; every request takes the batch path
    bounds: dict[str, tuple[float, float]]  # numeric source column -> allowed range (serve.range_margin)
    policy: Policy

    @classmethod
    def of(cls, state: PreprocessState, policy: Policy) -> Plan:
        kinds: dict[str, str] = {c.name: c.kind for c in state.input_schema}
        numeric = [
            NumericPlan(
                f.source,
                f.fill,
                np.asarray(f.quantiles),
                np.linspace(0, 1, len(f.quantiles)),
                f.center,
                f.scale,
                f.missing_indicator,
            )
            for f in state.numeric
        ]
        categorical = [
            (f.name, kinds.get(f.name, "categorical"), {lv: i + 1 for i, lv in enumerate(f.levels)}, f.levels)
            for f in state.categorical
        ]
        supported = not any(f.part for f in state.numeric)
        return cls(state, numeric, categorical, supported, numeric_bounds(state, policy.range_margin), policy)


def fast_encode(columns: Columns, n: int, plan: Plan) -> Encoded:
    """The arrays, errors and warnings of one request read from JSON values; raises Fallback."""
    if not plan.supported:
        raise Fallback
    state = plan.state
    errors = [
        Problem(None, c.name, f"missing column (expected {c.kind})")
        for c in state.input_schema
        if c.name not in columns
    ]
    if errors:
        return Encoded(_EMPTY, errors, [])
    numeric: list[np.ndarray] = []
    warnings: list[Problem] = []
    for feature in plan.numeric:
        raw = np.array([_number(v) for v in columns[feature.source]], dtype=np.float64)
        numeric.extend(feature.columns(raw, state.clip))
        if feature.source in plan.bounds:
            found = range_problems(feature.source, raw, *plan.bounds[feature.source])
            (errors if plan.policy.out_of_range == "refuse" else warnings).extend(found)
    x_num = np.column_stack(numeric).astype(np.float32) if numeric else np.zeros((n, 0), np.float32)
    codes: list[np.ndarray] = []
    target = errors if plan.policy.unknown_levels == "refuse" else warnings
    for name, kind, index, levels in plan.categorical:
        texts = [_text(v, kind) for v in columns[name]]
        codes.append(np.array([0 if t is None else index.get(t, 0) for t in texts], dtype=np.int64))
        if kind != "boolean":
            for row in [r for r, t in enumerate(texts) if t is not None and t not in index][:SHOWN_PROBLEMS]:
                message = f"{texts[row]!r} is not a level the model knows ({levels[:10]}...)"
                target.append(Problem(row, name, message))
    x_cat = np.column_stack(codes) if codes else np.zeros((n, 0), np.int64)
    return Encoded(SplitArrays(x_num=x_num, x_cat=x_cat, y=np.zeros(n, np.float32)), errors, warnings)


def batch_encode(frame: pd.DataFrame, state: PreprocessState, policy: Policy) -> Encoded:
    """The batch path: the checks of tabml.serve.checks, then the preprocessing transform batch scoring uses."""
    errors, warnings = row_problems(frame, state, policy)
    if errors:
        return Encoded(_EMPTY, errors, [])
    return Encoded(transform(frame, state, np.zeros(len(frame), dtype=np.float32)), errors, warnings)


def encode(columns: Columns, n: int, plan: Plan) -> Encoded:
    """The fast path when every value is one it reads, else the batch path."""
    try:
        return fast_encode(columns, n, plan)
    except Fallback:
        return batch_encode(pd.DataFrame(columns), plan.state, plan.policy)
