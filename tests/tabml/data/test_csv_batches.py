"""A CSV read in batches (as ingest streams it) gives the snapshot one read of the whole file gives, or the same
refusal: forced here to batches of a few rows, so every column's late surprises fall in a later batch."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

from tabml.core.errors import StageError
from tabml.core.files import sha256_file
from tabml.data.csv_batches import read_batches
from tabml.data.snapshot import snapshot_writer, write_snapshot
from tabml.data.tables import SAMPLE_ROWS, ReadOptions, read_table_as
from tests.corpus import base_table, frame_sha, variants

ROWS = SAMPLE_ROWS + 600  # the last 600 rows are past the sample that decides which columns are text


def late_surprises(path: Path) -> Path:
    """Columns whose every surprise comes after the sample: a new category level, a day over 12 (day-first
    dates), a time zone, a missing integer, a missing boolean, text in a number column, leading-zero codes,
    `NA` as a level, and a text column empty for a whole batch."""
    n = ROWS
    late = range(n)
    frame = pd.DataFrame(
        {
            "Job": ["NA" if i % 3 else "None" for i in late],
            "Level": ["late level" if i == n - 5 else "a" if i % 2 else "b" for i in late],
            "Opened": [f"{i % 12 + 1:02d}/{(i // 12) % 12 + 1:02d}/2024" for i in late],
            "Stamp": [f"2024-01-{i % 28 + 1:02d}T10:00:00" for i in late],
            "Count": [str(i) for i in late],
            "Flag": ["True" if i % 2 else "False" for i in late],
            "Mixed": [str(i % 50) for i in late],
            "Zip": [f"{i % 900:05d}" for i in late],
            "Note": ["x" if i < 20 else "" for i in late],
        }
    )
    frame.loc[n - 3, "Opened"] = "25/12/2024"  # decides day-first, seen only in the last batches
    frame.loc[n - 2, "Stamp"] = "2024-03-01T10:00:00+02:00"  # one zoned value: every stamp read in UTC
    frame.loc[n - 4, ["Count", "Flag"]] = ""  # a missing integer (floats) and boolean (objects)
    frame.loc[n - 1, "Mixed"] = "n/a"  # text after numbers: the column is text, as written
    frame.to_csv(path, index=False)
    return path


def one_read(source: Path, dest: Path) -> tuple[Path, str, dict[str, object]]:
    read = read_table_as(source, ReadOptions())
    return write_snapshot(read.frame, dest, read.dialect), frame_sha(read.frame), read.dialect.model_dump()


def in_batches(source: Path, dest: Path, rows: int) -> tuple[Path, str, dict[str, object]]:
    table = read_batches(source, ReadOptions(), rows)
    frames = []
    with snapshot_writer(dest, table.dialect, table.null_types) as write:
        for batch in table.batches():
            assert len(batch) <= rows or table.dialect.format != "csv"  # Parquet, .xlsx: one batch
            frames.append(batch)
            write(batch)
    whole = pd.concat(frames, ignore_index=True)
    assert len(whole) == table.rows and list(whole.columns) == table.columns
    return dest, frame_sha(whole), table.dialect.model_dump()


def assert_same_snapshot(a: Path, b: Path) -> None:
    assert pq.read_table(a).equals(pq.read_table(b), check_metadata=True)
    assert pq.read_schema(a).metadata == pq.read_schema(b).metadata
    pd.testing.assert_frame_equal(pd.read_parquet(a), pd.read_parquet(b))


def test_late_levels_dates_zones_and_types_read_as_one_read_reads_them(tmp_path: Path) -> None:
    source = late_surprises(tmp_path / "late.csv")
    whole, whole_sha, dialect = one_read(source, tmp_path / "one.parquet")
    for rows in (7, 100, 999):
        batched, batched_sha, batched_dialect = in_batches(source, tmp_path / f"b{rows}.parquet", rows)
        assert_same_snapshot(whole, batched)
        assert batched_sha == whole_sha and batched_dialect == dialect
    frame = pd.read_parquet(whole)
    assert frame["Level"].iloc[-5] == "late level" and set(frame["Job"]) == {"NA", "None"}
    assert frame["Opened"].iloc[-3] == pd.Timestamp("2024-12-25") and frame["Opened"].iloc[1] == pd.Timestamp(
        "2024-01-02"
    )
    assert str(frame["Stamp"].dtype).endswith("UTC]") and frame["Zip"].iloc[7] == "00007"
    assert frame["Count"].dtype == "float64" and frame["Flag"].dtype == object and frame["Mixed"].iloc[-1] == "n/a"
    assert dialect["date_formats"] == {"Opened": "%d/%m/%Y", "Stamp": "ISO8601"}


def test_one_batch_writes_the_same_bytes_as_one_read(tmp_path: Path) -> None:
    source = late_surprises(tmp_path / "late.csv")
    whole, _, _ = one_read(source, tmp_path / "one.parquet")
    batched, _, _ = in_batches(source, tmp_path / "batched.parquet", ROWS)
    assert sha256_file(batched) == sha256_file(whole)


@pytest.mark.parametrize(
    "name",
    ["clean.csv", "european.csv", "excel_sep_line.csv", "trailing_delimiter.csv", "us_thousands.csv", "utf16.csv",
     "day_first.csv", "dotted_dates.csv", "compact_dates.csv", "month_first.csv", "gzip.csv.gz", "typed.parquet"],
)  # fmt: skip
def test_every_awkward_export_reads_in_batches_as_in_one_read(tmp_path: Path, name: str) -> None:
    source = variants(tmp_path / "corpus", base_table())[name]
    whole, whole_sha, dialect = one_read(source, tmp_path / "one.parquet")
    batched, batched_sha, batched_dialect = in_batches(source, tmp_path / "batched.parquet", 50)
    assert_same_snapshot(whole, batched)
    assert batched_sha == whole_sha and batched_dialect == dialect


def test_a_late_date_that_does_not_parse_is_refused_as_in_one_read(tmp_path: Path) -> None:
    frame = pd.DataFrame({"Opened": [f"2024-01-{i % 28 + 1:02d}" for i in range(ROWS)], "Age": range(ROWS)})
    frame.loc[ROWS - 2, "Opened"] = "2024-02-30"  # written like ISO, no such day
    frame.to_csv(tmp_path / "bad.csv", index=False)
    with pytest.raises(StageError) as whole:
        read_table_as(tmp_path / "bad.csv", ReadOptions())
    with pytest.raises(StageError) as batched:
        in_batches(tmp_path / "bad.csv", tmp_path / "batched.parquet", 10)
    assert "1 value(s) do not parse as dates in 'ISO8601', e.g. ['2024-02-30']" in batched.value.what
    assert (batched.value.what, batched.value.todo) == (whole.value.what, whole.value.todo)
    assert not (tmp_path / "batched.parquet").exists()


def test_dates_ambiguous_in_the_whole_file_are_refused_whatever_the_batches(tmp_path: Path) -> None:
    lines = ["Opened,Age", *(f"{i % 12 + 1:02d}/{i % 12 + 1:02d}/2024,{i}" for i in range(300))]
    (tmp_path / "ambiguous.csv").write_text("\n".join(lines) + "\n")
    with pytest.raises(StageError) as batched:
        read_batches(tmp_path / "ambiguous.csv", ReadOptions(), 10)
    assert "read day-first and month-first alike" in batched.value.what
    assert "data.date_formats" in batched.value.todo
