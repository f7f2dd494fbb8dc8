import json
import math

import pytest

from tabml.core.metric_names import improvement
from tabml.core.params import RegisterParams, load_params
from tabml.evaluation.bootstrap import PairedInterval
from tabml.registry.gate import Candidate, ChampionEvidence, ChampionUnavailable, SliceComparison, gate
from tests.workspace import EXAMPLE_PARAMS


def register_params(**changes: object) -> RegisterParams:
    p = load_params(EXAMPLE_PARAMS).register_
    champion = changes.pop("champion", {})
    return p.model_copy(update={**changes, "champion": p.champion.model_copy(update=champion)})


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
NO_BASELINES = {"thresholds": THRESHOLDS, "baselines": {}}


def alone(metrics: dict, task: str = "binary", **changes: object):
    """The decision for a first model (no champion), without baselines unless given."""
    return gate(Candidate(metrics, changes.pop("baselines_measured", {})), None, task, register_params(**changes))  # type: ignore[arg-type]


@pytest.mark.parametrize("task", ["binary", "multiclass", "regression"])
def test_a_first_model_that_passes_the_thresholds_becomes_production(task: str) -> None:
    decision = alone(GOOD[task], task, **NO_BASELINES)
    assert decision.passed and decision.stage == "production" and not decision.blocking and not decision.held_back
    assert decision.primary_metric == PRIMARY[task] and decision.value == GOOD[task][PRIMARY[task]]
    assert decision.reasons[-1] == "no production model yet: this version becomes production"
    assert all(r.endswith(": ok") for r in decision.reasons[:-1])


@pytest.mark.parametrize("task", ["binary", "multiclass", "regression"])
def test_gate_fails_below_a_minimum_or_above_a_maximum(task: str) -> None:
    metrics, reason = BAD[task]
    decision = alone(metrics, task, **NO_BASELINES)
    assert not decision.passed and decision.stage is None
    assert any(r.startswith(reason) and r.endswith("FAILED") for r in decision.blocking), decision.blocking


def test_error_metrics_are_maxima_and_other_tasks_thresholds_are_ignored() -> None:
    thresholds = {"regression": {"mae": 5.0, "log_loss": 0.1}, "binary": {"auroc": 0.99}}
    decision = alone({"rmse": 3.0, "mae": 4.0}, "regression", thresholds=thresholds, baselines={})
    mae, log_loss = decision.thresholds
    assert (mae.kind, mae.passed) == ("max", True)
    assert not log_loss.passed and "available: mae, rmse" in log_loss.reason
    assert [c.name for c in decision.checks] == ["threshold mae", "threshold log_loss"]


def test_a_threshold_on_a_metric_that_was_not_measured_fails_naming_what_was() -> None:
    decision = alone({"auroc": 0.9, "accuracy": 0.8}, thresholds={"binary": {"brier": 0.2}}, baselines={})
    assert decision.blocking == ["brier: not in metrics.json (available: accuracy, auroc)"]


def test_primary_metric_from_params_and_missing_or_nan_primary_fails() -> None:
    assert alone({"pr_auc": 0.5}, primary_metric="pr_auc", thresholds={}, baselines={}).primary_metric == "pr_auc"
    missing = alone({"auroc": 0.9}, primary_metric="pr_auc", thresholds={}, baselines={})
    assert not missing.passed and "primary metric pr_auc: not measured" in missing.blocking[0]
    nan = alone({"auroc": math.nan}, thresholds={"binary": {"auroc": 0.5}}, baselines={})
    assert not nan.passed and nan.value is None and any("nan" in r for r in nan.blocking)


def test_no_thresholds_for_the_task_passes_but_says_so() -> None:
    decision = alone({"accuracy": 0.1}, "multiclass", thresholds={}, baselines={})
    assert decision.passed
    assert decision.reasons[0] == "no thresholds for task multiclass: nothing to check"


# ---- baselines -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "linear", "tolerance", "passes"),
    [
        (0.85, 0.84, 0.0, True),
        (0.84, 0.84, 0.0, False),  # a tie does not beat it
        (0.8594, 0.8595, 0.001, True),  # within the relative tie tolerance
        (0.80, 0.84, 0.001, False),
    ],
)
def test_the_model_must_beat_each_baseline(model: float, linear: float, tolerance: float, passes: bool) -> None:
    measured = {"majority": {"auroc": 0.5}, "linear": {"auroc": linear}}
    decision = alone(
        {"auroc": model}, thresholds={}, baselines={"majority": 0.0, "linear": tolerance}, baselines_measured=measured
    )
    assert decision.passed is passes
    linear_check = next(c for c in decision.checks if c.name == "baseline linear")
    assert linear_check.passed is passes and linear_check.tier == "registration"
    if not passes:
        assert "does not beat it" in decision.blocking[0]


def test_an_error_metric_baseline_is_beaten_by_being_lower() -> None:
    measured = {"majority": {"rmse": 20.0}, "linear": {"rmse": 9.0}}
    ok = alone(
        {"rmse": 8.5}, "regression", thresholds={}, baselines={"majority": 0, "linear": 0}, baselines_measured=measured
    )
    assert ok.passed and "gain +0.5000" in ok.reasons[1]
    worse = alone({"rmse": 9.5}, "regression", thresholds={}, baselines={"linear": 0}, baselines_measured=measured)
    assert not worse.passed


def test_a_baseline_missing_from_metrics_json_blocks_with_what_to_do() -> None:
    decision = alone({"auroc": 0.9}, thresholds={}, baselines={"linear": 0.0})
    assert decision.blocking == [
        "baseline linear: its auroc is not in metrics.json; re-run evaluate (dvc repro evaluate)"
    ]


# ---- champion/challenger ------------------------------------------------------------------------------


def evidence(gain: float, low: float, slices: list[SliceComparison] | None = None) -> ChampionEvidence:
    return ChampionEvidence(
        version=4,
        metric="auroc",
        challenger=0.80 + gain,
        champion=0.80,
        interval=PairedInterval(gain, low, gain + 0.01, 0.95, 1000, 0),
        slices=slices or [],
    )


def versus(champion: ChampionEvidence | ChampionUnavailable, **champion_params: object):
    p = register_params(thresholds={}, baselines={}, champion={"min_improvement": {"binary": 0.002}, **champion_params})
    return gate(
        Candidate({"auroc": champion.challenger if isinstance(champion, ChampionEvidence) else 0.8}),
        champion,
        "binary",
        p,
    )


def test_a_significant_gain_above_the_margin_is_promoted() -> None:
    decision = versus(evidence(0.01, 0.003))
    assert (decision.passed, decision.stage, decision.champion_version) == (True, "production", 4)
    assert [c.name for c in decision.checks] == ["improvement", "significance"]
    assert decision.checks[0].reason.startswith("gain over production v4: auroc 0.8100 vs 0.8000 = +0.0100")


@pytest.mark.parametrize(
    ("gain", "low", "held_back"),
    [
        (0.001, 0.0005, "(required >= 0.002): not enough"),  # significant but below the margin
        (0.01, -0.002, "includes zero or below: not significant"),  # above the margin, not significant
        (0.0, 0.0, "not significant"),  # the same model again
        (-0.02, -0.03, "not enough"),  # worse
    ],
)
def test_a_challenger_that_does_not_beat_production_is_registered_as_staging(
    gain: float, low: float, held_back: str
) -> None:
    decision = versus(evidence(gain, low))
    assert decision.passed and decision.stage == "staging" and not decision.blocking
    assert any(held_back in r for r in decision.held_back), decision.held_back


def test_a_slice_that_regresses_beyond_its_tolerance_keeps_the_model_in_staging() -> None:
    slices = [
        SliceComparison("Home", "owner", 400, 0.86, 0.84),  # better
        SliceComparison("Home", "rent", 200, 0.78, 0.81),  # -0.03: within 0.05
        SliceComparison("Job", "partime", 100, 0.70, 0.74),  # -0.04: beyond Job's 0.02
        SliceComparison("Job", "fixed", 120, None, 0.8),  # undefined: not compared
    ]
    decision = versus(evidence(0.01, 0.004, slices), slice_tolerance=0.05, slice_tolerances={"Job": 0.02})
    assert decision.stage == "staging"
    assert decision.held_back == [
        "slice Job=partime (n=100): auroc 0.7000 vs production v4 0.7400 (-0.0400; drops up to 0.02 allowed): REGRESSED"
    ]
    assert any("not compared" in r for r in decision.reasons)
    relaxed = versus(evidence(0.01, 0.004, slices), slice_tolerance=0.05, slice_tolerances={})
    assert relaxed.stage == "production"


def test_a_production_model_that_cannot_be_scored_means_staging_with_the_reason() -> None:
    decision = versus(ChampionUnavailable(2, "its labels ['a', 'b'] differ from this model's ['no', 'yes']"))
    assert decision.stage == "staging" and decision.champion_version == 2
    assert "production v2 could not be scored" in decision.held_back[0] and "promote by hand" in decision.held_back[0]


def test_registration_failures_win_over_any_champion_evidence() -> None:
    p = register_params(thresholds={"binary": {"auroc": 0.9}}, baselines={})
    decision = gate(Candidate({"auroc": 0.81}), evidence(0.01, 0.005), "binary", p)
    assert not decision.passed and decision.stage is None and decision.champion is None


def test_the_report_is_plain_json_with_every_check() -> None:
    report = versus(evidence(0.01, 0.003, [SliceComparison("Home", "rent", 200, 0.8, 0.79)])).report()
    again = json.loads(json.dumps(report))
    assert again["stage"] == "production" and again["champion"]["interval"]["low"] == 0.003
    assert [c["name"] for c in again["checks"]] == ["improvement", "significance", "slice Home=rent"]


def test_improvement_follows_the_direction_of_the_metric() -> None:
    assert improvement("auroc", 0.9, 0.8) == pytest.approx(0.1)
    assert improvement("rmse", 3.0, 4.0) == pytest.approx(1.0)
    assert improvement("log_loss", 0.5, 0.4) == pytest.approx(-0.1)
