"""Parquet and Excel tables as the reader of record (tabml.data.tables) reads them: Parquet's nested columns
dropped (noted), decimals as floats, durations as seconds; a workbook's sheet chosen or refused when unclear."""

from __future__ import annotations

import io
from pathlib import Path

import pandas as pd

from tabml.core.errors import StageError
from tabml.data.dialect import Dialect

TRAILING_EMPTY_NOTE = "trailing delimiter on every line: the empty last column dropped"


def drop_trailing_empty(frame: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """A delimiter at the end of every line adds a nameless, empty last column: drop it."""
    if len(frame.columns) and str(frame.columns[-1]).startswith("Unnamed: ") and frame.iloc[:, -1].isna().all():
        return frame.iloc[:, :-1], [TRAILING_EMPTY_NOTE]
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
