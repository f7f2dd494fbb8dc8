"""ingest: landing-zone CSV/Parquet -> versioned Parquet snapshot (DVC tracks it)."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from tabml.core.errors import StageError
from tabml.core.files import sha256_file
from tabml.core.params import Params
from tabml.core.stage import stage_main
from tabml.data.tables import read_table


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
            f"use one of the table's columns: {list(frame.columns)}",
        )


def ingest_summary(frame: pd.DataFrame, source: Path, sha256: str) -> dict[str, object]:
    """reports/ingest.json: git-tracked, so no clock time or duration (the same table gives the same file)."""
    return {
        "source": str(source),
        "source_sha256": sha256,
        "rows": len(frame),
        "columns": {str(c): str(t) for c, t in frame.dtypes.items()},
    }


def run(params: Params) -> list[Path]:
    start = time.perf_counter()
    data, out = params.data, params.ingest
    frame = read_table(data.path, data.format)
    check_roles(frame, params)
    out.snapshot.parent.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(out.snapshot, index=False)
    summary = ingest_summary(frame, data.path, sha256_file(data.path))
    out.report.parent.mkdir(parents=True, exist_ok=True)
    out.report.write_text(json.dumps(summary, indent=2) + "\n")
    seconds = time.perf_counter() - start
    print(f"[ingest] {data.path}: {len(frame):,} rows x {frame.shape[1]} columns -> {out.snapshot} ({seconds:.1f}s)")
    return [out.snapshot, out.report]


def main(argv: Sequence[str] | None = None) -> int:
    return stage_main("ingest", run, argv)


if __name__ == "__main__":
    sys.exit(main())
