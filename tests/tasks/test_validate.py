"""validate stage end to end: real params.yaml, real Parquet snapshots, real Great Expectations.

The bad-input matrix of the issue: missing, empty, garbled and ragged files are refused by ingest before a
snapshot exists (tests/tasks/test_ingest.py::test_bad_files_fail_with_the_file_and_the_fix, and through
`dvc repro` in tests/test_validation_gate_end_to_end.py); every other bad input is refused here (BROKEN).
"""

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

from tabml.core.errors import ExitCode, StageError
from tabml.core.params import load_params
from tasks.validate import main, run
from tests.workspace import EXAMPLE_PARAMS, EXAMPLE_TABLE

PROJECT = Path(__file__).resolve().parents[2]
SNAPSHOT = Path("data/snapshot/table.parquet")
REPORT = Path("reports/validation.json")
REFERENCE = Path("references/toy/expectations.json")
ACCEPTED = Path("data/snapshot/accepted.parquet")
DOCS = Path("reports/validation.html")


def write_params(root: Path, **data: Any) -> Path:
    """The project's params.yaml, pointed at a tiny `toy` table inside `root`."""
    params = yaml.safe_load((EXAMPLE_PARAMS).read_text())
    params["data"].update({
        "name": "toy", "path": "data/landing/toy.csv", "target": "label", "task": "binary",
        "positive_class": "bad", "id_column": "id", **data,
    })  # fmt: skip
    params["ingest"].update({"snapshot": str(SNAPSHOT), "report": "reports/ingest.json"})
    params["validate"].update({
        "report": str(REPORT), "data_docs": str(DOCS),
        "quarantine_dir": "quarantine", "reference_dir": "references", "min_rows": 20,
    })  # fmt: skip
    params["preprocess"]["input"] = str(ACCEPTED)
    params["validate"]["drift"].update({"min_rows": 500, "action": "block", "threshold": 0.25, "columns": {}})
    path = root / "params.yaml"
    path.write_text(yaml.safe_dump(params, sort_keys=False))
    return path


def table(n: int = 600, seed: int = 0) -> pd.DataFrame:
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
    assert report["reference"] == str(REFERENCE) and report["rows"] == 600 and report["errors"] == []
    reference = json.loads(REFERENCE.read_text())
    assert reference["dataset"] == "toy" and reference["target"]["classes"] == ["bad", "good"]
    assert set(reference["columns"]) == {"id", "age", "income", "city", "member", "label"}
    assert {c["name"] for c in report["checks"]} >= {"columns_present", "not_null", "range", "unique_id", "finite"}
    assert ACCEPTED.read_bytes() == SNAPSHOT.read_bytes() and report["accepted_snapshot"] == str(ACCEPTED)
    assert report["data_docs"] == str(DOCS) and DOCS.read_text().startswith("<!doctype html>")
    assert report["quarantine"] is None and not Path("quarantine").exists()

    for frame in (table(), table(seed=1)):
        code, err, report = stage(frame)
        assert code == 0 and report["success"] and not report["reference_created"], err
        assert ACCEPTED.read_bytes() == SNAPSHOT.read_bytes()
    assert json.loads(REFERENCE.read_text()) == reference  # a passing run leaves the reference alone
    drift = {d["column"]: d for d in report["drift"]}  # a fresh sample of the same distribution is stable
    assert set(drift) == {"age", "income", "city", "member", "label"} and all(d["psi"] < 0.1 for d in drift.values())


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
    "shifted distribution": (
        lambda df: df.assign(income=df["income"] + 15),  # 1.5 standard deviations, still inside the range
        ["column 'income': distribution shifted, PSI", "> 0.25"],
    ),
    "-inf in numeric": (_set("income", 2, -np.inf), ["column 'income': 0 NaN and 1 ±inf"]),
}


@pytest.mark.parametrize("case", list(BROKEN))
def test_broken_snapshot_fails_with_readable_message(stage: Callable[..., Any], case: str) -> None:
    assert stage(table())[0] == 0
    breaks, phrases = BROKEN[case]
    code, err, report = stage(breaks(table()))
    assert code == ExitCode.BAD_INPUT and not report["success"]
    assert err.startswith(f"[validate] FAILED: {SNAPSHOT}: ")
    assert "--rederive-reference" in err and "data/landing/toy.csv" in err and str(REFERENCE) in err
    for phrase in phrases:
        assert phrase in err, f"{phrase!r} not in:\n{err}"
        assert any(phrase in line for line in report["errors"] + report["warnings"]), report["errors"]
    [folder] = list(Path("quarantine/toy").iterdir())
    assert f"quarantined: {folder}/" in err and report["quarantine"] == str(folder)


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
    assert code == ExitCode.BAD_INPUT and any("column 'income': 1 NaN and 0 ±inf" in e for e in report["errors"])


def test_rederive_reference_accepts_the_new_shape(stage: Callable[..., Any]) -> None:
    stage(table())
    renamed = table().rename(columns={"age": "years"})
    assert stage(renamed)[0] == ExitCode.BAD_INPUT
    code, err, report = stage(renamed, "--rederive-reference")
    assert code == 0 and report["reference_created"] and report["reference_rederived"], err
    assert "years" in json.loads(REFERENCE.read_text())["columns"]
    assert stage(renamed)[0] == 0


def test_failing_first_snapshot_does_not_become_the_reference(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    params = load_params(write_params(tmp_path))
    SNAPSHOT.parent.mkdir(parents=True)
    table().assign(label="good").to_parquet(SNAPSHOT)
    with pytest.raises(StageError, match="exactly 2 classes") as caught:
        run(params)
    assert not REFERENCE.exists() and not ACCEPTED.exists()
    report = json.loads(REPORT.read_text())
    assert report["reference_created"] is False and report["accepted_snapshot"] is None
    assert "preprocess still reads nothing" in str(caught.value)
    assert (Path(report["quarantine"]) / "table.parquet").read_bytes() == SNAPSHOT.read_bytes()


def test_user_edits_to_the_reference_are_enforced(stage: Callable[..., Any]) -> None:
    stage(table())
    reference = json.loads(REFERENCE.read_text())
    reference["columns"]["age"]["max"] = 40
    REFERENCE.write_text(json.dumps(reference, indent=2))
    code, err, _ = stage(table())
    assert code == ExitCode.BAD_INPUT and "column 'age'" in err and "outside [" in err and ", 40]" in err
    REFERENCE.write_text('{"format_version": 1, "dataset": "toy"}')
    with pytest.raises(StageError, match=r"expectations.json: reference expectations are not valid") as caught:
        run(load_params(Path("params.yaml")))
    assert "--rederive-reference" in str(caught.value)


def test_real_credit_example(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "params.yaml"
    params = yaml.safe_load((EXAMPLE_PARAMS).read_text())
    path.write_text(yaml.safe_dump(params, sort_keys=False))
    loaded = load_params(path)
    loaded.ingest.snapshot.parent.mkdir(parents=True)
    pd.read_csv(EXAMPLE_TABLE).to_parquet(loaded.ingest.snapshot, index=False)
    written = run(loaded)
    report = json.loads(loaded.validate_.report.read_text())
    assert report["success"] and report["reference_created"] and report["rows"] == 4454
    p, reference_file = loaded.validate_, loaded.validate_.reference_dir / "credit" / "expectations.json"
    assert written == [p.report, p.data_docs, reference_file, loaded.preprocess.input]
    reference = json.loads(reference_file.read_text())
    assert reference["target"] == {"column": "Status", "task": "binary", "classes": ["bad", "good"]}
    assert reference["columns"]["Income"]["kind"] == "numeric" and reference["columns"]["Age"]["kind"] == "integer"
    assert len(reference["columns"]["Income"]["profile"]["cuts"]) == 9  # params.yaml: validate.drift.bins = 10
    assert run(loaded) == [p.report, p.data_docs, loaded.preprocess.input]
    assert [d["psi"] for d in json.loads(p.report.read_text())["drift"]] == [0.0] * 14  # same table: no drift


def test_a_rejected_batch_is_quarantined_and_the_accepted_snapshot_kept(stage: Callable[..., Any]) -> None:
    stage(table())
    accepted = ACCEPTED.read_bytes()
    code, err, report = stage(_set("city", 5, "tokyo")(table(seed=1)))
    assert (
        code == ExitCode.BAD_INPUT
        and ACCEPTED.read_bytes() == accepted
        and report["accepted_snapshot"] == str(ACCEPTED)
    )
    folder = Path(report["quarantine"])
    assert folder.parent == Path("quarantine/toy") and folder.name.endswith("Z")
    assert {f.name for f in folder.iterdir()} == {
        "table.parquet",
        "validation.json",
        "validation.html",
        "quarantine.json",
    }
    assert (folder / "table.parquet").read_bytes() == SNAPSHOT.read_bytes()  # copied, nothing deleted
    assert json.loads((folder / "validation.json").read_text()) == report
    manifest = json.loads((folder / "quarantine.json").read_text())
    assert manifest["source"] == "data/landing/toy.csv" and manifest["accepted_snapshot_kept"] == str(ACCEPTED)
    assert any("'tokyo'" in e for e in manifest["errors"])
    assert f"preprocess still reads {ACCEPTED} (the last accepted snapshot), the registered model is untouched" in err
    html = (folder / "validation.html").read_text()
    assert "tokyo" in html and str(folder) in html and "validation failed" in html
    assert stage(table(seed=2))[0] == 0 and ACCEPTED.read_bytes() == SNAPSHOT.read_bytes()  # a good batch goes on
    assert len(list(Path("quarantine/toy").iterdir())) == 1


def test_drift_only_warns_when_params_say_so(tmp_path: Path, stage: Callable[..., Any]) -> None:
    stage(table())
    params = yaml.safe_load((tmp_path / "params.yaml").read_text())
    params["validate"]["drift"]["action"] = "warn"
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    code, err, report = stage(table(seed=1).assign(income=lambda df: df["income"] + 15))
    assert code == 0 and report["success"] and report["quarantine"] is None
    assert "[validate] warning: column 'income': distribution shifted" in err
    [income] = [d for d in report["drift"] if d["column"] == "income"]
    assert income["drifted"] and income["action"] == "warn" and income["psi"] > 0.25


def test_rederive_from_another_table(tmp_path: Path, stage: Callable[..., Any]) -> None:
    stage(table())
    shifted = table(seed=1).assign(income=lambda df: df["income"] + 15)
    shifted.to_csv(tmp_path / "champion_training.csv", index=False)  # e.g. what the champion was trained on
    assert stage(shifted)[0] == ExitCode.BAD_INPUT
    code, err, report = stage(shifted, "--rederive-reference", "--from", "champion_training.csv")
    assert code == 0 and report["reference_rederived"], err
    assert json.loads(REFERENCE.read_text())["derived_from"] == {"snapshot": "champion_training.csv", "rows": 600}
    assert stage(table())[0] == ExitCode.BAD_INPUT  # the old distribution now counts as drift


def test_from_needs_rederive(stage: Callable[..., Any]) -> None:
    with pytest.raises(SystemExit) as caught:
        main(["--from", "other.csv"])
    assert caught.value.code == 2
