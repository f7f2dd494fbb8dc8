"""The reader of record against a corpus of awkward exports: the same frame as the clean file, or refused."""

from __future__ import annotations

import gzip
from pathlib import Path

import pandas as pd
import pytest

from tabml.core.errors import StageError
from tabml.data.dialect import Dialect
from tabml.data.tables import ReadOptions, read_table, read_table_as
from tests.corpus import base_table, frame_sha, variants


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return variants(tmp_path_factory.mktemp("corpus"), base_table())


@pytest.fixture(scope="module")
def clean_sha(corpus: dict[str, Path]) -> str:
    return frame_sha(read_table(corpus["clean.csv"]))


def test_the_clean_file_keeps_na_words_as_values_and_reads_dates_and_numbers(corpus: dict[str, Path]) -> None:
    read = read_table_as(corpus["clean.csv"], ReadOptions())
    frame = read.frame
    assert set(frame["Code"]) == {"NA", "None", "null", "A1", "B2"} and frame["Code"].notna().all()
    assert pd.api.types.is_datetime64_any_dtype(frame["Opened"]) and frame["Opened"].iloc[1] == pd.Timestamp(
        "2022-01-04"
    )
    assert frame["Income"].dtype == "float64" and frame["Income"].iloc[0] == 129.0
    assert read.dialect.date_formats == {"Opened": "ISO8601"} and read.dialect.delimiter == ","


@pytest.mark.parametrize(
    "name",
    [
        "european.csv", "tabs.tsv", "pipes.txt", "excel_sep_line.csv", "trailing_delimiter.csv", "us_thousands.csv",
        "utf16.csv", "bom.csv", "day_first.csv", "dotted_dates.csv", "compact_dates.csv",
        "month_first.csv", "gzip.csv.gz", "zipped.zip", "bzip.csv.bz2", "xz.csv.xz", "no_extension",
        "workbook.xlsx", "typed.parquet",
    ],
)  # fmt: skip
def test_every_awkward_export_reads_exactly_like_the_clean_file(
    corpus: dict[str, Path], clean_sha: str, name: str
) -> None:
    assert frame_sha(read_table(corpus[name])) == clean_sha


def test_what_was_decided_is_recorded(corpus: dict[str, Path]) -> None:
    european = read_table_as(corpus["european.csv"], ReadOptions()).dialect
    assert (european.delimiter, european.decimal, european.thousands) == (";", ",", ".")
    assert european.date_formats == {"Opened": "%d/%m/%Y"}
    assert read_table_as(corpus["cp1252.csv"], ReadOptions(encoding="cp1252")).dialect.encoding == "cp1252"
    typed = read_table_as(corpus["typed.parquet"], ReadOptions()).dialect
    assert any("'tags' dropped: nested" in n for n in typed.notes)
    assert any("'Waited': duration read as seconds" in n for n in typed.notes)
    assert read_table_as(corpus["gzip.csv.gz"], ReadOptions()).dialect.compression == "gzip"


def test_a_legacy_encoding_that_reads_differently_is_refused_until_it_is_set(
    corpus: dict[str, Path], clean_sha: str
) -> None:
    with pytest.raises(StageError) as caught:
        read_table(corpus["cp1252.csv"])
    assert caught.value.where.endswith("cp1252.csv") and "reads differently in the encodings" in caught.value.what
    assert "'€é'" in caught.value.what and "set data.encoding" in caught.value.todo and "cp1252" in caught.value.todo
    assert frame_sha(read_table(corpus["cp1252.csv"], ReadOptions(encoding="cp1252"))) == clean_sha


def write(tmp_path: Path, name: str, content: bytes) -> Path:
    (tmp_path / name).write_bytes(content)
    return tmp_path / name


@pytest.mark.parametrize(
    ("name", "content", "found", "setting"),
    [
        ("groups.csv", b"a;b\n1,234;x\n2,500;y\n", "values like '1,234'", "data.decimal"),
        ("mixed.csv", b"a;b\n1,5;2.5\n2,5;3.5\n", "'.' as the decimal mark in ['b']", "data.decimal"),
        ("when.csv", b"when,y\n05/03/2024,1\n01/02/2024,2\n", "dates like '05/03/2024'", "data.date_formats"),
        ("garbled.csv", bytes(range(256)) * 40, "not text", "data.encoding"),
        ("bad_date.csv", b"when,y\n31/01/2024,1\n31/02/2024,2\n", "do not parse as dates", "data.date_formats"),
        ("broken.csv.gz", b"\x1f\x8b\x08\x00garbage", "does not decompress", "export"),
    ],
)
def test_ambiguous_or_broken_files_are_refused_naming_the_file_and_the_setting(
    tmp_path: Path, name: str, content: bytes, found: str, setting: str
) -> None:
    with pytest.raises(StageError) as caught:
        read_table(write(tmp_path, name, content))
    assert caught.value.where.endswith(name) and found in caught.value.what and setting in caught.value.todo


def test_settings_resolve_what_detection_cannot(tmp_path: Path) -> None:
    groups = write(tmp_path, "groups.csv", b"a;b\n1,234;x\n2,500;y\n")
    assert read_table(groups, ReadOptions(decimal=",", thousands=""))["a"].tolist() == [1.234, 2.5]
    assert read_table(groups, ReadOptions(decimal="."))["a"].tolist() == [1234, 2500]
    when = write(tmp_path, "when.csv", b"when,y\n05/03/2024,1\n01/02/2024,2\n")
    read = read_table(when, ReadOptions(date_formats={"when": "%d/%m/%Y"}))
    assert read["when"].tolist() == [pd.Timestamp("2024-03-05"), pd.Timestamp("2024-02-01")]
    hinted = read_table(when, hints=Dialect(format="csv", date_formats={"when": "%m/%d/%Y"}))
    assert hinted["when"].iloc[0] == pd.Timestamp("2024-05-03")  # a batch read as its reference was


def test_na_values_are_only_what_the_user_lists(tmp_path: Path) -> None:
    table = write(tmp_path, "t.csv", b"job,x\nNA,1\nnull,2\n,3\n-,4\n")
    assert read_table(table)["job"].tolist()[:2] == ["NA", "null"] and read_table(table)["job"].isna().sum() == 1
    assert read_table(table, ReadOptions(na_values=("-",)))["job"].isna().sum() == 2


def test_a_workbook_with_several_sheets_needs_data_sheet(tmp_path: Path) -> None:
    path = tmp_path / "book.xlsx"
    with pd.ExcelWriter(path, engine="openpyxl") as book:
        pd.DataFrame({"a": [1, 2]}).to_excel(book, sheet_name="notes", index=False)
        pd.DataFrame({"b": [3, 4]}).to_excel(book, sheet_name="table", index=False)
    with pytest.raises(StageError, match=r"2 sheets \['notes', 'table'\]") as caught:
        read_table(path)
    assert "data.sheet" in caught.value.todo
    assert read_table(path, ReadOptions(sheet="table"))["b"].tolist() == [3, 4]


def test_a_zip_of_several_files_is_refused(tmp_path: Path) -> None:
    import zipfile

    path = tmp_path / "two.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("a.csv", "a\n1\n")
        archive.writestr("b.csv", "b\n2\n")
    with pytest.raises(StageError, match="holds 2 files"):
        read_table(path)
    assert read_table(write(tmp_path, "x.gz", gzip.compress(b"a,b\n1,2\n")))["b"].tolist() == [2]


def test_a_batch_is_read_with_its_references_dialect_when_its_own_is_ambiguous(tmp_path: Path) -> None:
    groups = write(tmp_path, "groups.csv", b"a;b\n1,234;x\n2,500;y\n")
    european = Dialect(format="csv", delimiter=";", decimal=",", thousands=".")
    assert read_table(groups, hints=european)["a"].tolist() == [1.234, 2.5]
    assert read_table(groups, hints=european.model_copy(update={"decimal": "."}))["a"].tolist() == [1234, 2500]


def test_a_decimal_mark_that_contradicts_the_reference_is_refused_until_it_is_set(
    corpus: dict[str, Path], clean_sha: str
) -> None:
    dotted = Dialect(format="csv", delimiter=",", decimal=".")
    with pytest.raises(StageError) as caught:
        read_table(corpus["european.csv"], hints=dotted)
    assert caught.value.where.endswith("european.csv")
    assert "with ',' as the decimal mark" in caught.value.what and "the reference was read from used '.'" in (
        caught.value.what
    )
    assert "data.decimal: ','" in caught.value.todo and "--decimal ','" in caught.value.todo
    assert frame_sha(read_table(corpus["european.csv"], ReadOptions(decimal=","), hints=dotted)) == clean_sha
    assert frame_sha(read_table(corpus["clean.csv"], hints=dotted)) == clean_sha  # agreeing: read as before
