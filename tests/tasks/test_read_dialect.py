"""ingest records how the landing table was read; validate keeps it in the reference and refuses a batch whose
dates are written in another format; contradicting overrides are refused before any work."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tabml.core.errors import ExitCode
from tasks import ingest, validate
from tests.conftest import edit_params
from tests.tasks.test_validate import write_params


def toy(n: int = 400, fmt: str = "%d/%m/%Y") -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame({
        "id": np.arange(n),
        "income": rng.normal(100, 10, n).round(1),
        "opened": (pd.Timestamp("2023-01-01") + pd.to_timedelta(np.arange(n), unit="D")).strftime(fmt),
        "job": rng.choice(["NA", "fixed", "freelance"], n),
        "label": np.where(np.arange(n) % 3 == 0, "bad", "good"),
    })  # fmt: skip


@pytest.fixture
def here(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    write_params(tmp_path)
    Path("data/landing").mkdir(parents=True)
    return tmp_path


def land(frame: pd.DataFrame, **csv: str) -> None:
    Path("data/landing/toy.csv").write_text(frame.to_csv(index=False, **csv))  # type: ignore[arg-type]


def test_the_dialect_is_recorded_and_a_changed_date_format_is_a_validation_error(
    here: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    land(toy(), sep=";", decimal=",")
    assert ingest.main(["--params", "params.yaml"]) == 0
    dialect = json.loads(Path("reports/ingest.json").read_text())["dialect"]
    assert (dialect["delimiter"], dialect["decimal"], dialect["date_formats"]) == (";", ",", {"opened": "%d/%m/%Y"})
    snapshot = pd.read_parquet("data/snapshot/table.parquet")
    assert snapshot["income"].between(50, 150).all() and set(snapshot["job"]) == {"NA", "fixed", "freelance"}
    assert validate.main(["--params", "params.yaml"]) == 0
    reference = json.loads(Path("references/toy/expectations.json").read_text())
    assert reference["dialect"]["date_formats"] == {"opened": "%d/%m/%Y"}

    land(toy(fmt="%m/%d/%Y"))
    assert ingest.main(["--params", "params.yaml"]) == 0
    capsys.readouterr()
    assert validate.main(["--params", "params.yaml"]) != 0
    err = capsys.readouterr().err
    assert "column 'opened': dates are written as '%m/%d/%Y', the reference as '%d/%m/%Y'" in err


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"column_types": {"job": "numeric"}}, "data.column_types.job: numeric would turn 400 of 400 values"),
        ({"drop_columns": ["nope"]}, "data.drop_columns[0]='nope'"),
        ({"id_column": "ID"}, "data.id_column='ID'"),
    ],
)
def test_overrides_that_contradict_the_table_are_refused_before_any_work(
    here: Path, capsys: pytest.CaptureFixture[str], data: dict[str, object], message: str
) -> None:
    land(toy())
    edit_params(here, data=data)
    assert ingest.main(["--params", "params.yaml"]) == ExitCode.BAD_INPUT
    assert message in capsys.readouterr().err
    assert not Path("data/snapshot/table.parquet").exists()


def test_a_parquet_batch_with_a_list_column_is_validated_not_crashed(
    here: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    frame = toy()
    table = pa.Table.from_pandas(frame, preserve_index=False)
    table = table.append_column("tags", pa.array([[i % 3] for i in range(len(frame))], pa.list_(pa.int64())))
    pq.write_table(table, "data/landing/toy.parquet")
    edit_params(here, data={"path": "data/landing/toy.parquet"})
    assert ingest.main(["--params", "params.yaml"]) == 0
    assert "column 'tags' dropped: nested" in capsys.readouterr().out
    assert validate.main(["--params", "params.yaml"]) == 0
    assert "tags" not in pd.read_parquet("data/snapshot/accepted.parquet").columns
