"""The reader of record: every table the project reads (landing table, new batch, predict input) comes through here.

A file is read as its author meant it or refused with what was found and what to set in `data:`. Missing values
are empty cells plus `data.na_values`, never pandas' default word list (`NA`, `None`, `null` stay values).
Compression is told from the bytes; CSV encoding, delimiter, decimal mark and thousands separator are detected
(tabml.data.dialect) or set; dates get one format per column (tabml.data.dates). What was decided is returned
as a `Dialect`, recorded by ingest and the reference, and handed back as hints when the next file is read.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from tabml.core.errors import StageError
from tabml.core.params import DataParams
from tabml.data.dates import detect_date_format, parse_dates
from tabml.data.dialect import (
    Dialect,
    after_first_line,
    content_format,
    decode,
    decompress,
    detect_delimiter,
    detect_numbers,
    is_compressed,
    sample_rows,
    strip_sep_line,
)
from tabml.data.formats import drop_trailing_empty, read_parquet, read_xlsx
from tabml.data.text_values import is_text_category, parse_categories, text_categories

SAMPLE_ROWS = 2_000  # rows that decide which columns are text (read as categories)
EXTENSIONS = {".parquet": "parquet", ".pq": "parquet", ".xlsx": "xlsx", ".csv": "csv", ".tsv": "csv", ".txt": "csv"}


@dataclass(frozen=True)
class ReadOptions:
    """What `data:` says about how the file is written; None means detect it."""

    format: str = "auto"
    encoding: str | None = None
    delimiter: str | None = None
    decimal: str | None = None
    thousands: str | None = None
    na_values: tuple[str, ...] = ()
    sheet: str | None = None
    date_formats: dict[str, str] = field(default_factory=dict)

    @classmethod
    def of(cls, data: DataParams) -> ReadOptions:
        return cls(
            data.format, data.encoding, data.delimiter, data.decimal, data.thousands,
            tuple(data.na_values), data.sheet, dict(data.date_formats),
        )  # fmt: skip


@dataclass(frozen=True)
class TableRead:
    frame: pd.DataFrame
    dialect: Dialect


def table_format(path: Path, raw: bytes, declared: str, compressed: bool) -> str:
    """`csv`, `parquet` or `xlsx`: declared, else what the bytes say, else the extension (compressed: text)."""
    if declared != "auto":
        return declared
    found = content_format(raw)
    if found is not None:
        return found
    for suffix in reversed([s.lower() for s in path.suffixes]):
        if suffix in EXTENSIONS:
            return EXTENSIONS[suffix]
    if compressed:
        return "csv"
    raise StageError(
        f"cannot tell the format from the extension {path.suffix!r}",
        path,
        "set data.format in params.yaml to csv, parquet or xlsx",
    )


def read_table(path: Path, options: ReadOptions | None = None, hints: Dialect | None = None) -> pd.DataFrame:
    """The table alone (see `read_table_as`)."""
    return read_table_as(path, options or ReadOptions(), hints).frame


def table_source(path: Path, options: ReadOptions) -> tuple[bytes | Path, str | None, str]:
    """What to read (the path, or the decompressed bytes), the compression undone and the format."""
    if not path.exists():
        raise StageError("file not found", path, "set data.path in params.yaml to your CSV, Parquet or .xlsx table")
    if path.stat().st_size == 0:
        raise StageError("the file is empty (0 bytes)", path, "export the table again")
    with path.open("rb") as fh:
        head = fh.read(8)
    raw, compression = decompress(path.read_bytes(), path) if is_compressed(head) else (head, None)
    fmt = table_format(path, raw, options.format, compression is not None)
    return (raw if compression else path), compression, fmt  # a plain file is read from disk, never held whole


def read_table_as(path: Path, options: ReadOptions, hints: Dialect | None = None) -> TableRead:
    """Load the table and say how it was read; refuse missing, empty, garbled, ambiguous or header-less input."""
    source, compression, fmt = table_source(path, options)
    na_values = list(options.na_values or (hints.na_values if hints else []))
    raw = source if isinstance(source, bytes) else None
    if fmt == "parquet":
        frame, dialect = read_parquet(raw or path.read_bytes(), path)
    elif fmt == "xlsx":
        frame, dialect = read_xlsx(raw or path.read_bytes(), path, options.sheet, na_values)
    else:
        frame, dialect = read_csv(source, path, options, hints, na_values)
    frame = check_header(frame, path)
    if fmt == "parquet" and na_values:
        text = [c for c in frame.columns if is_text(frame[c])]
        frame[text] = frame[text].mask(frame[text].isin(na_values))
    frame, date_formats = convert_dates(frame, path, options.date_formats, hints)
    return TableRead(frame, finish_dialect(dialect, compression, na_values, date_formats))


def finish_dialect(dialect: Dialect, compression: str | None, na_values: list[str], dates: dict[str, str]) -> Dialect:
    """The dialect with what was decided after the format's own reading."""
    notes = list(dialect.notes) + ([f"decompressed ({compression})"] if compression else [])
    update = {"compression": compression, "na_values": na_values, "date_formats": dates, "notes": notes}
    return dialect.model_copy(update=update)


@dataclass(frozen=True)
class CsvPlan:
    """How a CSV is read, decided from its first rows: what pandas is given, and the dialect found."""

    body: bytes | Path
    encoding: str
    options: dict[str, Any]  # pd.read_csv's keywords, the column dtypes (text as categories) among them
    codes: list[str]
    dialect: Dialect

    def readable(self) -> io.BytesIO | Path:
        return io.BytesIO(self.body) if isinstance(self.body, bytes) else self.body


@contextmanager
def csv_errors(path: Path) -> Iterator[None]:
    """pandas' parse errors as the messages a user can act on."""
    try:
        yield
    except pd.errors.EmptyDataError:
        raise StageError("the file is empty (no header row)", path, "export the table again with its header") from None
    except pd.errors.ParserError as exc:
        raise StageError(
            f"rows do not all have the same number of fields ({exc})".replace("\n", " "),
            path,
            "fix the ragged rows (often an unquoted separator inside a value) and export again",
        ) from None


def plan_csv(
    source: bytes | Path, path: Path, options: ReadOptions, hints: Dialect | None, na_values: list[str]
) -> CsvPlan:
    text, encoding = decode(source, path, options.encoding)
    text, named = strip_sep_line(text)
    body, body_encoding = after_first_line(source, encoding) if named else (source, encoding)
    delimiter = options.delimiter or named or detect_delimiter(text, path)
    rows = sample_rows(text, delimiter)
    if rows:
        header = [h.strip() for h in rows[0]]
        duplicates = sorted({h for h in header if h and header.count(h) > 1})
        if duplicates:
            raise StageError(f"duplicate column names {duplicates}", path, "give every column a unique name")
    decimal, thousands = detect_numbers(rows, path, options.decimal, options.thousands, hints)
    codes = leading_zero_columns(rows)
    csv_options: dict[str, Any] = dict(
        sep=delimiter, decimal=decimal, thousands=thousands, keep_default_na=False, na_values=["", *na_values],
        index_col=False, skipinitialspace=True,
    )  # fmt: skip
    with csv_errors(path):
        # text columns (as the sample shows them) are read as categories: each distinct value held once
        sampled = pd.read_csv(io.StringIO(text), nrows=SAMPLE_ROWS, dtype=dict.fromkeys(codes, "str"), **csv_options)
    # (not the digit codes: pandas would turn categories that all look like numbers into numbers)
    kinds = {str(c): "category" for c in sampled.columns if is_text(sampled[c])} | dict.fromkeys(codes, "str")
    notes = [f"Excel 'sep={delimiter}' first line skipped"] if named else []
    notes += [f"column {c!r}: digit codes with leading zeros kept as text" for c in codes]
    found = Dialect(
        format="csv", encoding=encoding, delimiter=delimiter, decimal=decimal, thousands=thousands,
        sep_line=named is not None, notes=notes,
    )  # fmt: skip
    return CsvPlan(body, body_encoding, csv_options | {"dtype": kinds}, codes, found)


def read_csv(
    source: bytes | Path, path: Path, options: ReadOptions, hints: Dialect | None, na_values: list[str]
) -> tuple[pd.DataFrame, Dialect]:
    plan = plan_csv(source, path, options, hints, na_values)
    with csv_errors(path):
        frame = pd.read_csv(plan.readable(), encoding=plan.encoding, **plan.options)
    frame, notes = drop_trailing_empty(frame)
    return frame, plan.dialect.model_copy(update={"notes": notes + list(plan.dialect.notes)})


def leading_zero_columns(rows: list[list[str]]) -> list[str]:
    """Columns of digits where some value starts with 0 (`02134`): codes, read as text so the zeros stay."""
    if not rows:
        return []
    found = []
    for i, name in enumerate(rows[0]):
        values = [r[i].strip() for r in rows[1:] if i < len(r) and r[i].strip()]
        if values and all(v.isdigit() for v in values) and any(len(v) > 1 and v[0] == "0" for v in values):
            found.append(name.strip())
    return found


def is_text(values: pd.Series) -> bool:
    return values.dtype == object or isinstance(values.dtype, pd.StringDtype) or is_text_category(values)


def convert_dates(
    frame: pd.DataFrame, path: Path, declared: dict[str, str], hints: Dialect | None
) -> tuple[pd.DataFrame, dict[str, str]]:
    """Text (and yyyymmdd integer) date columns parsed by one format each; ambiguous ones refused."""
    formats = {}
    hinted = hints.date_formats if hints else {}
    for name in frame.columns:
        values = frame[name]
        if not (is_text(values) or pd.api.types.is_integer_dtype(values)):
            continue
        distinct = text_categories(values)  # a text category's values, each once, in the same checks
        found = detect_date_format(values if distinct is None else distinct, declared.get(name), hinted.get(name))
        if found.ambiguous is not None:
            raise ambiguous_dates(str(name), found.ambiguous, path)
        if found.format is None:
            continue
        parsed = parse_dates(values, found.format) if distinct is None else parse_categories(values, found.format)
        bad = values[values.notna() & parsed.isna()]
        if len(bad):
            raise bad_dates(str(name), len(bad), list(pd.unique(bad.astype(str))[:3]), found.format, path)
        frame = frame.assign(**{str(name): parsed})
        formats[str(name)] = found.format
    return frame, formats


def ambiguous_dates(name: str, example: str, path: Path) -> StageError:
    return StageError(
        f"column {name!r} holds dates like {example!r} that read day-first and month-first alike",
        path,
        f'set data.date_formats: {{{name}: "%d/%m/%Y"}} (or "%m/%d/%Y") in params.yaml',
    )


def bad_dates(name: str, count: int, examples: list[str], fmt: str, path: Path) -> StageError:
    return StageError(
        f"column {name!r}: {count} value(s) do not parse as dates in {fmt!r}, e.g. {examples}",
        path,
        f"fix those values, or set data.date_formats.{name} (or data.column_types.{name}: categorical)",
    )


def check_header(frame: pd.DataFrame, path: Path) -> pd.DataFrame:
    """Strip stray spaces from column names; refuse duplicates, blank names and tables without rows."""
    names = [str(c).strip() for c in frame.columns]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise StageError(f"duplicate column names {duplicates}", path, "give every column a unique name")
    if any(n == "" or n.startswith("Unnamed: ") for n in names):
        raise StageError("a column has no name in the header row", path, "add the missing header name")
    if len(frame) == 0:
        raise StageError("the table has a header but no rows", path, "export the table again with its header")
    return frame.set_axis(names, axis=1)
