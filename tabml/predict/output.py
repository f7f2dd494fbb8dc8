"""The predictions file, written batch by batch under a temporary name and renamed when whole (atomic): a reader
never sees half a file, a failed run leaves no temp file, and memory holds one batch of predictions at a time."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Protocol

import pandas as pd

from tabml.core.errors import StageError
from tabml.core.files import atomic_path

OUTPUT_FORMATS = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}


class BatchWriter(Protocol):
    def __call__(self, batch: pd.DataFrame) -> None: ...


def output_format(path: Path) -> str:
    fmt = OUTPUT_FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise StageError(f"unknown output format {path.suffix!r}", path, "name the output .csv or .parquet")
    return fmt


@contextmanager
def batch_writer(path: Path) -> Iterator[BatchWriter]:
    """A function that appends one batch of rows to `path` (.csv: one header; .parquet: one row group each)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    fmt = output_format(path)
    with atomic_path(path) as tmp:
        if fmt == "csv":
            with tmp.open("w", newline="") as fh:

                def write_csv(batch: pd.DataFrame) -> None:
                    batch.to_csv(fh, index=False, header=fh.tell() == 0)

                yield write_csv
            return
        writer: list[pq.ParquetWriter] = []
        try:

            def write_parquet(batch: pd.DataFrame) -> None:
                schema = writer[0].schema if writer else pa.Schema.from_pandas(batch, preserve_index=False)
                if not writer:
                    writer.append(pq.ParquetWriter(tmp, schema))
                writer[0].write_table(pa.Table.from_pandas(batch, schema=schema, preserve_index=False))

            yield write_parquet
        finally:
            for open_writer in writer:
                open_writer.close()


def write_table(frame: pd.DataFrame, path: Path) -> Path:
    """All rows at once (one batch)."""
    with batch_writer(path) as write:
        write(frame)
    return path
