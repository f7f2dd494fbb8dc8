"""ingest: landing-zone CSV/Parquet -> versioned Parquet snapshot (DVC tracks it)."""

from __future__ import annotations

import re
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from tabml.core.errors import StageError
from tabml.core.files import sha256_file
from tabml.core.params import Params
from tabml.core.stage import stage_main
from tabml.data.column_types import datetime_from_text, numeric_from_text
from tabml.data.snapshot import write_ingest_report, write_snapshot
from tabml.data.tables import ReadOptions, read_table_as
from tabml.data.text_values import is_text_category

LOST_SHARE = 0.5  # an override that turns more than this share of a column's values into missing is refused


def named_columns(params: Params) -> dict[str, str | None]:
    """Every params.yaml key that names a column of the table, with the column it names."""
    data = params.data
    named: dict[str, str | None] = {"data.target": data.target, "data.id_column": data.id_column}
    named |= {f"data.drop_columns[{i}]": c for i, c in enumerate(data.drop_columns)}
    named |= {f"data.column_types.{c}": c for c in data.column_types}
    named |= {f"validate.drift.columns.{c}": c for c in params.validate_.drift.columns}
    slices = params.evaluate.slice_columns(data.name)
    named |= {f"evaluate.slices.{data.name}[{i}]": c for i, c in enumerate(slices)}
    return named


def check_roles(frame: pd.DataFrame, params: Params) -> None:
    """The columns params.yaml names must exist; say which ones do."""
    data, named = params.data, named_columns(params)
    missing = {key: col for key, col in named.items() if col is not None and col not in frame.columns}
    if missing:
        listed = ", ".join(f"{key}={col!r}" for key, col in missing.items())
        raise StageError(
            f"params.yaml names columns that are not in the table: {listed}",
            data.path,
            columns_hint(list(frame.columns), data.path),
        )


COLUMN_NAME = re.compile(r"[\w .()%#/+-]{1,64}")  # what a header cell of a real table looks like


def columns_hint(columns: list[object], path: Path) -> str:
    """The table's column names to choose from, unless the header looks like no table's (a text file read as
    CSV): an error message, which reaches logs and webhooks, never quotes other file contents."""
    names = [str(c) for c in columns]
    if len(names) >= 2 and all(COLUMN_NAME.fullmatch(n) for n in names):
        return f"use one of the table's columns: {names}"
    return (
        f"its first line does not read as a header of column names ({len(names)} column(s) found): check that "
        f"data.path is the table you mean and data.format its format (`head -1 {path}` shows the header)"
    )


def check_overrides(frame: pd.DataFrame, params: Params) -> None:
    """A `data.column_types` override must not turn most of a column into missing values."""
    for column, kind in params.data.column_types.items():
        if kind not in ("numeric", "datetime") or column not in frame.columns:
            continue
        values = frame[column]
        if kind == "numeric" and pd.api.types.is_numeric_dtype(values):
            continue
        if kind == "datetime" and pd.api.types.is_datetime64_any_dtype(values):
            continue
        parsed = numeric_from_text(values) if kind == "numeric" else datetime_from_text(values)
        present = values.notna()
        lost = present & parsed.isna()
        if present.sum() and lost.sum() > LOST_SHARE * present.sum():
            examples = list(values[lost].astype(str).unique()[:3])
            raise StageError(
                f"data.column_types.{column}: {kind} would turn {int(lost.sum()):,} of {int(present.sum()):,} "
                f"values into missing (e.g. {examples})",
                params.data.path,
                f"remove the override, or set data.column_types.{column} to categorical or text",
            )


def ingest_summary(frame: pd.DataFrame, source: Path, sha256: str, dialect: dict[str, object]) -> dict[str, object]:
    return {
        "source": str(source),
        "source_sha256": sha256,
        "rows": len(frame),
        # text held as categories is recorded as the text column it is (and is written so in the snapshot)
        "columns": {str(c): "str" if is_text_category(frame[c]) else str(t) for c, t in frame.dtypes.items()},
        "dialect": dialect,
    }


def run(params: Params) -> list[Path]:
    start = time.perf_counter()
    data, out = params.data, params.ingest
    read = read_table_as(data.path, ReadOptions.of(data))
    frame = read.frame
    check_roles(frame, params)
    check_overrides(frame, params)
    write_snapshot(frame, out.snapshot, read.dialect)
    dialect = read.dialect.model_dump(mode="json")
    write_ingest_report(ingest_summary(frame, data.path, sha256_file(data.path), dialect), out.report)
    seconds = time.perf_counter() - start
    print(f"[ingest] {data.path}: {len(frame):,} rows x {frame.shape[1]} columns -> {out.snapshot} ({seconds:.1f}s)")
    for note in read.dialect.notes:
        print(f"[ingest] note: {note}")
    return [out.snapshot, out.report]


def main(argv: Sequence[str] | None = None) -> int:
    return stage_main("ingest", run, argv)


if __name__ == "__main__":
    sys.exit(main())
