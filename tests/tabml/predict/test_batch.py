"""Batch prediction from the registry: real packages registered by the real register stage."""

import json
import shutil
from contextlib import chdir
from pathlib import Path

import pandas as pd
import pytest

from tabml.core.data_params import PredictChecks
from tabml.core.errors import StageError
from tabml.core.params import Params, PredictParams
from tabml.predict import batch as predict
from tabml.registry.index import RegistryError
from tasks import register
from tests.registry_project import build_project, evaluated
from tests.workspace import EXAMPLE_TABLE


@pytest.fixture(scope="module")
def registered(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Params]:
    """credit with a `loan_id` id column; v1 (weak) production, v2 (weak again, other seed) staging."""
    root = tmp_path_factory.mktemp("predict") / "credit"
    table = pd.read_csv(EXAMPLE_TABLE)
    table.insert(0, "loan_id", [f"L{i:05d}" for i in range(len(table))])
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("WANDB_MODE", "disabled")
        params = build_project(root, table, id_column="loan_id")
        with chdir(root):
            register.run(evaluated(root, params, features="weak"))
            register.run(evaluated(root, params, features="weak", seed=1))
    return root, params


def new_rows(n: int = 25) -> pd.DataFrame:
    frame = pd.read_csv(EXAMPLE_TABLE).tail(n).drop(columns=["Status"])
    frame.insert(0, "loan_id", [f"N{i}" for i in range(n)])
    return frame.sample(frac=1, random_state=0)  # any row order comes back in the same order


def run(root: Path, *args: str) -> int:
    return predict.main([*args, "--name", "credit", "--registry-dir", str(root / "registry")])


def test_scores_a_csv_with_production_in_the_files_own_labels(
    registered: tuple[Path, Params], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root, _ = registered
    rows = new_rows()
    rows.to_csv(tmp_path / "in.csv", index=False)
    assert run(root, str(tmp_path / "in.csv"), str(tmp_path / "out.csv")) == 0
    assert (
        capsys.readouterr().out.strip()
        == f"scored 25 rows of {tmp_path / 'in.csv'} with credit v1 -> {tmp_path / 'out.csv'}"
    )
    out = pd.read_csv(tmp_path / "out.csv")
    assert list(out.columns) == ["loan_id", "prediction", "proba_bad", "model_name", "model_version"]
    assert out["loan_id"].tolist() == rows["loan_id"].tolist()
    assert set(out["prediction"]) <= {"good", "bad"} and out["model_version"].eq(1).all()
    threshold = json.loads((root / "registry/credit/versions/v1/metrics.json").read_text())["threshold"]
    assert ((out["proba_bad"] >= threshold) == (out["prediction"] == "bad")).all()


def test_a_version_or_a_stage_can_be_chosen_and_parquet_written(
    registered: tuple[Path, Params], tmp_path: Path
) -> None:
    root, _ = registered
    new_rows().to_parquet(tmp_path / "in.parquet")
    done = predict.predict_file(
        root / "registry", "credit", tmp_path / "in.parquet", tmp_path / "o.parquet", stage="staging"
    )
    assert done.version == 2 and pd.read_parquet(tmp_path / "o.parquet")["model_version"].eq(2).all()
    assert run(root, str(tmp_path / "in.parquet"), str(tmp_path / "o.csv"), "--version", "v1") == 0
    assert pd.read_csv(tmp_path / "o.csv")["model_version"].eq(1).all()


def test_input_that_does_not_fit_the_schema_is_refused_before_anything_is_written(
    registered: tuple[Path, Params], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root, _ = registered
    new_rows().drop(columns=["Age", "Income"]).to_csv(tmp_path / "missing.csv", index=False)
    assert run(root, str(tmp_path / "missing.csv"), str(tmp_path / "out.csv")) == 65
    err = capsys.readouterr().err
    assert "[predict] FAILED" in err and "does not fit credit v1: missing columns ['Age', 'Income']" in err
    assert "send the columns the model was trained on: Seniority (numeric), Home (categorical)" in err
    assert not (tmp_path / "out.csv").exists()

    bad = new_rows()
    bad["Amount"] = bad["Amount"].astype(object)
    bad.iloc[:3, bad.columns.get_loc("Amount")] = ["lots", "n/a?", "lots"]
    with pytest.raises(
        StageError, match=r"column 'Amount' should be numeric but 3 value\(s\) are not, e.g. \['lots', 'n/a\?'\]"
    ):
        predict.predict_file(root / "registry", "credit", _csv(bad, tmp_path / "bad.csv"), tmp_path / "out.csv")
    with pytest.raises(StageError, match="unknown output format '.xlsx'"):
        predict.predict_file(root / "registry", "credit", _csv(new_rows(), tmp_path / "ok.csv"), tmp_path / "out.xlsx")


def _csv(frame: pd.DataFrame, path: Path) -> Path:
    frame.to_csv(path, index=False)
    return path


def test_a_tampered_package_is_refused(registered: tuple[Path, Params], tmp_path: Path) -> None:
    root, _ = registered
    copy = tmp_path / "registry"
    shutil.copytree(root / "registry", copy)
    state = copy / "credit/versions/v1/preprocess_state.json"
    state.write_text(state.read_text().replace('"good"', '"fine"'))
    with pytest.raises(RegistryError, match=r"preprocess_state\.json: sha256 does not match MANIFEST\.json"):
        predict.predict_file(copy, "credit", _csv(new_rows(), tmp_path / "in.csv"), tmp_path / "out.csv")
    assert not (tmp_path / "out.csv").exists()


@pytest.mark.parametrize("inside", ["registry/credit/versions/v1/scored.csv", "registry/new.csv", ".dvc/tmp/x.csv"])
def test_predictions_are_never_written_into_the_registry_or_dvc(
    registered: tuple[Path, Params], tmp_path: Path, inside: str, capsys: pytest.CaptureFixture[str]
) -> None:
    root, _ = registered
    new_rows().to_csv(tmp_path / "in.csv", index=False)
    before = sorted(p.relative_to(root) for p in (root / "registry").rglob("*"))
    assert run(root, str(tmp_path / "in.csv"), str(root / inside)) == 65
    err = capsys.readouterr().err.strip().splitlines()
    assert err[0].startswith("[predict] FAILED: ") and "refusing to write predictions inside" in err[0]
    assert sorted(p.relative_to(root) for p in (root / "registry").rglob("*")) == before
    assert not (root / inside).exists()
    with chdir(root):  # with the project's params.yaml: its references folder is refused too
        assert predict.main([str(tmp_path / "in.csv"), inside]) == 65
        assert predict.main([str(tmp_path / "in.csv"), "references/credit/scored.csv"]) == 65
    assert "refusing to write predictions inside references" in capsys.readouterr().err


def test_a_model_name_outside_the_registry_pattern_is_a_usage_error(
    registered: tuple[Path, Params], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root, _ = registered
    with pytest.raises(SystemExit) as info:
        predict.main(["in.csv", str(tmp_path / "o.csv"), "--name", "../../x", "--registry-dir", str(root / "registry")])
    assert info.value.code == 2 and "not a model name: '../../x'" in capsys.readouterr().err


def _european(frame: pd.DataFrame, path: Path) -> Path:
    """A `;`-separated Excel export with decimal commas and `1.000` thousands."""
    amounts = frame["Amount"].map(lambda v: f"{v:,}".replace(",", "."))
    path.write_text(frame.assign(Amount=amounts).to_csv(index=False, sep=";", decimal=","), encoding="cp1252")
    return path


def test_a_european_export_scores_exactly_like_the_clean_file(registered: tuple[Path, Params], tmp_path: Path) -> None:
    root, _ = registered
    rows = new_rows(200)
    assert (rows["Amount"] >= 1000).any() and (rows["Income"].dropna() % 1 != 0).any() is not None
    clean = predict.predict_file(root / "registry", "credit", _csv(rows, tmp_path / "c.csv"), tmp_path / "c_out.csv")
    euro = predict.predict_file(
        root / "registry", "credit", _european(rows, tmp_path / "e.csv"), tmp_path / "e.csv.out.csv"
    )
    assert clean.rows == euro.rows == 200
    pd.testing.assert_frame_equal(pd.read_csv(clean.output), pd.read_csv(euro.output))


def policy(**checks: str) -> PredictParams:
    base = {"types": "refuse", "levels": "refuse", "ranges": "warn", "nulls": "warn"} | checks
    return PredictParams(checks=PredictChecks(**base), status_column="input_status", passthrough_columns=["Home"])


def test_upper_cased_or_unseen_levels_are_refused_naming_the_rows(
    registered: tuple[Path, Params], tmp_path: Path
) -> None:
    root, _ = registered
    rows = new_rows(30).reset_index(drop=True)
    rows.loc[[2, 5], "Home"] = rows.loc[[2, 5], "Home"].str.upper()
    rows.loc[7, "Job"] = "astronaut"
    source = _csv(rows, tmp_path / "cased.csv")
    with pytest.raises(StageError) as caught:
        predict.predict_file(root / "registry", "credit", source, tmp_path / "out.csv", policy=policy())
    what = caught.value.what
    assert "column 'Home': 2 value(s) the model never saw" in what and "differ only in case from" in what
    assert "(rows 3, 6)" in what and "column 'Job': 1 value(s)" in what and "(row 8)" in what
    assert "predict.checks.levels: warn" in caught.value.todo and not (tmp_path / "out.csv").exists()


def test_with_warn_the_rows_are_scored_and_flagged_with_the_id_and_passthrough_columns(
    registered: tuple[Path, Params], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root, _ = registered
    rows = new_rows(30).reset_index(drop=True)
    rows.loc[[2, 5], "Home"] = rows.loc[[2, 5], "Home"].str.upper()
    source = _csv(rows, tmp_path / "cased.csv")
    done = predict.predict_file(root / "registry", "credit", source, tmp_path / "o.csv", policy=policy(levels="warn"))
    out = pd.read_csv(done.output)
    assert list(out.columns)[:3] == ["loan_id", "Home", "prediction"] and out.columns[-1] == "input_status"
    assert out["loan_id"].tolist() == rows["loan_id"].tolist() and out["Home"].tolist() == rows["Home"].tolist()
    flagged = out.index[out["input_status"] != "ok"].tolist()
    assert flagged == [2, 5] and out.loc[2, "input_status"] == "levels:Home"
    assert "[predict] warning:" in capsys.readouterr().err


def test_out_of_range_numbers_warn_per_policy_and_refuse_without_params(
    registered: tuple[Path, Params], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root, _ = registered
    rows = new_rows(20).reset_index(drop=True)
    rows.loc[[0, 9], "Income"] = 1e7
    source = _csv(rows, tmp_path / "wide.csv")
    done = predict.predict_file(root / "registry", "credit", source, tmp_path / "o.csv", policy=policy())
    err = capsys.readouterr().err
    assert "column 'Income': 2 value(s) outside the reference range" in err and "(rows 1, 10)" in err
    assert pd.read_csv(done.output)["input_status"].tolist()[:2] == ["ranges:Income", "ok"]
    assert run(root, str(source), str(tmp_path / "strict.csv")) == 65  # no params file: every check refuses
    assert "outside the reference range" in capsys.readouterr().err and not (tmp_path / "strict.csv").exists()


def test_a_table_with_an_ordered_categorical_trains_and_predicts_by_its_order(tmp_path: Path) -> None:
    """Parquet's ordered `Grade` is one ordinal input; a CSV's plain text of it scores the same."""
    from tabml.data.processed import read_state

    table = pd.read_csv(EXAMPLE_TABLE)
    order = ["junior", "mid", "senior"]
    grade = pd.cut(table["Seniority"], [-1, 3, 10, 100], labels=order).astype(str)
    table["Grade"] = pd.Categorical(grade, categories=order, ordered=True)
    root = tmp_path / "graded"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("WANDB_MODE", "disabled")
        params = build_project(root, table)
        with chdir(root):
            register.run(evaluated(root, params))
    state = read_state(root / params.preprocess.out_dir)
    assert [(f.part, f.order) for f in state.numeric if f.source == "Grade"] == [("ordinal", order)]
    rows = table.tail(40).drop(columns=["Status"])
    rows.to_parquet(tmp_path / "in.parquet")
    rows.assign(Grade=rows["Grade"].astype(str)).to_csv(tmp_path / "in.csv", index=False)
    for name in ("in.parquet", "in.csv"):
        predict.predict_file(root / "registry", "credit", tmp_path / name, tmp_path / f"{name}.out.csv")
    scored = pd.read_csv(tmp_path / "in.parquet.out.csv")
    assert len(scored) == 40
    pd.testing.assert_frame_equal(scored, pd.read_csv(tmp_path / "in.csv.out.csv"))


def test_predict_takes_the_inputs_decimal_mark_on_the_command_line(
    registered: tuple[Path, Params], tmp_path: Path
) -> None:
    """What a refusal of a decimal mark that contradicts the reference says to set (`--decimal ','`) is accepted."""
    root, _ = registered
    rows = new_rows(50)
    euro = _european(rows, tmp_path / "e.csv")
    assert run(root, str(euro), str(tmp_path / "e_out.csv"), "--decimal", ",", "--delimiter", ";") == 0
    clean = predict.predict_file(root / "registry", "credit", _csv(rows, tmp_path / "c.csv"), tmp_path / "c_out.csv")
    pd.testing.assert_frame_equal(pd.read_csv(clean.output), pd.read_csv(tmp_path / "e_out.csv"))
