"""A corpus of awkward exports of one table: each must read exactly like the clean file or be refused.

`base_table()` is tests/fixtures/credit.csv with a date column (`Opened`), a duration in seconds (`Waited`) and
a job code column where `NA`, `None` and `null` are real levels. `variants(folder)` writes the same table as a
European Excel export, with tabs, pipes, a `sep=` line, trailing delimiters, thousands separators, UTF-16,
cp1252, UTF-8 with BOM, gzip/zip/bz2/xz, .xlsx, Parquet with decimal/duration/tz/nested columns and day-first,
dotted, compact and month-first dates. `frame_sha` is the fingerprint they are compared by.
"""

from __future__ import annotations

import bz2
import gzip
import hashlib
import lzma
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from tests.workspace import EXAMPLE_TABLE

CODES = ["NA", "None", "null", "A1", "B2"]


def base_table(rows: int = 600) -> pd.DataFrame:
    """The example table's first rows plus a date, a duration (seconds) and a code column holding `NA`."""
    frame = pd.read_csv(EXAMPLE_TABLE, keep_default_na=False, na_values=[""]).head(rows).copy()
    frame["Opened"] = pd.Timestamp("2022-01-01") + pd.to_timedelta(np.arange(len(frame)) * 3, unit="D")
    frame["Waited"] = (np.arange(len(frame)) % 97 * 30.0).astype("float64")
    frame["Code"] = [CODES[i % len(CODES)] for i in range(len(frame))]
    frame["Home"] = frame["Home"].replace({"other": "other €é"})  # text that only a right encoding keeps
    return frame


def frame_sha(frame: pd.DataFrame) -> str:
    """Names plus values: numbers as float64, datetimes as UTC instants, everything else as text."""
    digest = hashlib.sha256("\x1f".join(map(str, frame.columns)).encode())
    for name in frame.columns:
        values = frame[name]
        if pd.api.types.is_datetime64_any_dtype(values):
            stamps = values.dt.tz_localize("UTC") if values.dt.tz is None else values.dt.tz_convert("UTC")
            canon = stamps.astype("int64").astype(str).where(values.notna(), "<NA>")
        elif pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
            canon = values.astype("float64").map(repr)
        else:
            canon = values.astype("string").fillna("<NA>")
        digest.update("\x1e".join(canon.astype(str)).encode())
    return digest.hexdigest()


def _csv(frame: pd.DataFrame, **kwargs: str) -> bytes:
    return frame.to_csv(index=False, **kwargs).encode()  # type: ignore[arg-type]


def _dates(frame: pd.DataFrame, fmt: str) -> pd.DataFrame:
    return frame.assign(Opened=frame["Opened"].dt.strftime(fmt))


def _european(frame: pd.DataFrame) -> bytes:
    amounts = frame["Amount"].map(lambda v: f"{v:,}".replace(",", "."))  # 1.000 for a thousand
    text = frame.assign(Amount=amounts).to_csv(index=False, sep=";", decimal=",", date_format="%d/%m/%Y")
    return text.encode("utf-8")


def _trailing(frame: pd.DataFrame) -> bytes:
    lines = frame.to_csv(index=False).splitlines()
    return ("\n".join(line + "," for line in lines) + "\n").encode()


def _zip(data: bytes) -> bytes:
    from io import BytesIO

    buffer = BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("table.csv", data)
    return buffer.getvalue()


def _parquet(frame: pd.DataFrame, path: Path) -> None:
    from decimal import Decimal

    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.Table.from_pandas(frame.drop(columns=["Income", "Waited", "Opened"]), preserve_index=False)
    income = pa.array([None if pd.isna(v) else Decimal(f"{v:.1f}") for v in frame["Income"]], pa.decimal128(12, 1))
    waited = pa.array((frame["Waited"] * 1000).astype("int64"), pa.duration("ms"))
    opened = pa.array(frame["Opened"].dt.tz_localize("UTC"), pa.timestamp("us", "UTC"))
    tags = pa.array([[i % 3, i % 5] for i in range(len(frame))], pa.list_(pa.int64()))
    for name, column in (("Income", income), ("Waited", waited), ("Opened", opened), ("tags", tags)):
        table = table.append_column(name, column)
    pq.write_table(table.select([*frame.columns, "tags"]), path)


def variants(folder: Path, frame: pd.DataFrame) -> dict[str, Path]:
    """Every awkward export of `frame` that must read exactly like `clean.csv` (also written here)."""
    iso = _csv(frame, date_format="%Y-%m-%d")
    writers: dict[str, Callable[[], bytes]] = {
        "clean.csv": lambda: iso,
        "european.csv": lambda: _european(frame),
        "tabs.tsv": lambda: _csv(frame, sep="\t", date_format="%Y-%m-%d"),
        "pipes.txt": lambda: _csv(frame, sep="|", date_format="%Y-%m-%d"),
        "excel_sep_line.csv": lambda: b"sep=;\n" + _csv(frame, sep=";", date_format="%Y-%m-%d"),
        "trailing_delimiter.csv": lambda: _trailing(_dates(frame, "%Y-%m-%d")),
        "us_thousands.csv": lambda: _csv(
            frame.assign(Amount=frame["Amount"].map("{:,}".format)), date_format="%Y-%m-%d"
        ),
        "utf16.csv": lambda: frame.to_csv(index=False, sep="\t", date_format="%Y-%m-%d").encode("utf-16"),
        "cp1252.csv": lambda: frame.to_csv(index=False, date_format="%Y-%m-%d").encode("cp1252"),
        "bom.csv": lambda: frame.to_csv(index=False, date_format="%Y-%m-%d").encode("utf-8-sig"),
        "day_first.csv": lambda: _csv(_dates(frame, "%d/%m/%Y")),
        "dotted_dates.csv": lambda: _csv(_dates(frame, "%d.%m.%Y")),
        "compact_dates.csv": lambda: _csv(_dates(frame, "%Y%m%d")),
        "month_first.csv": lambda: _csv(_dates(frame, "%m/%d/%Y")),
        "gzip.csv.gz": lambda: gzip.compress(iso),
        "zipped.zip": lambda: _zip(iso),
        "bzip.csv.bz2": lambda: bz2.compress(iso),
        "xz.csv.xz": lambda: lzma.compress(iso),
        "no_extension": lambda: gzip.compress(iso),
    }
    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name, write in writers.items():
        (folder / name).write_bytes(write())
        paths[name] = folder / name
    frame.to_excel(folder / "workbook.xlsx", index=False, engine="openpyxl")
    _parquet(frame, folder / "typed.parquet")
    paths |= {"workbook.xlsx": folder / "workbook.xlsx", "typed.parquet": folder / "typed.parquet"}
    return paths
