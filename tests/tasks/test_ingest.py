import json
import shutil
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest
import yaml

from tabml.core.errors import ExitCode, StageError
from tabml.core.params import load_params
from tasks import ingest
from tests.conftest import edit_params
from tests.workspace import EXAMPLE_PARAMS, EXAMPLE_TABLE


@pytest.fixture
def here(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    shutil.copy(EXAMPLE_PARAMS, tmp_path / "params.yaml")
    (tmp_path / "data/landing").mkdir(parents=True)
    shutil.copy(EXAMPLE_TABLE, tmp_path / "data/landing/credit.csv")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def point_at(root: Path, name: str, content: bytes) -> None:
    (root / name).write_bytes(content)
    edit_params(root, data={"path": name})


def test_example_table_becomes_a_parquet_snapshot(here: Path) -> None:
    assert ingest.main([]) == 0
    snapshot = pd.read_parquet(here / "data/snapshot/table.parquet")
    original = pd.read_csv(EXAMPLE_TABLE)
    assert snapshot.shape == original.shape == (4454, 14)
    assert list(snapshot.columns) == list(original.columns)


def test_parquet_landing_table_is_read_too(here: Path) -> None:
    pd.read_csv(EXAMPLE_TABLE).to_parquet(here / "t.parquet")
    edit_params(here, data={"path": "t.parquet"})
    assert ingest.main([]) == 0


def test_semicolon_separated_export_is_detected(here: Path) -> None:
    point_at(here, "semi.csv", b"Status;Age;Home\ngood;30;rent\nbad;40;owner\n")
    edit_params(here, evaluate={"slices": {"credit": ["Home"]}})
    ingest.run(load_params())
    assert list(pd.read_parquet(here / "data/snapshot/table.parquet").columns) == ["Status", "Age", "Home"]


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("missing.csv", None, "file not found"),
        ("empty.csv", b"", "empty"),
        ("garbled.csv", bytes(range(256)) * 40, "not text"),
        ("ragged.csv", b"Status,Age\ngood,30\nbad,40,extra,fields\ngood,1\n", "same number of fields"),
        ("header_only.csv", b"Status,Age\n", "no rows"),
        ("dupes.csv", b"Status,Age,Age\ngood,1,2\n", "duplicate column"),
    ],
)
def test_bad_files_fail_with_the_file_and_the_fix(
    here: Path, capsys: pytest.CaptureFixture[str], name: str, content: bytes | None, message: str
) -> None:
    if content is None:
        edit_params(here, data={"path": name})
    else:
        point_at(here, name, content)
    assert ingest.main([]) == ExitCode.BAD_INPUT
    err = capsys.readouterr().err
    assert f"[ingest] FAILED: {name}" in err and message in err and "what to do:" in err
    assert not (here / "data/snapshot/table.parquet").exists()


def test_target_not_in_table_lists_the_columns(here: Path, capsys: pytest.CaptureFixture[str]) -> None:
    edit_params(here, data={"target": "status"})
    assert ingest.main([]) == ExitCode.BAD_INPUT
    err = capsys.readouterr().err
    assert "data.target='status'" in err and "'Status'" in err


def test_every_key_that_names_a_column_is_checked_against_the_table(
    here: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    raw = yaml.safe_load((here / "params.yaml").read_text())
    raw["validate"]["drift"]["columns"] = {"Incme": "warn"}
    raw["evaluate"]["slices"] = {"credit": ["Home", "Jobs"]}
    (here / "params.yaml").write_text(yaml.safe_dump(raw))
    assert ingest.main([]) == ExitCode.BAD_INPUT
    err = capsys.readouterr().err
    assert "validate.drift.columns.Incme='Incme'" in err and "evaluate.slices.credit[1]='Jobs'" in err


def test_a_text_file_read_as_csv_is_refused_without_quoting_its_contents(
    here: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A deployment trigger can point data.path at any readable file: its lines must not reach logs/webhooks."""
    point_at(here, "notes.txt", b"root:x:0:0:token=abc123:/root:/bin/bash\nsecond line\n")
    edit_params(here, data={"format": "csv"})
    assert ingest.main([]) == ExitCode.BAD_INPUT
    err = capsys.readouterr().err
    assert "[ingest] FAILED: " in err and "does not read as a header" in err
    assert "abc123" not in err and "root:x" not in err


def test_ingest_in_small_batches_writes_the_snapshot_and_report_one_batch_writes(here: Path) -> None:
    params = load_params()
    ingest.run(params)
    whole = pq.read_table(here / "data/snapshot/table.parquet")
    report = json.loads((here / "reports/ingest.json").read_text())
    ingest.run(params, batch_rows=300)
    assert pq.read_table(here / "data/snapshot/table.parquet").equals(whole, check_metadata=True)
    assert pq.ParquetFile(here / "data/snapshot/table.parquet").num_row_groups == 15  # 4,454 rows, 300 a batch
    assert json.loads((here / "reports/ingest.json").read_text()) == report and report["rows"] == 4454


def test_an_override_that_nulls_most_values_is_refused_counted_over_all_batches(here: Path) -> None:
    edit_params(here, data={"column_types": {"Home": "numeric"}})
    with pytest.raises(StageError) as caught:
        ingest.run(load_params(), batch_rows=100)
    assert "numeric would turn 4,448 of 4,448 values into missing" in caught.value.what
    assert not (here / "data/snapshot/table.parquet").exists()
