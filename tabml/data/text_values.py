"""Text columns held as pandas categories (each distinct value once): the work done per distinct value, the
result spread back to the rows by their codes, so a 3-million-row column costs what its levels cost."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

from tabml.data.dates import parse_dates
from tabml.data.target import level_codes


def is_text_category(values: pd.Series) -> bool:
    """An unordered category whose levels are text (how the reader holds text columns)."""
    dtype = values.dtype
    return (
        isinstance(dtype, pd.CategoricalDtype)
        and not dtype.ordered
        and pd.api.types.is_string_dtype(dtype.categories.dtype)
    )


def text_categories(values: pd.Series) -> pd.Series | None:
    """The levels of a text category, in the order the rows first show them, as an object Series; None for any
    other column (examples quoted in messages are then the file's first ones, as for plain text)."""
    if not is_text_category(values):
        return None
    codes = values.cat.codes.to_numpy()
    return pd.Series(values.cat.categories[pd.unique(codes[codes >= 0])], dtype=object)


def spread(values: pd.Series, per_level: pd.Series | pd.Index) -> pd.Index:
    """`per_level[i]` for every row whose code is i; missing (-1) rows get the missing value of its dtype."""
    return pd.Index(per_level).take(values.cat.codes.to_numpy(), allow_fill=True, fill_value=None)


def parse_categories(values: pd.Series, fmt: str, zoned: bool | None = None) -> pd.Series:
    """`parse_dates` on each level once, spread to the rows."""
    levels = pd.Series(values.cat.categories, dtype=object)
    return pd.Series(spread(values, parse_dates(levels, fmt, zoned)), index=values.index)


def map_text(values: pd.Series, fn: Callable[[pd.Series], pd.Series]) -> pd.Series:
    """`fn` (a text Series -> text Series) applied per level of a category, the result again a category
    (levels that map alike merge); any other column gets `fn` as it is."""
    if not isinstance(values.dtype, pd.CategoricalDtype):
        return fn(values)
    mapped = fn(pd.Series(values.cat.categories.astype(str), dtype="string"))
    levels = pd.Index(pd.unique(mapped.dropna().astype(object)))
    position = levels.get_indexer(mapped.astype(object).where(mapped.notna(), None))
    codes = values.cat.codes.to_numpy()
    new_codes = np.where(codes >= 0, position[codes], -1)
    return pd.Series(pd.Categorical.from_codes(new_codes, levels), index=values.index)


def as_text(values: pd.Series, kind: str) -> pd.Series:
    """Canonical level strings; booleans map every spelling to `true`/`false`."""
    text = values.astype("string").str.strip()
    if kind == "boolean":
        lowered = text.str.lower()
        text = lowered.map(lambda v: "true" if v in {"true", "t", "yes", "y", "1", "on", "1.0"} else "false")
        text = text.where(values.notna())
    return text


def level_counts(values: pd.Series, kind: str) -> pd.Series:
    """How often each canonical level occurs (a category's levels are canonicalised once each, not per row)."""
    if not isinstance(values.dtype, pd.CategoricalDtype):
        return as_text(values, kind).value_counts(dropna=True)
    counts = values.value_counts(dropna=True, sort=False)
    canonical = as_text(pd.Series(counts.index.astype(object), dtype=object), kind)
    counts = pd.Series(counts.to_numpy(), index=canonical.to_numpy(dtype=object))
    counts = counts[(counts.to_numpy() > 0) & canonical.notna().to_numpy()]
    return counts.groupby(level=0, sort=False).sum().sort_values(ascending=False, kind="stable")


def category_codes(values: pd.Series, kind: str, levels: list[str]) -> np.ndarray:
    """`level_codes` of the canonical text; for a category computed per level and spread by its codes."""
    if not isinstance(values.dtype, pd.CategoricalDtype):
        return level_codes(as_text(values, kind), levels)
    per_level = level_codes(as_text(pd.Series(values.cat.categories.astype(object), dtype=object), kind), levels)
    codes = values.cat.codes.to_numpy()
    return np.where(codes >= 0, per_level[codes], -1).astype(np.int64)
