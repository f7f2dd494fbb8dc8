"""The monitor's pure parts: thresholds and cooldown, the labels join by hashed id, live performance."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tabml.core.errors import StageError
from tabml.core.params import load_params
from tabml.data.preprocessing import PreprocessState
from tabml.monitor.assess import LivePerformance, joined_labels, live_performance
from tabml.monitor.trigger import crossed, decide, read_state, write_state
from tabml.predict.prediction_log import hash_id
from tabml.validation.drift import ColumnDrift
from tests.serve_process import FIXTURE
from tests.workspace import EXAMPLE_PARAMS

M = load_params(EXAMPLE_PARAMS).monitor  # drift 0.25, 2 columns, max drop 0.05, cooldown 24 h
NOW = datetime(2026, 12, 2, 12, tzinfo=UTC)


def drift(column: str, psi: float | None) -> ColumnDrift:
    return ColumnDrift(column, psi, 0.25, "warn", psi is not None and psi > 0.25, [], [], [])


def test_one_drifted_feature_is_not_enough_two_are() -> None:
    assert crossed([drift("Age", 0.9), drift("Home", 0.1), drift("Job", None)], None, None, M) == []
    (reason,) = crossed([drift("Age", 0.9), drift("Income", 0.3)], None, None, M)
    assert reason.startswith("2 features drifted beyond PSI 0.25: Age (PSI 0.900), Income (PSI 0.300)")


def test_prediction_drift_and_a_live_metric_drop_each_cross() -> None:
    live = LivePerformance("auroc", 400, 0.70, 0.65, 0.75, 0.95, registered=0.83)
    reasons = crossed([], drift("_proba_bad", 0.4), live, M)
    assert reasons[0] == "predictions drifted: PSI 0.400 > 0.25"
    assert reasons[1].startswith("live auroc 0.7000 (interval 0.6500-0.7500, 400 rows) is 0.1300 worse")
    assert crossed([], None, LivePerformance("auroc", 400, 0.80, 0.7, 0.9, 0.95, registered=0.83), M) == []
    rmse = LivePerformance("rmse", 50, 1.2, 1.0, 1.4, 0.95, registered=1.0)  # lower is better
    assert crossed([], None, rmse, M) and not crossed([], None, rmse.__class__(**{**rmse.__dict__, "value": 0.9}), M)


def test_the_cooldown_holds_a_second_trigger_back_then_lets_it_go() -> None:
    assert decide([], {}, NOW, M).retrain is False
    assert decide(["x"], {}, NOW, M).retrain is True
    state = {"last_triggered_at": (NOW - timedelta(hours=2)).isoformat()}
    held = decide(["x"], state, NOW, M)
    assert not held.retrain and held.held_back is not None and held.held_back.startswith("cooldown")
    assert decide(["x"], state, NOW + timedelta(hours=23), M).retrain is True


def test_the_state_file_round_trips_and_a_broken_one_is_an_error(tmp_path: Path) -> None:
    path = write_state(tmp_path / "s" / "state.json", {"last_triggered_at": NOW.isoformat()})
    assert read_state(path) == {"last_triggered_at": NOW.isoformat()}
    assert read_state(tmp_path / "none.json") == {}
    path.write_text("{half")
    with pytest.raises(StageError, match="the monitor state is not JSON"):
        read_state(path)


def test_labels_join_by_hashed_id_and_live_auroc_has_an_interval() -> None:
    state = PreprocessState.model_validate_json((FIXTURE / "credit/versions/v1/preprocess_state.json").read_text())
    rng = np.random.default_rng(0)
    ids = [f"L{i}" for i in range(400)]
    y = rng.integers(0, 2, 400)
    score = np.clip(y * 0.3 + rng.random(400) * 0.7, 0, 1)
    window = pd.DataFrame({"loan_id": [hash_id(i) for i in ids], "_proba_bad": score})
    labels = pd.DataFrame({"loan_id": ids[::-1], "Status": np.where(y == 1, "bad", "good")[::-1]})
    joined = joined_labels(window, labels, "loan_id", "Status", hashed=True)
    assert len(joined) == 400 and (joined["Status"].eq("bad") == (y == 1)).all()
    live = live_performance(score, y, state, "auroc", 0.5, 0.83, samples=300, confidence=0.9, seed=0)
    assert live is not None and live.rows == 400 and live.low < live.value < live.high
    assert live_performance(score[:1], y[:1], state, "auroc", 0.5, None, samples=300, confidence=0.9, seed=0) is None
