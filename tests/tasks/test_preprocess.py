import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tabml.core.errors import ExitCode
from tabml.core.params import load_params
from tabml.data.processed import load_split
from tasks import preprocess
from tests.conftest import edit_params
from tests.synthetic_tables import regression_table
from tests.workspace import EXAMPLE_PARAMS, EXAMPLE_TABLE


@pytest.fixture
def here(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    shutil.copy(EXAMPLE_PARAMS, tmp_path / "params.yaml")
    (tmp_path / "data/snapshot").mkdir(parents=True)
    pd.read_csv(EXAMPLE_TABLE).to_parquet(tmp_path / "data/snapshot/accepted.parquet")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_credit_splits_are_stratified_disjoint_and_deterministic(here: Path) -> None:
    preprocess.run(load_params())
    out = here / "data/processed"
    first = (out / "train.npz").read_bytes()
    report = json.loads((out / "preprocess_report.json").read_text())
    shares = {s: c["bad"] / sum(c.values()) for s, c in report["class_counts"].items()}
    assert max(shares.values()) - min(shares.values()) < 0.01
    rows = np.load(out / "splits.npz")
    together = np.concatenate([rows["train_rows"], rows["val_rows"], rows["test_rows"]])
    assert len(together) == len(set(together)) == 4454
    preprocess.run(load_params())
    assert (out / "train.npz").read_bytes() == first
    state = json.loads((out / "preprocess_state.json").read_text())
    assert state["labels"] == ["good", "bad"]


def test_regression_rows_without_target_are_dropped_and_counted(here: Path) -> None:
    table = regression_table(400)
    table.to_parquet(here / "data/snapshot/accepted.parquet")
    edit_params(here, data={"target": "spend", "task": "regression", "positive_class": None})
    preprocess.run(load_params())
    report = json.loads((here / "data/processed/preprocess_report.json").read_text())
    assert report["rows_dropped_missing_target"] == int(table["spend"].isna().sum()) > 0
    test = load_split(here / "data/processed/test.npz")
    assert test.y.dtype == np.float32 and np.isfinite(test.y).all()


def test_no_usable_feature_is_a_clear_error(here: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pd.DataFrame({"y": ["a", "b"] * 50, "const": 1}).to_parquet(here / "data/snapshot/accepted.parquet")
    edit_params(here, data={"target": "y", "positive_class": "a"})
    assert preprocess.main([]) == ExitCode.BAD_INPUT
    assert "no usable feature columns" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("values", "positive"),
    [(["yes", "no"], "yes"), (["Yes", "No"], "Yes"), (["bad", "good"], "bad"), ([1, 0], "1"), ([True, False], "True")],
)
def test_every_kind_of_binary_label_maps_to_indices_and_back(here: Path, values: list, positive: str) -> None:
    table = pd.DataFrame({"x": np.arange(200.0), "y": values * 100})
    table.to_parquet(here / "data/snapshot/accepted.parquet")
    edit_params(here, data={"target": "y", "positive_class": positive})
    preprocess.run(load_params())
    state = json.loads((here / "data/processed/preprocess_state.json").read_text())
    assert state["labels"][1] == positive and len(state["labels"]) == 2
    test = load_split(here / "data/processed/test.npz")
    assert set(test.y.tolist()) == {0, 1}
