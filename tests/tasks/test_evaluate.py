import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from tabml.core.errors import ExitCode, StageError
from tabml.core.params import load_params
from tabml.data.preprocessing import SplitArrays
from tabml.data.processed import save_split, split_path
from tabml.training.model import TabularNet
from tabml.training.model_config import ModelConfig
from tabml.training.trained_model import save_model
from tasks import evaluate
from tests.workspace import EXAMPLE_PARAMS

CARDINALITY = 4
STATE = {"target": "y", "id_column": None, "input_schema": [], "numeric": [], "categorical": [], "clip": 5.0}
STATES = {
    "binary": {**STATE, "task": "binary", "labels": ["good", "bad"], "target_mean": 0.0, "target_std": 1.0},
    "multiclass": {**STATE, "task": "multiclass", "labels": ["a", "b", "c"], "target_mean": 0.0, "target_std": 1.0},
    "regression": {**STATE, "task": "regression", "labels": None, "target_mean": 50.0, "target_std": 10.0},
}


def _split(rng: np.random.Generator, n: int, task: str) -> SplitArrays:
    x_num = rng.normal(size=(n, 3)).astype(np.float32)
    x_cat = rng.integers(0, CARDINALITY, size=(n, 2)).astype(np.int64)
    if task == "regression":
        y = (50 + 10 * rng.normal(size=n)).astype(np.float32)
    else:
        n_classes = len(STATES[task]["labels"])
        y = np.arange(n, dtype=np.int64) % n_classes  # every class present
        rng.shuffle(y)
    return SplitArrays(x_num=x_num, x_cat=x_cat, y=y)


def _project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, task: str, n_test: int = 60, test_y=None) -> Path:
    """A processed dir, an untrained saved network and a params.yaml pointing at them, cwd = tmp_path."""
    rng = np.random.default_rng(0)
    torch.manual_seed(0)
    processed = tmp_path / "data/processed"
    save_split(_split(rng, 80, task), split_path(processed, "train"))
    save_split(_split(rng, 40, task), split_path(processed, "val"))
    test = _split(rng, n_test, task)
    if test_y is not None:
        test = SplitArrays(x_num=test.x_num, x_cat=test.x_cat, y=test_y)
    save_split(test, split_path(processed, "test"))
    (processed / "preprocess_state.json").write_text(json.dumps(STATES[task]))
    output_dim = 3 if task == "multiclass" else 1
    config = ModelConfig(
        kind="mlp",
        n_numeric=3,
        cardinalities=[CARDINALITY] * 2,
        hidden_sizes=[8],
        dropout=0.0,
        embedding_dim=2,
        output_dim=output_dim,
    )
    save_model(TabularNet(config), tmp_path / "models/train")

    raw = yaml.safe_load(EXAMPLE_PARAMS.read_text())
    raw["data"]["task"] = task
    raw["preprocess"]["out_dir"] = "data/processed"
    raw["train"]["out_dir"] = "models/train"
    raw["evaluate"].update(out_dir="reports/evaluate", metrics="reports/metrics.json", max_curve_points=20, slices={})
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _json(path: Path):
    return json.loads(path.read_text())


def test_binary(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    root = _project(tmp_path, monkeypatch, "binary")
    assert evaluate.main([]) == 0
    out = capsys.readouterr().out.strip().splitlines()[-1]
    assert (
        out.startswith("test auroc=")
        and " pr_auc=" in out
        and "(n=60); baselines auroc: majority=0.5000 linear=" in out
    )

    metrics = _json(root / "reports/metrics.json")
    assert list(metrics) == ["test", "threshold"]  # only what `dvc exp show` compares
    details = _json(root / "reports/evaluate/details.json")
    assert list(details) == ["task", "n_test", "baselines"]
    report = {**details, **metrics}
    assert list(report["baselines"]) == ["majority", "linear"]
    assert report["baselines"]["majority"]["auroc"] == 0.5 and list(report["baselines"]["linear"]) == list(
        report["test"]
    )
    assert report["task"] == "binary" and report["n_test"] == 60
    assert list(report["test"]) == [
        "auroc",
        "pr_auc",
        "accuracy",
        "balanced_accuracy",
        "f1",
        "precision",
        "recall",
        "log_loss",
    ]
    assert all(isinstance(v, float) and np.isfinite(v) for v in report["test"].values())
    assert isinstance(report["threshold"], float) and 0 <= report["threshold"] <= 1

    plots = root / "reports/evaluate/plots"
    assert sorted(p.name for p in plots.iterdir()) == [
        "calibration.json",
        "confusion.json",
        "precision_recall.json",
        "roc.json",
    ]
    figures = sorted(p.name for p in (root / "reports/evaluate/figures").iterdir())
    assert figures == ["calibration.png", "confusion.png", "precision_recall.png", "roc.png"]
    calibration = _json(plots / "calibration.json")
    assert sum(r["count"] for r in calibration) == 60 and set(calibration[0]) == {
        "mean_predicted",
        "fraction_positive",
        "perfect",
        "count",
    }
    assert _json(root / "reports/evaluate/slices.json") == {}
    roc = _json(plots / "roc.json")
    assert 2 <= len(roc) <= 20 and set(roc[0]) == {"fpr", "tpr", "threshold"}
    assert (roc[0]["fpr"], roc[0]["tpr"], roc[-1]["fpr"], roc[-1]["tpr"]) == (0.0, 0.0, 1.0, 1.0)
    pr = _json(plots / "precision_recall.json")
    assert len(pr) <= 20 and set(pr[0]) == {"recall", "precision"}
    confusion = _json(plots / "confusion.json")
    assert len(confusion) == 60 and {r["actual"] for r in confusion} == {"good", "bad"}

    with np.load(root / "reports/evaluate/test_predictions.npz") as saved:
        assert sorted(saved.files) == ["y_pred", "y_proba", "y_true"]
        assert saved["y_proba"].shape == (60,) and saved["y_true"].shape == (60,)
        assert np.array_equal(saved["y_pred"], (saved["y_proba"] >= report["threshold"]).astype(np.int64))


def test_multiclass(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = _project(tmp_path, monkeypatch, "multiclass")
    written = evaluate.run(load_params(Path("params.yaml")))
    assert all(p.exists() for p in written)

    report = _json(root / "reports/metrics.json")
    assert report["threshold"] is None
    assert list(report["test"]) == ["accuracy", "balanced_accuracy", "macro_f1", "auroc", "log_loss"]
    plots = root / "reports/evaluate/plots"
    roc = _json(plots / "roc.json")
    assert {r["class"] for r in roc} == {"a", "b", "c"} and set(roc[0]) == {"class", "fpr", "tpr", "threshold"}
    assert {r["class"] for r in _json(plots / "precision_recall.json")} == {"a", "b", "c"}
    assert {r["predicted"] for r in _json(plots / "confusion.json")} <= {"a", "b", "c"}
    with np.load(root / "reports/evaluate/test_predictions.npz") as saved:
        assert saved["y_proba"].shape == (60, 3) and saved["y_pred"].shape == (60,)


def test_regression_replaces_stale_classification_plots(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = _project(tmp_path, monkeypatch, "regression", n_test=70)
    stale = root / "reports/evaluate/plots/roc.json"
    stale.parent.mkdir(parents=True)
    stale.write_text("[]")
    raw = yaml.safe_load(Path("params.yaml").read_text())
    raw["evaluate"]["max_residual_points"] = 50
    Path("params.yaml").write_text(yaml.safe_dump(raw))

    assert evaluate.main(["--params", "params.yaml"]) == 0
    report = _json(root / "reports/metrics.json")
    assert report == {"test": report["test"], "threshold": None}
    report |= _json(root / "reports/evaluate/details.json")
    assert report["task"] == "regression" and report["n_test"] == 70
    assert report["baselines"]["majority"]["r2"] <= 0.0
    assert list(report["test"]) == ["rmse", "mae", "r2"]
    assert sorted(p.name for p in stale.parent.iterdir()) == ["residuals.json"]
    assert sorted(p.name for p in (root / "reports/evaluate/figures").iterdir()) == ["residuals.png"]
    residuals = _json(stale.parent / "residuals.json")
    assert len(residuals) == 50 and set(residuals[0]) == {"actual", "predicted", "residual"}
    r = residuals[0]
    assert r["residual"] == pytest.approx(r["actual"] - r["predicted"], abs=1e-5)
    # Predictions come back in target units (mean 50, std 10), not standardised.
    assert 20 < np.mean([x["predicted"] for x in residuals]) < 80
    with np.load(root / "reports/evaluate/test_predictions.npz") as saved:
        assert sorted(saved.files) == ["y_pred", "y_true"] and saved["y_pred"].shape == (70,)


def test_single_class_test_split_fails_clearly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _project(tmp_path, monkeypatch, "binary", test_y=np.zeros(60, dtype=np.int64))
    with pytest.raises(StageError, match=r"test split.*class index\(es\) \[1\]") as err:
        evaluate.run(load_params(Path("params.yaml")))
    assert "preprocess.test_size" in err.value.todo
    assert evaluate.main([]) == ExitCode.BAD_INPUT
    assert "[evaluate] FAILED" in capsys.readouterr().err
    assert not Path("reports/metrics.json").exists()


def test_task_mismatch_and_missing_model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _project(tmp_path, monkeypatch, "binary")
    state = Path("data/processed/preprocess_state.json")
    state.write_text(json.dumps(STATES["multiclass"]))
    with pytest.raises(StageError, match="data.task: binary"):
        evaluate.run(load_params(Path("params.yaml")))
    state.write_text(json.dumps(STATES["binary"]))
    Path("models/train/model.safetensors").unlink()
    with pytest.raises(StageError, match="trained model not found") as err:
        evaluate.run(load_params(Path("params.yaml")))
    assert "dvc repro train" in err.value.todo


def test_slices_score_each_value_of_the_listed_raw_columns(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from tests.registry_project import build_project, fit_model

    monkeypatch.setenv("WANDB_MODE", "disabled")
    params = build_project(tmp_path / "credit")
    fit_model(tmp_path / "credit", params)
    monkeypatch.chdir(tmp_path / "credit")
    evaluate.run(params)  # params.yaml lists credit's slices: Home, Marital, Job (values with >= 100 rows)
    slices = _json(Path("reports/evaluate/slices.json"))
    assert list(slices) == ["Home", "Marital", "Job"]
    assert [e["value"] for e in slices["Home"]] == ["owner", "rent", "parents"]
    assert sum(e["n"] for e in slices["Marital"]) <= 891 and all(e["n"] >= 100 for e in slices["Job"])
    assert set(slices["Home"][0]["metrics"]) == set(_json(Path("reports/metrics.json"))["test"])
    rows = _json(Path("reports/evaluate/plots/slices.json"))
    assert rows[0] == {
        "slice": "Home=owner",
        "metric": "auroc",
        "value": slices["Home"][0]["metrics"]["auroc"],
        "n": slices["Home"][0]["n"],
    }
    assert Path("reports/evaluate/figures/slices.png").read_bytes().startswith(b"\x89PNG")
    assert "baselines auroc: majority=0.5000 linear=0.8" in capsys.readouterr().out

    raw = yaml.safe_load(Path("params.yaml").read_text())
    raw["evaluate"]["slices"] = {"credit": ["Home", "Region"]}
    Path("params.yaml").write_text(yaml.safe_dump(raw))
    with pytest.raises(
        StageError, match=r"evaluate.slices.credit names columns that are not in the table: \['Region'\]"
    ):
        evaluate.run(load_params(Path("params.yaml")))
