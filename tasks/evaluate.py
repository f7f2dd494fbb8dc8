"""evaluate stage: score the trained network on the test split, beside two baselines fitted on the same split.

Writes metrics.json (the model's and each baseline's test metrics), metrics per slice value, plot data for
`dvc plots show`, the same plots as PNGs (for the model package) and the raw test predictions.
Binary decisions use the F1-maximising cut on P(positive) chosen on the validation split, never 0.5:
on imbalanced targets 0.5 is arbitrary, and choosing on test would leak.
"""

from __future__ import annotations

import json
import math
import shutil
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd

from tabml.core.errors import StageError
from tabml.core.params import EvaluateParams, Params
from tabml.core.stage import stage_main
from tabml.data.preprocessing import SplitArrays
from tabml.data.processed import load_split, split_path
from tabml.evaluation import metrics
from tabml.evaluation.baselines import BaselinePrediction, fit_baselines
from tabml.evaluation.metric_names import PRIMARY_METRIC
from tabml.evaluation.slices import missing_columns, slice_groups, slice_plot_rows, slice_report
from tabml.tracking.stage_reports import track_stage
from tabml.training.model import TabularNet
from tabml.training.trained_model import CONFIG_FILE, WEIGHTS_FILE, load_model, predict

STATE_FILE = "preprocess_state.json"
PREDICTIONS_FILE = "test_predictions.npz"
SLICES_FILE = "slices.json"
PLOTS_DIR = "plots"
FIGURES_DIR = "figures"  # PNGs; register copies them into the model package
Rows = Sequence[Mapping[str, object]]
PLOT_FILES = (
    "roc.json",
    "precision_recall.json",
    "confusion.json",
    "calibration.json",
    "residuals.json",
    "slices.json",
)


@dataclass(frozen=True)
class TargetInfo:
    """The fields of preprocess_state.json this stage needs."""

    task: str
    labels: list[str] | None
    target_mean: float
    target_std: float


@dataclass(frozen=True)
class Evaluation:
    task: str
    n_test: int
    test: dict[str, float]
    threshold: float | None
    plots: dict[str, Rows] = field(default_factory=dict)  # file name under plots/ -> rows
    predictions: dict[str, np.ndarray] = field(default_factory=dict)  # arrays of test_predictions.npz
    labels: list[str] | None = None
    baselines: dict[str, dict[str, float]] = field(default_factory=dict)  # baseline -> its test metrics
    slices: dict[str, list[dict[str, object]]] = field(default_factory=dict)  # column -> per-value metrics

    def summary(self) -> dict[str, object]:
        return {
            "task": self.task,
            "n_test": self.n_test,
            "test": self.test,
            "threshold": self.threshold,
            "baselines": self.baselines,
        }

    def line(self) -> str:
        """`test auroc=0.8312 pr_auc=... (n=891); baselines auroc: majority=0.5000 linear=0.8290`."""
        primary = PRIMARY_METRIC[self.task]
        names = [primary] + [name for name in self.test if name != primary]
        text = "test " + " ".join(f"{name}={self.test[name]:.4f}" for name in names) + f" (n={self.n_test})"
        if self.baselines:
            text += f"; baselines {primary}: " + " ".join(
                f"{name}={scores[primary]:.4f}" for name, scores in self.baselines.items()
            )
        return text


@contextmanager
def _scoring(split: str) -> Iterator[None]:
    try:
        yield
    except metrics.UndefinedMetricError as exc:
        raise StageError(
            f"cannot score the {split} split: {exc}",
            where=f"evaluate ({split} split)",
            todo=f"the {split} split is too small or too imbalanced: supply more rows or raise "
            f"preprocess.{split}_size in params.yaml, then `dvc repro`",
        ) from exc


def decision_threshold(val_scores: np.ndarray, y_val: np.ndarray) -> float:
    """Binary: the F1-maximising cut on the validation split, rounded down to 6 digits so the recorded
    value reproduces every decision made with it."""
    with _scoring("val"):
        return math.floor(metrics.choose_threshold(val_scores, y_val) * 1e6) / 1e6


def evaluate(
    info: TargetInfo, test_scores: np.ndarray, y_test: np.ndarray, threshold: float | None, p: EvaluateParams
) -> Evaluation:
    """Pure: test predictions (and the binary threshold) in, everything the stage writes out."""
    n = len(y_test)
    if info.task == "regression":
        with _scoring("test"):
            scores = metrics.regression_metrics(test_scores, y_test)
        return Evaluation(
            info.task,
            n,
            scores,
            None,
            plots={"residuals.json": metrics.residual_rows(test_scores, y_test, p.max_residual_points)},
            predictions={"y_true": y_test, "y_pred": test_scores},
        )
    labels = info.labels or []
    roc: Rows
    pr: Rows
    calibration: Rows
    if info.task == "binary":
        if threshold is None:
            raise ValueError("a binary evaluation needs the decision threshold chosen on val")
        with _scoring("test"):
            scores = metrics.binary_metrics(test_scores, y_test, threshold)
        roc = metrics.roc_rows(test_scores, y_test, p.max_curve_points)
        pr = metrics.pr_rows(test_scores, y_test, p.max_curve_points)
        calibration = metrics.calibration_rows(test_scores, y_test, p.calibration_bins)
    else:
        threshold = None
        with _scoring("test"):
            scores = metrics.multiclass_metrics(test_scores, y_test)
        roc, pr = metrics.one_vs_rest_rows(test_scores, y_test, labels, p.max_curve_points)
        calibration = metrics.one_vs_rest_calibration(test_scores, y_test, labels, p.calibration_bins)
    predicted = metrics.predicted_classes(test_scores, threshold)
    return Evaluation(
        info.task,
        n,
        scores,
        threshold,
        plots={
            "roc.json": roc,
            "precision_recall.json": pr,
            "confusion.json": metrics.confusion_rows(y_test, predicted, labels),
            "calibration.json": calibration,
        },
        predictions={"y_true": y_test, "y_pred": predicted, "y_proba": test_scores},
        labels=labels,
    )


def read_target_info(processed_dir: Path) -> TargetInfo:
    path = processed_dir / STATE_FILE
    if not path.exists():
        raise StageError("preprocess state not found", path, "run `dvc repro preprocess` first")
    try:
        raw = json.loads(path.read_text())
        info = TargetInfo(
            task=str(raw["task"]),
            labels=None if raw.get("labels") is None else [str(label) for label in raw["labels"]],
            target_mean=float(raw["target_mean"]),
            target_std=float(raw["target_std"]),
        )
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise StageError(f"unreadable preprocess state ({exc!r})", path, "re-run `dvc repro preprocess`") from exc
    n_labels = len(info.labels or [])
    if (info.task == "binary" and n_labels != 2) or (info.task == "multiclass" and n_labels < 2):
        raise StageError(
            f"a {info.task} task needs {'exactly' if info.task == 'binary' else 'at least'} two labels, "
            f"got {info.labels}",
            path,
            "check data.task and data.target in params.yaml, then `dvc repro`",
        )
    return info


def read_split(processed_dir: Path, split: str) -> SplitArrays:
    path = split_path(processed_dir, split)
    if not path.exists():
        raise StageError(f"{split} split not found", path, "run `dvc repro preprocess` first")
    return load_split(path)


def read_model(model_dir: Path, info: TargetInfo, arrays: SplitArrays) -> TabularNet:
    for name in (CONFIG_FILE, WEIGHTS_FILE):
        if not (model_dir / name).exists():
            raise StageError("trained model not found", model_dir / name, "run `dvc repro train` first")
    net = load_model(model_dir)
    expected_out = len(info.labels or []) if info.task == "multiclass" else 1
    config = net.config
    if (config.output_dim, config.n_numeric, len(config.cardinalities)) != (
        expected_out,
        arrays.x_num.shape[1],
        arrays.x_cat.shape[1],
    ):
        raise StageError(
            f"model (outputs={config.output_dim}, numeric={config.n_numeric}, "
            f"categorical={len(config.cardinalities)}) does not fit the processed data "
            f"(outputs={expected_out}, numeric={arrays.x_num.shape[1]}, categorical={arrays.x_cat.shape[1]})",
            model_dir,
            "the model is stale: run `dvc repro train`",
        )
    return net


def score_baselines(
    info: TargetInfo, predictions: list[BaselinePrediction], y_test: np.ndarray
) -> dict[str, dict[str, float]]:
    """Pure: each baseline's test metrics, computed exactly as the network's."""
    with _scoring("test"):
        return {b.name: metrics.task_metrics(info.task, b.test_scores, y_test, b.threshold) for b in predictions}


def with_slices(
    result: Evaluation, test_scores: np.ndarray, frame: pd.DataFrame, p: EvaluateParams, name: str
) -> Evaluation:
    """Pure: the evaluation plus metrics per value of each `evaluate.slices` column, and their bar-chart rows."""
    columns = p.slice_columns(name)
    y = result.predictions["y_true"]

    def score(rows: np.ndarray) -> dict[str, float]:
        return metrics.task_metrics(result.task, test_scores[rows], y[rows], result.threshold)

    report = slice_report(slice_groups(frame, columns, p.min_slice_rows), score)
    rows = slice_plot_rows(report, PRIMARY_METRIC[result.task])
    return replace(result, slices=report, plots={**result.plots, "slices.json": rows})


def read_test_frame(params: Params, n_test: int) -> pd.DataFrame:
    """The raw test rows (for slices), checked against the slice columns and the test split."""
    from tabml.evaluation.scorer import frozen_test_frame, preprocess_input

    frame = frozen_test_frame(params)
    columns = params.evaluate.slice_columns(params.data.name)
    absent = missing_columns(frame, columns)
    if absent:
        raise StageError(
            f"evaluate.slices.{params.data.name} names columns that are not in the table: {absent}",
            preprocess_input(params),
            f"list category columns of the table (it has {list(frame.columns)}) in params.yaml",
        )
    if len(frame) != n_test:
        raise StageError(
            f"the test split has {n_test} rows but splits.npz points at {len(frame)}",
            params.preprocess.out_dir,
            "the processed data is stale: run `dvc repro preprocess`",
        )
    return frame


def write_outputs(result: Evaluation, p: EvaluateParams) -> list[Path]:
    """metrics.json, slices.json, one JSON file per plot (stale ones from another task removed), PNG
    figures and raw test predictions."""
    from tabml.evaluation.plots import write_figures

    plots_dir, figures_dir = p.out_dir / PLOTS_DIR, p.out_dir / FIGURES_DIR
    plots_dir.mkdir(parents=True, exist_ok=True)
    for name in PLOT_FILES:
        (plots_dir / name).unlink(missing_ok=True)
    shutil.rmtree(figures_dir, ignore_errors=True)
    written = []
    for name, rows in result.plots.items():
        (plots_dir / name).write_text(json.dumps(rows))
        written.append(plots_dir / name)
    written += write_figures(result.plots, result.labels, PRIMARY_METRIC[result.task], figures_dir)
    slices = p.out_dir / SLICES_FILE
    slices.write_text(json.dumps(result.slices, indent=2) + "\n")
    predictions = p.out_dir / PREDICTIONS_FILE
    with predictions.open("wb") as fh:
        np.savez(fh, allow_pickle=False, **result.predictions)
    p.metrics.parent.mkdir(parents=True, exist_ok=True)
    p.metrics.write_text(json.dumps(result.summary(), indent=2) + "\n")
    return [p.metrics, slices, *written, predictions]


def run(params: Params) -> list[Path]:
    processed, p = params.preprocess.out_dir, params.evaluate
    info = read_target_info(processed)
    if info.task != params.data.task:
        raise StageError(
            f"processed data is for a {info.task} task but params.yaml says data.task: {params.data.task}",
            processed / STATE_FILE,
            "run `dvc repro` so preprocess and train follow params.yaml",
        )
    train, val, test = (read_split(processed, split) for split in ("train", "val", "test"))
    net = read_model(params.train.out_dir, info, test)
    threshold = None
    if info.task == "binary":
        threshold = decision_threshold(predict(net, val, info.task), val.y)
    test_scores = predict(net, test, info.task, info.target_mean, info.target_std)
    result = evaluate(info, test_scores, test.y, threshold, p)
    n_classes = len(info.labels or [])
    baselines = fit_baselines(train, val, test, info.task, n_classes, p.linear_baseline_l2)
    result = replace(result, baselines=score_baselines(info, baselines, test.y))
    if p.slice_columns(params.data.name):
        result = with_slices(result, test_scores, read_test_frame(params, len(test)), p, params.data.name)
    written = write_outputs(result, p)
    track_stage(params, "evaluate")  # metrics and charts into the pipeline's W&B run; never fails the stage
    print(result.line(), flush=True)
    return written


def main(argv: list[str] | None = None) -> int:
    return stage_main("evaluate", run, argv)


if __name__ == "__main__":
    raise SystemExit(main())
