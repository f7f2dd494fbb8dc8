import math
from pathlib import Path

import pytest

from tabml.gate import gate
from tabml.params import RegisterParams, load_params

PROJECT_PARAMS = Path(__file__).resolve().parents[2] / "params.yaml"


def register_params(**changes: object) -> RegisterParams:
    return load_params(PROJECT_PARAMS).register_.model_copy(update=changes)


GOOD = {
    "binary": {"auroc": 0.83, "pr_auc": 0.6, "accuracy": 0.8, "f1": 0.55, "log_loss": 0.41},
    "multiclass": {"accuracy": 0.71, "balanced_accuracy": 0.66, "macro_f1": 0.64, "auroc": 0.88, "log_loss": 0.7},
    "regression": {"rmse": 8.5, "mae": 6.1, "r2": 0.42},
}
BAD = {
    "binary": ({"auroc": 0.55, "accuracy": 0.7}, "auroc=0.55 < minimum 0.6"),
    "multiclass": ({"accuracy": 0.2, "auroc": 0.5}, "accuracy=0.2 < minimum 0.5"),
    "regression": ({"rmse": 12.0, "mae": 9.0, "r2": -0.1}, "rmse=12 > maximum 10"),
}
THRESHOLDS = {"binary": {"auroc": 0.6}, "multiclass": {"accuracy": 0.5}, "regression": {"rmse": 10.0, "r2": 0.0}}
PRIMARY = {"binary": "auroc", "multiclass": "accuracy", "regression": "rmse"}


@pytest.mark.parametrize("task", ["binary", "multiclass", "regression"])
def test_gate_passes_and_reports_the_task_default_primary_metric(task: str) -> None:
    decision = gate(GOOD[task], task, register_params(thresholds=THRESHOLDS))  # type: ignore[arg-type]
    assert decision.passed and not decision.blocking
    assert decision.primary_metric == PRIMARY[task]
    assert decision.value == GOOD[task][PRIMARY[task]]
    assert len(decision.reasons) == len(THRESHOLDS[task]) and all(r.endswith(": ok") for r in decision.reasons)


@pytest.mark.parametrize("task", ["binary", "multiclass", "regression"])
def test_gate_fails_below_a_minimum_or_above_a_maximum(task: str) -> None:
    metrics, reason = BAD[task]
    decision = gate(metrics, task, register_params(thresholds=THRESHOLDS))  # type: ignore[arg-type]
    assert not decision.passed
    assert any(r.startswith(reason) and r.endswith("FAILED") for r in decision.blocking), decision.blocking


def test_error_metrics_are_maxima_and_other_tasks_thresholds_are_ignored() -> None:
    thresholds = {"regression": {"mae": 5.0, "log_loss": 0.1}, "binary": {"auroc": 0.99}}
    decision = gate({"rmse": 3.0, "mae": 4.0}, "regression", register_params(thresholds=thresholds))
    mae, log_loss = decision.checks
    assert (mae.kind, mae.passed) == ("max", True)
    assert not log_loss.passed and "available: mae, rmse" in log_loss.reason
    assert [c.metric for c in decision.checks] == ["mae", "log_loss"]  # binary's auroc bound not applied


def test_a_threshold_on_a_metric_that_was_not_measured_fails_naming_what_was() -> None:
    decision = gate({"auroc": 0.9, "accuracy": 0.8}, "binary", register_params(thresholds={"binary": {"brier": 0.2}}))
    assert not decision.passed
    assert decision.blocking == ["brier: not in metrics.json (available: accuracy, auroc)"]


def test_primary_metric_from_params_and_missing_or_nan_primary_fails() -> None:
    p = register_params(primary_metric="pr_auc", thresholds={})
    assert gate({"pr_auc": 0.5}, "binary", p).primary_metric == "pr_auc"
    missing = gate({"auroc": 0.9}, "binary", p)
    assert not missing.passed and "primary metric pr_auc: not measured" in missing.blocking[0]
    nan = gate({"auroc": math.nan}, "binary", register_params(thresholds={"binary": {"auroc": 0.5}}))
    assert not nan.passed and nan.value is None
    assert any("nan" in r for r in nan.blocking)


def test_no_thresholds_for_the_task_passes_but_says_so() -> None:
    decision = gate({"accuracy": 0.1}, "multiclass", register_params(thresholds={}))
    assert decision.passed
    assert decision.reasons == ["no thresholds for task multiclass: nothing to check"]


def test_a_null_metric_counts_as_not_measured() -> None:
    decision = gate({"auroc": None, "accuracy": 0.8}, "binary", register_params(thresholds={"binary": {"auroc": 0.5}}))
    assert not decision.passed
    assert decision.blocking[0] == "auroc: not in metrics.json (available: accuracy)"
