"""A table read batch by batch, as ingest streams its landing table into the snapshot: for a CSV the same values
as one read of the whole file (tabml.data.tables), with memory bounded by the batch.

The dialect is decided on the first rows as for one read. A first pass then learns, batch by batch, what one
read learns from the whole column: its kind (numbers with a missing value are floats, booleans with one are
objects, numbers or booleans mixed with text are text), the values its date format is decided on (the first 100
and the first 20,000 distinct, as tabml.data.dates looks at them) and whether any value has a time zone or
nanoseconds. The second pass converts every batch alike; a batch that contradicts a decision (a value that does
not parse with the column's date format) is refused as one read refuses the whole column. Parquet and .xlsx
are read whole and handed over as one batch.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from tabml.core.errors import StageError
from tabml.data.dates import ISO_ZONE, SAMPLE, detect_date_format, parse_dates
from tabml.data.dialect import Dialect
from tabml.data.formats import TRAILING_EMPTY_NOTE
from tabml.data.tables import (
    CsvPlan,
    ReadOptions,
    ambiguous_dates,
    bad_dates,
    check_header,
    csv_errors,
    finish_dialect,
    plan_csv,
    read_table_as,
    table_source,
)  # fmt: skip
from tabml.data.text_values import parse_categories, text_categories

BATCH_ROWS = 100_000  # rows per batch (and per row group of the snapshot)
HEAD = 100  # the first values dates.detect_date_format looks at
NANOS = re.compile(r"\.\d{7,}")  # a fraction of a second finer than microseconds: pandas reads it in ns


@dataclass
class ColumnScan:
    """What the batches seen so far say about one column."""

    kinds: set[str] = field(default_factory=set)
    head: list[Any] = field(default_factory=list)  # the first non-missing values, in row order
    distinct: dict[Any, None] = field(default_factory=dict)  # the first distinct ones, in order
    zoned: bool = False
    nanos: bool = False

    def add(self, values: pd.Series) -> None:
        self.kinds.add(batch_kind(values))
        nonnull = values.dropna()
        if len(self.head) < HEAD:
            self.head += nonnull.head(HEAD - len(self.head)).tolist()
        levels = text_categories(values) if isinstance(values.dtype, pd.CategoricalDtype) else None
        if len(self.distinct) < SAMPLE:
            self.distinct.update(dict.fromkeys((nonnull.unique() if levels is None else levels).tolist()))
        if pd.api.types.is_integer_dtype(values) or not (self.kinds & {"category", "text"}) or nonnull.empty:
            return
        text = pd.Series(values.cat.categories if levels is not None else nonnull, dtype=object).astype(str)
        self.zoned = self.zoned or bool(text.str.contains(ISO_ZONE).any())
        self.nanos = self.nanos or bool(text.str.contains(NANOS).any())

    def sample(self, dtype: Any, levels: bool) -> pd.Series:
        """Values whose first 100 and first distinct ones are the whole column's (the levels of a category)."""
        first = list(self.distinct)[:SAMPLE]
        values = first if levels else self.head if len(self.head) < HEAD else self.head + first
        return pd.Series(values, dtype=dtype)


def batch_kind(values: pd.Series) -> str:
    """`category`, `int`, `float`, `empty` (all missing), `bool`, `boolnull` (booleans and missing) or `text`."""
    if isinstance(values.dtype, pd.CategoricalDtype):
        return "category"
    if pd.api.types.is_bool_dtype(values):
        return "bool"
    if pd.api.types.is_integer_dtype(values):
        return "int"
    if pd.api.types.is_float_dtype(values):
        return "empty" if values.isna().all() else "float"
    if values.dtype == object and values.dropna().map(lambda v: isinstance(v, bool | np.bool_)).all():
        return "boolnull"
    return "text"


def final_kind(kinds: set[str]) -> str:
    """The dtype one read of the whole column gives (pandas' common type of its batches)."""
    if "category" in kinds:
        return "category"
    found = kinds - {"empty"}
    if found <= {"int"}:
        return "int64" if found and "empty" not in kinds else "float64"
    if found <= {"int", "float"}:
        return "float64"
    if found <= {"bool"} and "empty" not in kinds:
        return "bool"
    if found <= {"bool", "boolnull"}:
        return "object"
    return "str"  # text, or numbers and booleans mixed (or with text): read as the text written


@dataclass(frozen=True)
class DatePlan:
    format: str
    zoned: bool
    dtype: Any


@dataclass
class TableBatches:
    """The table as batches of its final columns and dtypes, once `dialect`, `columns` and `rows` are known."""

    dialect: Dialect
    columns: list[str]
    rows: int
    batches: Callable[[], Iterator[pd.DataFrame]]
    samples: dict[str, pd.Series] = field(default_factory=dict)  # per int/text column: what decides its dates
    null_types: dict[str, str] = field(default_factory=dict)  # Arrow types of columns a batch may hold no value of


def read_batches(path: Path, options: ReadOptions, batch_rows: int = BATCH_ROWS) -> TableBatches:
    """The table at `path` in batches of `batch_rows` (a CSV streamed in two passes; other formats as one)."""
    source, compression, fmt = table_source(path, options)
    na_values = list(options.na_values)
    if fmt != "csv":
        read = read_table_as(path, options)
        return TableBatches(read.dialect, list(read.frame.columns), len(read.frame), lambda: iter([read.frame]))
    plan = plan_csv(source, path, options, None, na_values)
    while True:
        scans, rows = scan(plan, path, batch_rows)
        kinds = {name: final_kind(s.kinds) for name, s in scans.items()}
        retyped = {n: "str" for n, k in kinds.items() if k == "str" and plan.options["dtype"].get(n) != "str"}
        if not retyped:
            break
        plan = CsvPlan(plan.body, plan.encoding, plan.options | {"dtype": plan.options["dtype"] | retyped},
                       plan.codes, plan.dialect)  # fmt: skip
    raw_names = list(scans)
    drop_last = bool(raw_names) and raw_names[-1].startswith("Unnamed: ") and kinds[raw_names[-1]] == "float64"
    drop_last = drop_last and scans[raw_names[-1]].kinds == {"empty"}
    names = list(check_header(pd.DataFrame({n: [0] for n in raw_names[: len(raw_names) - drop_last]}), path).columns)
    if rows == 0:
        raise StageError("the table has a header but no rows", path, "export the table again with its header")
    named = dict(zip(raw_names, names, strict=False))
    dates = plan_dates({named[n]: s for n, s in scans.items() if n in named}, {named[n]: kinds[n] for n in named},
                       path, options.date_formats)  # fmt: skip
    notes = [TRAILING_EMPTY_NOTE] if drop_last else []
    dialect = plan.dialect.model_copy(update={"notes": notes + list(plan.dialect.notes)})
    dialect = finish_dialect(dialect, compression, na_values, {n: d.format for n, d in dates.items()})
    final = {named[n]: kinds[n] for n in named}

    def batches() -> Iterator[pd.DataFrame]:
        yield from convert(plan, path, batch_rows, names, final, dates)

    samples = {n: scans[r].sample("int64" if final[n] == "int64" else object, False) for r, n in named.items()
               if final[n] in ("int64", "str", "category")}  # fmt: skip
    null_types = {n: "bool" for n, k in final.items() if k == "object"}  # booleans with missing values
    return TableBatches(dialect, names, rows, batches, samples, null_types)


def chunks(plan: CsvPlan, path: Path, batch_rows: int) -> Iterator[pd.DataFrame]:
    with (
        csv_errors(path),
        pd.read_csv(plan.readable(), encoding=plan.encoding, chunksize=batch_rows, **plan.options) as reader,
    ):
        yield from reader


def scan(plan: CsvPlan, path: Path, batch_rows: int) -> tuple[dict[str, ColumnScan], int]:
    """The first pass: each column's facts over all batches, and the number of rows."""
    scans: dict[str, ColumnScan] = {}
    rows = 0
    for chunk in chunks(plan, path, batch_rows):
        for name in chunk.columns:
            scans.setdefault(str(name), ColumnScan()).add(chunk[name])
        rows += len(chunk)
    return scans, rows


def plan_dates(
    scans: dict[str, ColumnScan], kinds: dict[str, str], path: Path, declared: dict[str, str]
) -> dict[str, DatePlan]:
    """Each date column's format (as one read decides it, from the same values), time zones and dtype."""
    dates = {}
    for name, found_kind in kinds.items():
        if found_kind not in ("int64", "str", "category"):
            continue
        scanned = scans[name]
        sample = scanned.sample("int64" if found_kind == "int64" else object, found_kind == "category")
        found = detect_date_format(sample.astype("str") if found_kind == "str" else sample, declared.get(name))
        if found.ambiguous is not None:
            raise ambiguous_dates(name, found.ambiguous, path)
        if found.format is None:
            continue
        probe = parse_dates(sample, found.format, scanned.zoned)
        tz = getattr(probe.dtype, "tz", None)
        unit = "ns" if scanned.nanos and found.format == "ISO8601" else "us"
        dtype = pd.DatetimeTZDtype(unit, tz) if tz is not None else np.dtype(f"datetime64[{unit}]")
        dates[name] = DatePlan(found.format, scanned.zoned, dtype)
    return dates


def convert(
    plan: CsvPlan, path: Path, batch_rows: int, names: list[str], kinds: dict[str, str], dates: dict[str, DatePlan]
) -> Iterator[pd.DataFrame]:
    """The second pass: every batch in the final dtypes, dates parsed; values that do not parse refused at the
    end, counted over the whole file (as one read counts them)."""
    bad: dict[str, tuple[int, list[str]]] = {}
    for chunk in chunks(plan, path, batch_rows):
        frame = chunk.iloc[:, : len(names)].set_axis(names, axis=1)
        for name, kind in kinds.items():
            values = frame[name]
            if kind in ("float64", "object") and values.dtype != kind:
                frame[name] = values.astype(kind)
            elif kind == "category" and not pd.api.types.is_string_dtype(values.cat.categories.dtype):
                frame[name] = pd.Categorical(values, categories=pd.Index([], dtype="str"))
            if name in dates:
                frame[name] = parsed_dates(frame[name], dates[name], name, path, bad)
        yield frame
    for name, (count, examples) in bad.items():
        raise bad_dates(name, count, examples, dates[name].format, path)


def parsed_dates(
    values: pd.Series, date: DatePlan, name: str, path: Path, bad: dict[str, tuple[int, list[str]]]
) -> pd.Series:
    """One batch of a date column, in the column's dtype; what does not parse is added to `bad`."""
    categorical = isinstance(values.dtype, pd.CategoricalDtype)
    parsed = (parse_categories if categorical else parse_dates)(values, date.format, date.zoned)
    failed = values[values.notna() & parsed.isna()]
    if len(failed):
        count, examples = bad.get(name, (0, []))
        shown = list(dict.fromkeys(examples + list(pd.unique(failed.astype(str)))))[:3]
        bad[name] = (count + len(failed), shown)
    if parsed.dtype == date.dtype:
        return parsed
    converted = parsed.astype(date.dtype)
    if parsed.notna().any() and not (converted.astype(parsed.dtype) == parsed)[parsed.notna()].all():
        raise StageError(
            f"column {name!r}: dates in a later part of the file read as {parsed.dtype}, not {date.dtype} as before",
            path,
            f"write the column's dates alike throughout, or set data.date_formats.{name}",
        )
    return converted
