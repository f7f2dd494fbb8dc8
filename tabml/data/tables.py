"""The reader of record: every table the project reads (landing table, new batch, predict input) comes through here.

A file is read as its author meant it or refused with what was found and what to set in `data:`. Missing values
are empty cells plus `data.na_values`, never pandas' default word list (`NA`, `None`, `null` stay values).
Compression is told from the bytes; CSV encoding, delimiter, decimal mark and thousands separator are detected
(tabml.data.dialect) or set; dates get one format per column (tabml.data.dates). What was decided is returned
as a `Dialect`, recorded by ingest and the reference, and handed back as hints when the next file is read.
"""

from __future__ import annotations

import io
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


def read_table_as(path: Path, options: ReadOptions, hints: Dialect | None = None) -> TableRead:
    """Load the table and say how it was read; refuse missing, empty, garbled, ambiguous or header-less input."""
    if not path.exists():
        raise StageError("file not found", path, "set data.path in params.yaml to your CSV, Parquet or .xlsx table")
    if path.stat().st_size == 0:
        raise StageError("the file is empty (0 bytes)", path, "export the table again")
    with path.open("rb") as fh:
        head = fh.read(8)
    raw, compression = decompress(path.read_bytes(), path) if is_compressed(head) else (head, None)
    fmt = table_format(path, raw, options.format, compression is not None)
    na_values = list(options.na_values or (hints.na_values if hints else []))
    source: bytes | Path = raw if compression else path  # a plain CSV is read from disk, never held whole
    if fmt == "parquet":
        frame, dialect = read_parquet(raw if compression else path.read_bytes(), path)
    elif fmt == "xlsx":
        frame, dialect = read_xlsx(raw if compression else path.read_bytes(), path, options.sheet, na_values)
    else:
        frame, dialect = read_csv(source, path, options, hints, na_values)
    frame = check_header(frame, path)
    if fmt == "parquet" and na_values:
        text = [c for c in frame.columns if is_text(frame[c])]
        frame[text] = frame[text].mask(frame[text].isin(na_values))
    frame, date_formats = convert_dates(frame, path, options.date_formats, hints)
    notes = list(dialect.notes) + ([f"decompressed ({compression})"] if compression else [])
    dialect = dialect.model_copy(
        update={"compression": compression, "na_values": na_values, "date_formats": date_formats, "notes": notes}
    )
    return TableRead(frame, dialect)


def read_csv(
    source: bytes | Path, path: Path, options: ReadOptions, hints: Dialect | None, na_values: list[str]
) -> tuple[pd.DataFrame, Dialect]:
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
    readable = io.BytesIO(body) if isinstance(body, bytes) else body
    csv_options: dict[str, Any] = dict(
        sep=delimiter, decimal=decimal, thousands=thousands, keep_default_na=False, na_values=["", *na_values],
        index_col=False, skipinitialspace=True,
    )  # fmt: skip
    try:
        # text columns (as the sample shows them) are read as categories: each distinct value held once
        sampled = pd.read_csv(io.StringIO(text), nrows=SAMPLE_ROWS, dtype=dict.fromkeys(codes, "str"), **csv_options)
        # (not the digit codes: pandas would turn categories that all look like numbers into numbers)
        kinds = {str(c): "category" for c in sampled.columns if is_text(sampled[c])} | dict.fromkeys(codes, "str")
        frame = pd.read_csv(readable, encoding=body_encoding, dtype=kinds, **csv_options)
    except pd.errors.EmptyDataError:
        raise StageError("the file is empty (no header row)", path, "export the table again with its header") from None
    except pd.errors.ParserError as exc:
        raise StageError(
            f"rows do not all have the same number of fields ({exc})".replace("\n", " "),
            path,
            "fix the ragged rows (often an unquoted separator inside a value) and export again",
        ) from None
    frame, notes = drop_trailing_empty(frame)
    notes += [f"Excel 'sep={delimiter}' first line skipped"] if named else []
    notes += [f"column {c!r}: digit codes with leading zeros kept as text" for c in codes]
    found = Dialect(
        format="csv", encoding=encoding, delimiter=delimiter, decimal=decimal, thousands=thousands,
        sep_line=named is not None, notes=notes,
    )  # fmt: skip
    return frame, found


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


def drop_trailing_empty(frame: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """A delimiter at the end of every line adds a nameless, empty last column: drop it."""
    if len(frame.columns) and str(frame.columns[-1]).startswith("Unnamed: ") and frame.iloc[:, -1].isna().all():
        return frame.iloc[:, :-1], ["trailing delimiter on every line: the empty last column dropped"]
    return frame, []


def read_xlsx(raw: bytes, path: Path, sheet: str | None, na_values: list[str]) -> tuple[pd.DataFrame, Dialect]:
    import openpyxl

    try:
        book = openpyxl.load_workbook(io.BytesIO(raw), read_only=True, data_only=True)
    except Exception as exc:  # openpyxl raises many types for a damaged workbook
        raise StageError(f"not a readable .xlsx workbook ({exc})", path, "export the workbook again") from None
    names = list(book.sheetnames)
    book.close()
    if sheet is None and len(names) > 1:
        raise StageError(f"the workbook has {len(names)} sheets {names}", path, "set data.sheet to the table's sheet")
    if sheet is not None and sheet not in names:
        raise StageError(f"no sheet {sheet!r} in the workbook (sheets: {names})", path, "fix data.sheet")
    chosen = sheet or names[0]
    frame = pd.read_excel(
        io.BytesIO(raw), sheet_name=chosen, engine="openpyxl", keep_default_na=False, na_values=["", *na_values]
    )
    frame, notes = drop_trailing_empty(frame)
    return frame, Dialect(format="xlsx", sheet=chosen, notes=notes)


def read_parquet(raw: bytes, path: Path) -> tuple[pd.DataFrame, Dialect]:
    """Parquet as numbers and text: nested columns dropped (noted), decimals as floats, durations as seconds."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(io.BytesIO(raw))
    except (pa.ArrowInvalid, OSError) as exc:
        raise StageError(
            f"not a readable Parquet file ({exc})", path, "check the file, or set data.format: csv if it is a CSV"
        ) from None
    notes = []
    for name, kind in zip(table.column_names, table.schema.types, strict=True):
        i = table.column_names.index(name)
        if pa.types.is_nested(kind):
            table = table.drop_columns([name])
            notes.append(f"column {name!r} dropped: nested {kind} values are not a feature")
        elif pa.types.is_decimal(kind):
            table = table.set_column(i, name, pc.cast(table[name], pa.float64()))
            notes.append(f"column {name!r}: {kind} read as float64")
        elif pa.types.is_duration(kind):
            per_second = {"s": 1, "ms": 1e3, "us": 1e6, "ns": 1e9}[kind.unit]
            seconds = pc.divide(pc.cast(pc.cast(table[name], pa.int64()), pa.float64()), per_second)
            table = table.set_column(i, name, seconds)
            notes.append(f"column {name!r}: duration read as seconds")
    return table.to_pandas(), Dialect(format="parquet", notes=notes)


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
            raise StageError(
                f"column {name!r} holds dates like {found.ambiguous!r} that read day-first and month-first alike",
                path,
                f'set data.date_formats: {{{name}: "%d/%m/%Y"}} (or "%m/%d/%Y") in params.yaml',
            )
        if found.format is None:
            continue
        parsed = parse_dates(values, found.format) if distinct is None else parse_categories(values, found.format)
        bad = values[values.notna() & parsed.isna()]
        if len(bad):
            raise StageError(
                f"column {name!r}: {len(bad)} value(s) do not parse as dates in {found.format!r}, "
                f"e.g. {list(pd.unique(bad.astype(str))[:3])}",
                path,
                f"fix those values, or set data.date_formats.{name} (or data.column_types.{name}: categorical)",
            )
        frame = frame.assign(**{str(name): parsed})
        formats[str(name)] = found.format
    return frame, formats


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
