from pathlib import Path

import numpy as np

from tabml.evaluation import metrics
from tabml.evaluation.plots import write_figures


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


def test_binary_and_multiclass_and_regression_figures_are_real_pngs(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 200)
    score = np.clip(0.3 + 0.4 * y + rng.normal(0, 0.2, 200), 0, 1)
    plots = {
        "roc.json": metrics.roc_rows(score, y, 50),
        "precision_recall.json": metrics.pr_rows(score, y, 50),
        "calibration.json": metrics.calibration_rows(score, y, 10),
        "confusion.json": metrics.confusion_rows(y, (score >= 0.5).astype(int), ["good", "bad"]),
        "slices.json": [{"slice": "Home=rent", "metric": "auroc", "value": 0.8, "n": 90}],
        "unknown.json": [{"x": 1}],  # no figure for it
    }
    written = write_figures(plots, ["good", "bad"], "auroc", tmp_path / "binary")
    names = sorted(p.name for p in written)
    assert names == ["calibration.png", "confusion.png", "precision_recall.png", "roc.png", "slices.png"]
    assert all(w > 300 and h > 150 for w, h in map(png_size, written))

    proba = rng.dirichlet([1, 1, 1], 150)
    target = rng.integers(0, 3, 150)
    roc, pr = metrics.one_vs_rest_rows(proba, target, ["a", "b", "c"], 30)
    calibration = metrics.one_vs_rest_calibration(proba, target, ["a", "b", "c"], 5)
    assert {r["class"] for r in calibration} == {"a", "b", "c"}
    multi = {"roc.json": roc, "precision_recall.json": pr, "calibration.json": calibration}
    assert len(write_figures(multi, ["a", "b", "c"], "accuracy", tmp_path / "multi")) == 3

    pred = rng.normal(size=100)
    residuals = {"residuals.json": metrics.residual_rows(pred, pred + rng.normal(size=100), 100)}
    (only,) = write_figures(residuals, None, "rmse", tmp_path / "regression")
    assert only.name == "residuals.png" and png_size(only)[0] > png_size(written[0])[0]  # two panels


def test_calibration_rows_bin_predictions_and_count_rows() -> None:
    score = np.array([0.05, 0.08, 0.5, 0.55, 0.95, 1.0])
    target = np.array([0, 0, 1, 0, 1, 1])
    rows = metrics.calibration_rows(score, target, 10)
    assert [r["count"] for r in rows] == [2, 2, 2]  # 1.0 falls in the last bin
    assert rows[1] == {"mean_predicted": 0.525, "fraction_positive": 0.5, "perfect": 0.525, "count": 2}
