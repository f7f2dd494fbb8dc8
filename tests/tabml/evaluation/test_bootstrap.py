import numpy as np
import pytest

from tabml.evaluation.bootstrap import Scored, _one_at_a_time, paired_bootstrap, vectorised
from tabml.evaluation.metrics import UndefinedMetricError, task_metrics

N = 400


def binary(seed: int = 0, noise: float = 0.3) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(1000 + seed)  # not the bootstrap seed: same streams correlate
    y = (rng.random(N) < 0.3).astype(np.int64)
    score = np.clip(0.3 + 0.4 * y + rng.normal(0, noise, N), 0, 1)
    return y, np.round(score, 2)  # rounding makes ties, which AUROC must count as half


def regression(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(1000 + seed)  # not the bootstrap seed: same streams correlate
    y = rng.normal(50, 10, N).astype(np.float32)
    return y, (y + rng.normal(0, 5, N)).astype(np.float32)


def multiclass(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(1000 + seed)  # not the bootstrap seed: same streams correlate
    y = rng.integers(0, 3, N)
    logits = rng.normal(0, 1, (N, 3)) + 1.5 * np.eye(3)[y]
    proba = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    return y, proba


CASES = [
    ("binary", "auroc", binary, 0.5),
    ("binary", "accuracy", binary, 0.5),
    ("binary", "log_loss", binary, 0.5),
    ("multiclass", "accuracy", multiclass, None),
    ("multiclass", "log_loss", multiclass, None),
    ("regression", "rmse", regression, None),
    ("regression", "mae", regression, None),
    ("regression", "r2", regression, None),
]


@pytest.mark.parametrize(("task", "metric", "make", "threshold"), CASES)
def test_the_vectorised_metrics_equal_torchmetrics_on_every_resample(task, metric, make, threshold) -> None:
    y, scores = make()
    model = Scored(scores, threshold)
    fast = vectorised(task, metric, model, y)
    assert fast is not None
    full = fast(np.ones((1, N)))[0]
    assert full == pytest.approx(task_metrics(task, scores, y, threshold)[metric], abs=1e-6)
    counts = np.random.default_rng(1).multinomial(N, np.full(N, 1 / N), size=5).astype(np.float64)
    slow = _one_at_a_time(task, metric, model, y)(counts)  # torchmetrics on the expanded rows
    assert fast(counts) == pytest.approx(slow, abs=1e-6)


def test_the_same_model_twice_has_a_zero_interval() -> None:
    y, scores = binary()
    ci = paired_bootstrap(
        "binary", "auroc", y, Scored(scores, 0.5), Scored(scores, 0.5), samples=300, confidence=0.95, seed=0
    )
    assert (ci.improvement, ci.low, ci.high, ci.samples, ci.undefined) == (0.0, 0.0, 0.0, 300, 0)


def test_a_clearly_better_model_has_an_interval_above_zero_and_is_reproducible() -> None:
    y, good = binary(noise=0.15)
    _, poor = binary(noise=0.6)
    kwargs = {"samples": 500, "confidence": 0.95, "seed": 7}
    ci = paired_bootstrap("binary", "auroc", y, Scored(good, 0.5), Scored(poor, 0.5), **kwargs)
    assert ci.low > 0 and ci.low < ci.improvement < ci.high
    assert ci == paired_bootstrap("binary", "auroc", y, Scored(good, 0.5), Scored(poor, 0.5), **kwargs)
    reverse = paired_bootstrap("binary", "auroc", y, Scored(poor, 0.5), Scored(good, 0.5), **kwargs)
    assert reverse.high < 0 and reverse.improvement == pytest.approx(-ci.improvement)


def test_error_metrics_count_a_lower_value_as_a_gain() -> None:
    y, pred = regression()
    worse = pred + np.random.default_rng(3).normal(0, 8, N).astype(np.float32)
    ci = paired_bootstrap(
        "regression", "rmse", y, Scored(pred, None), Scored(worse, None), samples=300, confidence=0.9, seed=0
    )
    assert ci.improvement > 0 and ci.low > 0


def test_a_metric_without_a_fast_form_falls_back_to_torchmetrics_on_the_same_draws() -> None:
    y, scores = binary()
    _, other = binary(seed=5)
    assert vectorised("binary", "f1", Scored(scores, 0.5), y) is None
    ci = paired_bootstrap(
        "binary", "f1", y, Scored(scores, 0.5), Scored(other, 0.5), samples=40, confidence=0.9, seed=0
    )
    assert ci.samples == 40 and ci.low <= ci.improvement <= ci.high


def test_resamples_where_the_metric_is_undefined_are_dropped_and_counted() -> None:
    y, proba = multiclass()
    y = y.copy()
    y[y == 2] = 0
    y[:2] = 2  # a class with two rows: many resamples miss it, so macro AUROC is undefined there
    a, b = Scored(proba, None), Scored(proba[:, [1, 0, 2]], None)
    ci = paired_bootstrap("multiclass", "auroc", y, a, b, samples=60, confidence=0.9, seed=0)
    assert ci.undefined > 0 and ci.samples + ci.undefined == 60


def test_a_metric_undefined_on_every_resample_is_an_error() -> None:
    y = np.zeros(N, dtype=np.int64)
    y[0] = 1
    scores = np.linspace(0, 1, N)
    m = Scored(scores, 0.5)
    with pytest.raises(UndefinedMetricError):
        paired_bootstrap(
            "binary", "f1", y[:1], Scored(scores[:1], 0.5), Scored(scores[:1], 0.5), samples=5, confidence=0.9, seed=0
        )
    assert np.isnan(vectorised("binary", "auroc", m, y)(np.eye(N)[:1] * N)).all()  # one row drawn N times: one class
