"""Read a user's landing-zone table (CSV or Parquet) with errors that say what to fix."""

from __future__ import annotations

import csv
from pathlib import Path

import pandas as pd

from tabml.core.errors import StageError

TEXT_SNIFF_BYTES = 64 * 1024


def table_format(path: Path, declared: str) -> str:
    """`csv` or `parquet`: the declared format, or the file extension when it is `auto`."""
    if declared != "auto":
        return declared
    suffixes = [s.lower() for s in path.suffixes]
    if ".parquet" in suffixes or ".pq" in suffixes:
        return "parquet"
    if any(s in (".csv", ".tsv", ".txt") for s in suffixes):
        return "csv"
    raise StageError(
        f"cannot tell the format from the extension {path.suffix!r}",
        path,
        "set data.format in params.yaml to csv or parquet",
    )


def _looks_binary(head: bytes) -> bool:
    if b"\x00" in head:
        return True
    control = sum(1 for b in head if b < 32 and b not in (9, 10, 13))
    return control > len(head) * 0.01


def _text_encoding(path: Path) -> str:
    head = path.read_bytes()[:TEXT_SNIFF_BYTES]
    if _looks_binary(head):
        raise StageError(
            "the file is not text (binary or garbled bytes)",
            path,
            "check that data.path points at a CSV export, or set data.format: parquet for Parquet files",
        )
    try:
        path.read_text(encoding="utf-8")
        return "utf-8"
    except UnicodeDecodeError:
        return "latin-1"  # legacy exports (Excel, SAS) are usually cp1252/latin-1


def _csv_separator(path: Path, encoding: str) -> str:
    with path.open(encoding=encoding, newline="") as fh:
        sample = fh.read(TEXT_SNIFF_BYTES)
    try:
        return csv.Sniffer().sniff(sample, delimiters=",;\t|").delimiter
    except csv.Error:
        return ","


def _header(path: Path, encoding: str, sep: str) -> list[str]:
    with path.open(encoding=encoding, newline="") as fh:
        return next(csv.reader(fh, delimiter=sep), [])


def read_csv(path: Path) -> pd.DataFrame:
    encoding = _text_encoding(path)
    sep = _csv_separator(path, encoding)
    header = [h.strip() for h in _header(path, encoding, sep)]
    duplicates = sorted({h for h in header if header.count(h) > 1})
    if duplicates:
        raise StageError(f"duplicate column names {duplicates}", path, "give every column a unique name")
    try:
        return pd.read_csv(path, sep=sep, encoding=encoding, skipinitialspace=True)
    except pd.errors.EmptyDataError:
        raise StageError("the file is empty (no header row)", path, "export the table again with its header") from None
    except pd.errors.ParserError as exc:
        raise StageError(
            f"rows do not all have the same number of fields ({exc})".replace("\n", " "),
            path,
            "fix the ragged rows (often an unquoted separator inside a value) and export again",
        ) from None


def read_parquet(path: Path) -> pd.DataFrame:
    import pyarrow as pa

    try:
        return pd.read_parquet(path)
    except (pa.ArrowInvalid, OSError) as exc:
        raise StageError(
            f"not a readable Parquet file ({exc})",
            path,
            "check the file, or set data.format: csv if it is a CSV",
        ) from None


def read_table(path: Path, declared_format: str = "auto") -> pd.DataFrame:
    """Load the table; refuse missing, empty, garbled, ragged or header-less input."""
    if not path.exists():
        raise StageError("file not found", path, "set data.path in params.yaml to your CSV or Parquet table")
    if path.stat().st_size == 0:
        raise StageError("the file is empty (0 bytes)", path, "export the table again")
    fmt = table_format(path, declared_format)
    frame = read_parquet(path) if fmt == "parquet" else read_csv(path)
    return check_header(frame, path)


def check_header(frame: pd.DataFrame, path: Path) -> pd.DataFrame:
    """Strip stray spaces from column names; refuse duplicates, blank names and tables without rows."""
    names = [str(c).strip() for c in frame.columns]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise StageError(f"duplicate column names {duplicates}", path, "give every column a unique name")
    if any(n == "" or n.startswith("Unnamed: ") for n in names):
        raise StageError("a column has no name in the header row", path, "add the missing header name")
    if len(frame) == 0:
        raise StageError("the table has a header but no rows", path, "export the table again with its rows")
    return frame.set_axis(names, axis=1)
