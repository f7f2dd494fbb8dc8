import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tabml.arrays import load_split
from tabml.inference import predict
from tabml.model import load_model
from tabml.params import load_params
from tasks import preprocess, train
from tests.conftest import FAST_TRAIN, PROJECT, edit_params


@pytest.fixture
def processed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    shutil.copy(PROJECT / "params.yaml", tmp_path / "params.yaml")
    (tmp_path / "data/snapshot").mkdir(parents=True)
    pd.read_csv(PROJECT / "data/landing/credit.csv").to_parquet(tmp_path / "data/snapshot/table.parquet")
    monkeypatch.chdir(tmp_path)
    edit_params(tmp_path, train=FAST_TRAIN)
    preprocess.run(load_params())
    return tmp_path


@pytest.mark.slow
@pytest.mark.parametrize("model", ["mlp", "embedding_mlp"])
def test_train_writes_safetensors_that_reload_to_the_same_predictions(processed: Path, model: str) -> None:
    edit_params(processed, train={"model": model})
    train.run(load_params())
    out = processed / "models/train"
    assert {"model.safetensors", "model_config.json", "history.csv", "run_info.json"} <= {p.name for p in out.iterdir()}
    history = pd.read_csv(out / "history.csv")
    assert len(history) == json.loads((out / "run_info.json").read_text())["epochs"]
    assert {"train_loss", "val_loss", "val_auroc"} <= set(history.columns)
    test = load_split(processed / "data/processed/test.npz")
    first = predict(load_model(out), test, "binary")
    again = predict(load_model(out), test, "binary")
    np.testing.assert_array_equal(first, again)
    assert first.min() > 0 and first.max() < 1


@pytest.mark.slow
def test_training_is_deterministic_for_a_seed(processed: Path) -> None:
    weights = []
    for _ in range(2):
        train.run(load_params())
        weights.append((processed / "models/train/model.safetensors").read_bytes())
    assert weights[0] == weights[1]


def test_missing_processed_data_fails_with_the_path(processed: Path, capsys: pytest.CaptureFixture[str]) -> None:
    shutil.rmtree(processed / "data/processed")
    assert train.main([]) == 1
    assert "data/processed" in capsys.readouterr().err
