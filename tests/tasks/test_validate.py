"""validate stage end to end: real params.yaml, real Parquet snapshots, real Great Expectations."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from tabml.cli import StageError
from tabml.params import load_params
from tasks.validate import main, run

PROJECT = Path(__file__).resolve().parents[2]
SNAPSHOT = Path("data/snapshot/table.parquet")
REPORT = Path("reports/validation.json")
REFERENCE = Path("references/toy/expectations.json")


def write_params(root: Path, **data: Any) -> Path:
    """The project's params.yaml, pointed at a tiny `toy` table inside `root`."""
    params = yaml.safe_load((PROJECT / "params.yaml").read_text())
    params["data"].update({
        "name": "toy", "path": "data/landing/toy.csv", "target": "label", "task": "binary",
        "positive_class": "bad", "id_column": "id", **data,
    })  # fmt: skip
    params["ingest"].update({"snapshot": str(SNAPSHOT), "report": "reports/ingest.json"})
    params["validate"].update({"report": str(REPORT), "reference_dir": "references", "min_rows": 20})
    path = root / "params.yaml"
    path.write_text(yaml.safe_dump(params, sort_keys=False))
    return path


def table(n: int = 60, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "id": np.arange(n) + 1000 * seed,
            "age": rng.integers(18, 70, n),
            "income": np.where(np.arange(n) % 10 == 0, np.nan, rng.normal(100, 10, n).round(1)),
            "city": rng.choice(["paris", "lyon", "nice"], n),
            "member": rng.random(n) < 0.5,
            "label": np.where(np.arange(n) % 3 == 0, "bad", "good"),
        }
    )


@pytest.fixture
def stage(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Callable[..., Any]:
    """Write a snapshot, run `python -m tasks.validate` in-process; return (exit code, stderr, report)."""
    monkeypatch.chdir(tmp_path)
    params = write_params(tmp_path)

    def go(frame: pd.DataFrame, *args: str) -> tuple[int, str, dict[str, Any]]:
        SNAPSHOT.parent.mkdir(parents=True, exist_ok=True)
        frame.to_parquet(SNAPSHOT, index=False)
        capsys.readouterr()
        code = main(["--params", str(params), *args])
        return code, capsys.readouterr().err, json.loads(REPORT.read_text())

    return go


def test_first_run_creates_reference_then_same_and_fresh_data_pass(stage: Callable[..., Any]) -> None:
    code, err, report = stage(table())
    assert code == 0 and report["success"] and report["reference_created"]
    assert report["reference"] == str(REFERENCE) and report["rows"] == 60 and report["errors"] == []
    reference = json.loads(REFERENCE.read_text())
    assert reference["dataset"] == "toy" and reference["target"]["classes"] == ["bad", "good"]
    assert set(reference["columns"]) == {"id", "age", "income", "city", "member", "label"}
    assert {c["name"] for c in report["checks"]} >= {"columns_present", "not_null", "range", "unique_id", "finite"}

    for frame in (table(), table(seed=1)):
        code, err, report = stage(frame)
        assert code == 0 and report["success"] and not report["reference_created"], err
    assert json.loads(REFERENCE.read_text()) == reference  # a passing run leaves the reference alone


def _null_flood(df: pd.DataFrame) -> pd.DataFrame:
    return df.assign(income=df["income"].where(df.index % 2 == 0))


def _set(column: str, row: int, value: Any) -> Callable[[pd.DataFrame], pd.DataFrame]:
    def edit(df: pd.DataFrame) -> pd.DataFrame:
        df = df.copy()
        df.loc[row, column] = value
        return df

    return edit


BROKEN = {
    "missing column": (lambda df: df.drop(columns="age"), ["missing column(s) 'age'"]),
    "renamed column": (lambda df: df.rename(columns={"age": "years"}), ["missing column(s) 'age'", "'years'"]),
    "numbers as strings": (
        lambda df: df.assign(income=df["income"].map(lambda v: None if pd.isna(v) else str(v))),
        ["column 'income': numbers stored as strings"],
    ),
    "null flood": (_null_flood, ["column 'income'", "nulls", "allows at most 20.0%"]),
    "out of range": (_set("age", 3, 500), ["column 'age'", "outside", "[500]"]),
    "unseen category": (_set("city", 5, "tokyo"), ["column 'city'", "unseen categories", "'tokyo'"]),
    "single-class target": (lambda df: df.assign(label="good"), ["target 'label'", "exactly 2 classes, found 1"]),
    "unseen target class": (_set("label", 4, "ugly"), ["column 'label'", "unseen target classes", "'ugly'"]),
    "duplicate ids": (_set("id", 7, 0), ["column 'id'", "duplicate ids"]),
    "inf in numeric": (_set("income", 2, np.inf), ["column 'income'", "±inf"]),
    "too few rows": (lambda df: df.head(10), ["10 rows, expected at least 20"]),
    "type change": (lambda df: df.assign(member=df["age"]), ["column 'member'", "type changed", "boolean"]),
}


@pytest.mark.parametrize("case", list(BROKEN))
def test_broken_snapshot_fails_with_readable_message(stage: Callable[..., Any], case: str) -> None:
    assert stage(table())[0] == 0
    breaks, phrases = BROKEN[case]
    code, err, report = stage(breaks(table()))
    assert code == 1 and not report["success"]
    assert err.startswith(f"[validate] FAILED: {SNAPSHOT}: ")
    assert "--rederive-reference" in err and "data/landing/toy.csv" in err and str(REFERENCE) in err
    for phrase in phrases:
        assert phrase in err, f"{phrase!r} not in:\n{err}"
        assert any(phrase in line for line in report["errors"] + report["warnings"]), report["errors"]


def test_extra_column_only_warns(stage: Callable[..., Any]) -> None:
    stage(table())
    code, err, report = stage(table().assign(branch="north"))
    assert code == 0 and report["success"]
    assert report["warnings"] == ["column 'branch' is not in the reference (a new column); it is not checked"]
    assert "[validate] warning: column 'branch'" in err


def test_nan_stored_in_the_file_is_an_error(stage: Callable[..., Any]) -> None:
    stage(table())
    columns = pa.Table.from_pandas(table(), preserve_index=False).to_pydict()  # pandas' NaN -> null
    columns["income"][1] = float("nan")  # a real IEEE NaN, as Spark or numpy exports may write
    pq.write_table(pa.table(columns), SNAPSHOT)
    code = main(["--params", "params.yaml"])
    report = json.loads(REPORT.read_text())
    assert code == 1 and any("column 'income': 1 NaN and 0 ±inf" in e for e in report["errors"])


def test_rederive_reference_accepts_the_new_shape(stage: Callable[..., Any]) -> None:
    stage(table())
    renamed = table().rename(columns={"age": "years"})
    assert stage(renamed)[0] == 1
    code, err, report = stage(renamed, "--rederive-reference")
    assert code == 0 and report["reference_created"] and report["reference_rederived"], err
    assert "years" in json.loads(REFERENCE.read_text())["columns"]
    assert stage(renamed)[0] == 0


def test_failing_first_snapshot_does_not_become_the_reference(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    params = load_params(write_params(tmp_path))
    SNAPSHOT.parent.mkdir(parents=True)
    table().assign(label="good").to_parquet(SNAPSHOT)
    with pytest.raises(StageError, match="exactly 2 classes"):
        run(params)
    assert not REFERENCE.exists()
    assert json.loads(REPORT.read_text())["reference_created"] is False


def test_user_edits_to_the_reference_are_enforced(stage: Callable[..., Any]) -> None:
    stage(table())
    reference = json.loads(REFERENCE.read_text())
    reference["columns"]["age"]["max"] = 40
    REFERENCE.write_text(json.dumps(reference, indent=2))
    code, err, _ = stage(table())
    assert code == 1 and "column 'age'" in err and "outside [" in err and ", 40]" in err
    REFERENCE.write_text('{"format_version": 1, "dataset": "toy"}')
    with pytest.raises(StageError, match=r"expectations.json: reference expectations are not valid") as caught:
        run(load_params(Path("params.yaml")))
    assert "--rederive-reference" in str(caught.value)


def test_real_credit_example(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "params.yaml"
    params = yaml.safe_load((PROJECT / "params.yaml").read_text())
    path.write_text(yaml.safe_dump(params, sort_keys=False))
    loaded = load_params(path)
    loaded.ingest.snapshot.parent.mkdir(parents=True)
    pd.read_csv(PROJECT / "data/landing/credit.csv").to_parquet(loaded.ingest.snapshot, index=False)
    written = run(loaded)
    report = json.loads(loaded.validate_.report.read_text())
    assert report["success"] and report["reference_created"] and report["rows"] == 4454
    assert written == [loaded.validate_.report, loaded.validate_.reference_dir / "credit" / "expectations.json"]
    reference = json.loads(written[1].read_text())
    assert reference["target"] == {"column": "Status", "task": "binary", "classes": ["bad", "good"]}
    assert reference["columns"]["Income"]["kind"] == "numeric" and reference["columns"]["Age"]["kind"] == "integer"
    assert run(loaded) == [loaded.validate_.report]
