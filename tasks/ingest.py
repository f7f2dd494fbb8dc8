"""ingest: landing-zone CSV/Parquet/.xlsx -> versioned Parquet snapshot (DVC tracks it); CSV batch by batch."""

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
from tabml.data.column_types import datetime_format, datetime_from_text, numeric_from_text
from tabml.data.csv_batches import BATCH_ROWS, read_batches
from tabml.data.snapshot import snapshot_writer, write_ingest_report
from tabml.data.tables import ReadOptions
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


def check_roles(columns: list[str], params: Params) -> None:
    """The columns params.yaml names must exist; say which ones do."""
    data, named = params.data, named_columns(params)
    missing = {key: col for key, col in named.items() if col is not None and col not in columns}
    if missing:
        listed = ", ".join(f"{key}={col!r}" for key, col in missing.items())
        raise StageError(
            f"params.yaml names columns that are not in the table: {listed}",
            data.path,
            columns_hint(list(columns), data.path),
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


class OverrideCheck:
    """A `data.column_types` override must not turn most of a column into missing values: counted batch by batch
    (a datetime override's format decided on the column's `samples`, the values one read would decide it on)."""

    def __init__(self, params: Params, samples: dict[str, pd.Series]) -> None:
        self.params = params
        self.formats = {  # decided once, on the values one read would decide them on
            column: datetime_format(samples[column])
            for column, kind in params.data.column_types.items()
            if kind == "datetime" and column in samples
        }
        self.counts: dict[str, tuple[int, int, list[str]]] = {}  # present, lost, first examples

    def add(self, frame: pd.DataFrame) -> None:
        for column, kind in self.params.data.column_types.items():
            if kind not in ("numeric", "datetime") or column not in frame.columns:
                continue
            values = frame[column]
            if kind == "numeric" and pd.api.types.is_numeric_dtype(values):
                continue
            if kind == "datetime" and pd.api.types.is_datetime64_any_dtype(values):
                continue
            fmt = self.formats.get(column)
            parsed = numeric_from_text(values) if kind == "numeric" else datetime_from_text(values, fmt)
            present = values.notna()
            lost = present & parsed.isna()
            total, missing, examples = self.counts.get(column, (0, 0, []))
            examples = list(dict.fromkeys(examples + list(values[lost].astype(str).unique()[:3])))[:3]
            self.counts[column] = (total + int(present.sum()), missing + int(lost.sum()), examples)

    def finish(self) -> None:
        for column, (present, lost, examples) in self.counts.items():
            if present and lost > LOST_SHARE * present:
                kind = self.params.data.column_types[column]
                raise StageError(
                    f"data.column_types.{column}: {kind} would turn {lost:,} of {present:,} values into missing "
                    f"(e.g. {examples})",
                    self.params.data.path,
                    f"remove the override, or set data.column_types.{column} to categorical or text",
                )


def ingest_summary(
    frame: pd.DataFrame, rows: int, source: Path, sha256: str, dialect: dict[str, object]
) -> dict[str, object]:
    """What was read: `rows`, and the columns with the dtypes of `frame` (a batch of the table)."""
    return {
        "source": str(source),
        "source_sha256": sha256,
        "rows": rows,
        # text held as categories is recorded as the text column it is (and is written so in the snapshot)
        "columns": {str(c): "str" if is_text_category(frame[c]) else str(t) for c, t in frame.dtypes.items()},
        "dialect": dialect,
    }


def run(params: Params, batch_rows: int = BATCH_ROWS) -> list[Path]:
    """Read the landing table batch by batch (`batch_rows` at a time) into the snapshot; its report beside."""
    start = time.perf_counter()
    data, out = params.data, params.ingest
    table = read_batches(data.path, ReadOptions.of(data), batch_rows)
    check_roles(table.columns, params)
    overrides = OverrideCheck(params, table.samples)
    first: pd.DataFrame | None = None
    with snapshot_writer(out.snapshot, table.dialect, table.null_types) as write:
        for batch in table.batches():
            overrides.add(batch)
            write(batch)
            first = batch.iloc[:0] if first is None else first
        overrides.finish()
    assert first is not None  # read_batches refuses a table without rows
    dialect = table.dialect.model_dump(mode="json")
    write_ingest_report(ingest_summary(first, table.rows, data.path, sha256_file(data.path), dialect), out.report)
    seconds = time.perf_counter() - start
    print(
        f"[ingest] {data.path}: {table.rows:,} rows x {len(table.columns)} columns -> {out.snapshot} ({seconds:.1f}s)"
    )
    for note in table.dialect.notes:
        print(f"[ingest] note: {note}")
    return [out.snapshot, out.report]


def main(argv: Sequence[str] | None = None) -> int:
    return stage_main("ingest", run, argv)


if __name__ == "__main__":
    sys.exit(main())
