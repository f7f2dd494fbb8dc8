import numpy as np
import pytest
from sklearn import metrics as sk

from tabml.evaluation import metrics

# Tiny hand-checkable cases; scores avoid 0/1 so log loss needs no clipping.
Y_BIN = np.array([0, 0, 1, 1, 0, 1, 0, 1, 1, 0])
P_BIN = np.array([0.1, 0.4, 0.35, 0.8, 0.2, 0.9, 0.6, 0.55, 0.3, 0.05], dtype=np.float32)
Y_MC = np.array([0, 1, 2, 2, 1, 0, 2, 1])
P_MC = np.array(
    [
        [0.7, 0.2, 0.1],
        [0.2, 0.5, 0.3],
        [0.1, 0.3, 0.6],
        [0.3, 0.3, 0.4],
        [0.4, 0.4, 0.2],
        [0.5, 0.1, 0.4],
        [0.2, 0.6, 0.2],
        [0.1, 0.8, 0.1],
    ],
    dtype=np.float32,
)
Y_REG = np.array([3.0, -1.5, 2.0, 7.0, 0.5], dtype=np.float32)
P_REG = np.array([2.5, -1.0, 2.5, 8.0, 0.0], dtype=np.float32)


def test_binary_metrics_match_sklearn() -> None:
    got = metrics.binary_metrics(P_BIN, Y_BIN, threshold=0.5)
    hard = (P_BIN >= 0.5).astype(int)
    want = {
        "auroc": sk.roc_auc_score(Y_BIN, P_BIN),
        "pr_auc": sk.average_precision_score(Y_BIN, P_BIN),
        "accuracy": sk.accuracy_score(Y_BIN, hard),
        "balanced_accuracy": sk.balanced_accuracy_score(Y_BIN, hard),
        "f1": sk.f1_score(Y_BIN, hard),
        "precision": sk.precision_score(Y_BIN, hard),
        "recall": sk.recall_score(Y_BIN, hard),
        "log_loss": sk.log_loss(Y_BIN, P_BIN),
    }
    assert list(got) == list(want)
    for name, value in want.items():
        assert got[name] == pytest.approx(value, abs=1e-5), name
        assert type(got[name]) is float


def test_binary_threshold_is_inclusive() -> None:
    # 0.55 is a score: `score >= threshold` makes it positive (TP), so 3 of 5 positives are found.
    got = metrics.binary_metrics(P_BIN, Y_BIN, threshold=0.55)
    assert got["recall"] == pytest.approx(3 / 5)
    assert got["precision"] == pytest.approx(3 / 4)


def test_choose_threshold_maximises_f1() -> None:
    # F1 = 2tp / (2tp + fp + fn) at each cut: >=0.7 -> 2/4, >=0.4 -> 4/5, >=0.3 -> 4/6, >=0.2 -> 6/7, >=0.1 -> 6/8.
    y = np.array([1, 1, 0, 1, 0])
    score = np.array([0.7, 0.4, 0.3, 0.2, 0.1])
    assert metrics.choose_threshold(score, y) == pytest.approx(0.2)
    y = np.array([1, 1, 0, 0, 0])
    assert metrics.choose_threshold(score, y) == pytest.approx(0.4)
    # Brute force against sklearn on the toy case used above.
    cuts = np.unique(P_BIN)
    best = max(cuts, key=lambda c: (sk.f1_score(Y_BIN, np.greater_equal(P_BIN, c)), -c))
    assert metrics.choose_threshold(P_BIN, Y_BIN) == pytest.approx(float(best))


def test_multiclass_metrics_match_sklearn() -> None:
    got = metrics.multiclass_metrics(P_MC, Y_MC)
    hard = P_MC.argmax(axis=1)
    want = {
        "accuracy": sk.accuracy_score(Y_MC, hard),
        "balanced_accuracy": sk.balanced_accuracy_score(Y_MC, hard),
        "macro_f1": sk.f1_score(Y_MC, hard, average="macro"),
        "auroc": sk.roc_auc_score(Y_MC, P_MC, multi_class="ovr", average="macro"),
        "log_loss": sk.log_loss(Y_MC, P_MC),
    }
    assert list(got) == list(want)
    for name, value in want.items():
        assert got[name] == pytest.approx(value, abs=1e-5), name


def test_regression_metrics_match_sklearn() -> None:
    got = metrics.regression_metrics(P_REG, Y_REG)
    assert got == pytest.approx(
        {
            "rmse": np.sqrt(sk.mean_squared_error(Y_REG, P_REG)),
            "mae": sk.mean_absolute_error(Y_REG, P_REG),
            "r2": sk.r2_score(Y_REG, P_REG),
        },
        abs=1e-5,
    )


def test_log_loss_is_finite_on_hard_wrong_predictions() -> None:
    got = metrics.binary_metrics(np.array([1.0, 0.0, 0.9], dtype=np.float32), np.array([0, 1, 1]), 0.5)
    assert got["log_loss"] == pytest.approx(sk.log_loss([0, 1, 1], np.array([1.0, 0.0, 0.9], np.float32)), rel=1e-4)


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: metrics.binary_metrics(P_BIN, np.ones(10, dtype=np.int64), 0.5), r"class index\(es\) \[0\]"),
        (lambda: metrics.choose_threshold(P_BIN, np.zeros(10, dtype=np.int64)), r"\[1\]"),
        (lambda: metrics.multiclass_metrics(P_MC, np.array([0, 1, 1, 0, 1, 0, 1, 1])), r"\[2\]"),
        (lambda: metrics.regression_metrics(P_REG, np.full(5, 2.0, dtype=np.float32)), "distinct"),
    ],
)
def test_undefined_metrics_raise(call, match: str) -> None:
    with pytest.raises(metrics.UndefinedMetricError, match=match):
        call()


def test_evenly_spaced_keeps_the_ends() -> None:
    assert metrics.evenly_spaced(5, 200).tolist() == [0, 1, 2, 3, 4]
    idx = metrics.evenly_spaced(10_001, 200)
    assert len(idx) <= 200 and idx[0] == 0 and idx[-1] == 10_000
    assert np.all(np.diff(idx) > 0)


def test_curve_rows() -> None:
    roc = metrics.roc_rows(P_BIN, Y_BIN, max_points=200)
    fpr, tpr, _ = sk.roc_curve(Y_BIN, P_BIN, drop_intermediate=False)
    assert [r["fpr"] for r in roc] == pytest.approx(fpr.tolist())
    assert [r["tpr"] for r in roc] == pytest.approx(tpr.tolist())
    assert all(np.isfinite(r["threshold"]) for r in roc)  # JSON has no inf
    pr = metrics.pr_rows(P_BIN, Y_BIN, max_points=4)
    assert len(pr) == 4 and set(pr[0]) == {"recall", "precision"}
    assert pr[0]["recall"] == 1.0 and pr[-1] == {"recall": 0.0, "precision": 1.0}

    rng = np.random.default_rng(0)
    big_y, big_p = rng.integers(0, 2, 5000), rng.random(5000)
    assert len(metrics.roc_rows(big_p, big_y, max_points=200)) == 200

    roc_mc, pr_mc = metrics.one_vs_rest_rows(P_MC, Y_MC, ["a", "b", "c"], max_points=200)
    assert {r["class"] for r in roc_mc} == {"a", "b", "c"} == {r["class"] for r in pr_mc}
    assert set(roc_mc[0]) == {"class", "fpr", "tpr", "threshold"}


def test_confusion_and_residual_rows() -> None:
    predicted = metrics.predicted_classes(P_BIN, threshold=0.5)
    rows = metrics.confusion_rows(Y_BIN, predicted, ["good", "bad"])
    assert len(rows) == 10 and rows[0] == {"actual": "good", "predicted": "good"}
    assert rows[6] == {"actual": "good", "predicted": "bad"}
    assert metrics.predicted_classes(P_MC, None).tolist() == P_MC.argmax(axis=1).tolist()

    res = metrics.residual_rows(P_REG, Y_REG, max_points=3)
    assert [r["actual"] for r in res] == [3.0, 2.0, 0.5]
    assert res[0] == {"actual": 3.0, "predicted": 2.5, "residual": 0.5}
