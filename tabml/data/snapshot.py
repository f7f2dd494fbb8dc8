"""The snapshot artifacts: what ingest wrote (`ingest.snapshot`, `ingest.report`) and what validate accepted
(`preprocess.input`).

Both are Parquet files of the landing table exactly as read; the accepted one is replaced atomically and only
when a snapshot passes validation, so preprocess, evaluate and register always read the last good batch.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING

import pandas as pd

from tabml.core.errors import StageError
from tabml.data.dialect import Dialect

if TYPE_CHECKING:
    import pyarrow as pa

DIALECT_KEY = b"tabml.dialect"


def write_snapshot(frame: pd.DataFrame, path: Path, dialect: Dialect | None = None) -> Path:
    """The table as ingest read it, with the dialect it was read with in the Parquet metadata; written beside
    and renamed, so a crash never leaves half a file."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    try:
        table = plain_text(pa.Table.from_pandas(frame, preserve_index=False))
        if dialect is not None:
            extra = {DIALECT_KEY: dialect.model_dump_json().encode()}
            table = table.replace_schema_metadata({**(table.schema.metadata or {}), **extra})
        pq.write_table(table, partial)
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)
    return path


@contextmanager
def snapshot_writer(
    path: Path, dialect: Dialect | None = None, null_types: Mapping[str, str] = MappingProxyType({})
) -> Iterator[Callable[[pd.DataFrame], None]]:
    """`write(batch)` appends a row group: the same schema and metadata `write_snapshot` writes for the batches'
    concatenation (a first batch's all-missing column typed as `null_types` says); renamed into place when whole."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    writer: pq.ParquetWriter | None = None

    def write(frame: pd.DataFrame) -> None:
        nonlocal writer
        table = plain_text(pa.Table.from_pandas(frame, preserve_index=False))
        if writer is None:
            fields = [pa.field(f.name, pa.type_for_alias(null_types[f.name])) if pa.types.is_null(f.type)
                      and f.name in null_types else f for f in table.schema]  # fmt: skip
            extra = {DIALECT_KEY: dialect.model_dump_json().encode()} if dialect is not None else {}
            writer = pq.ParquetWriter(partial, pa.schema(fields, {**(table.schema.metadata or {}), **extra}))
        writer.write_table(conform(table, writer.schema))

    try:
        yield write
        if writer is None:
            raise ValueError("no batch was written")
        writer.close()
        os.replace(partial, path)
    finally:
        if writer is not None:
            writer.close()
        partial.unlink(missing_ok=True)


def conform(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """`table` in `schema`'s types: a column that is all missing in this batch takes the column's type."""
    import pyarrow as pa

    if table.schema.equals(schema, check_metadata=False):
        return table
    columns = [
        column if column.type == kind else pa.nulls(len(column), kind) if column.null_count == len(column)
        else column.cast(kind)
        for column, kind in zip(table.columns, schema.types, strict=True)
    ]  # fmt: skip
    return pa.Table.from_arrays(columns, schema=schema)


def plain_text(table: pa.Table) -> pa.Table:
    """Unordered text categories (how the reader holds text) stored, and described to pandas, as the plain text
    column pandas itself writes: the snapshot is the same whichever way the text was held. Ordered ones stay."""
    import pyarrow as pa

    meta = table.schema.pandas_metadata or {}
    described = {c.get("field_name"): c for c in meta.get("columns", [])}
    plain = pa.Schema.from_pandas(pd.DataFrame({"text": pd.Series(["a"], dtype="str")}), preserve_index=False)
    plain_entry = {k: v for k, v in plain.pandas_metadata["columns"][0].items() if k not in ("name", "field_name")}
    changed = False
    for i, field in enumerate(table.schema):
        kind = field.type
        if pa.types.is_dictionary(kind) and not kind.ordered and _is_text_type(kind.value_type):
            table = table.set_column(
                i, pa.field(field.name, plain.field(0).type), table[field.name].cast(plain.field(0).type)
            )
            described.get(field.name, {}).update(plain_entry)
            changed = True
    if not changed:
        return table
    return table.replace_schema_metadata({**(table.schema.metadata or {}), b"pandas": json.dumps(meta).encode()})


def read_snapshot(path: Path) -> tuple[pd.DataFrame, dict[str, int]]:
    """The ingest snapshot as a frame (text columns as `category`), plus NaNs per float column.

    pandas reads NaN and null alike as missing, so NaNs stored as such are counted here, in Arrow.
    """
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    if not path.exists():
        raise StageError("snapshot not found", path, "run the ingest stage first: python -m tasks.ingest")
    schema = pq.read_schema(path)
    text = [f.name for f in schema if pa.types.is_string(f.type) or pa.types.is_large_string(f.type)]
    table = pq.read_table(path, read_dictionary=text)  # each distinct value once in memory and in the checks
    nan_counts = {
        name: int(pc.sum(pc.is_nan(table[name])).as_py() or 0)
        for name, field in zip(table.column_names, table.schema, strict=True)
        if pa.types.is_floating(field.type)
    }
    return table.to_pandas(), nan_counts


def publish_accepted(snapshot: Path, accepted: Path) -> Path:
    """Replace the accepted snapshot with this one, atomically (same bytes, so DVC stores them once)."""
    accepted.parent.mkdir(parents=True, exist_ok=True)
    partial = accepted.with_name(f".{accepted.name}.partial")
    try:
        shutil.copyfile(snapshot, partial)
        os.replace(partial, accepted)
    finally:
        partial.unlink(missing_ok=True)
    return accepted


def read_accepted(path: Path, text_as_categories: bool = False) -> pd.DataFrame:
    """The table preprocess reads (`preprocess.input`), as validate accepted it; text columns as categories when
    asked (each distinct value held once: preprocess's 3-million-row tables)."""
    if not path.exists():
        raise StageError(
            "no accepted snapshot yet",
            path,
            "run the pipeline up to validation first (`dvc repro validate`); a batch that fails validation is "
            "quarantined and never becomes the accepted snapshot",
        )
    if not text_as_categories:
        return pd.read_parquet(path)
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = pq.read_schema(path)
    text = [f.name for f in schema if pa.types.is_string(f.type) or pa.types.is_large_string(f.type)]
    return pq.read_table(path, read_dictionary=text).to_pandas()


def write_ingest_report(summary: dict[str, object], path: Path) -> Path:
    """`ingest.report`: rows, columns and the dialect the landing table was read with."""
    from tabml.core.files import write_text_atomic

    path.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(path, json.dumps(summary, indent=2) + "\n")
    return path


def read_snapshot_dialect(path: Path) -> Dialect | None:
    """How ingest read the table, from the snapshot's metadata; None for snapshots written before dialects."""
    import pyarrow.parquet as pq

    found = (pq.read_schema(path).metadata or {}).get(DIALECT_KEY) if path.exists() else None
    return Dialect.model_validate_json(found) if found else None


def _is_text_type(kind: pa.DataType) -> bool:
    import pyarrow as pa

    return bool(pa.types.is_string(kind) or pa.types.is_large_string(kind))
