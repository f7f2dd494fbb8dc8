"""evaluate stage: score the trained network on the test split, beside two baselines fitted on the same split.

Writes metrics.json (the model's and each baseline's test metrics), metrics per slice value, plot data for
`dvc plots show`, the same plots as PNGs (for the model package) and the raw test predictions.
Binary decisions use the F1-maximising cut on P(positive) chosen on the validation split, never 0.5:
on imbalanced targets 0.5 is arbitrary, and choosing on test would leak.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

from tabml.core.errors import StageError
from tabml.core.metric_names import PRIMARY_METRIC
from tabml.core.params import EvaluateParams, Params
from tabml.core.stage import stage_main
from tabml.data.preprocessing import PreprocessState, SplitArrays
from tabml.data.processed import read_split, read_state, split_rows
from tabml.data.snapshot import read_accepted
from tabml.evaluation import metrics
from tabml.evaluation.baselines import BaselinePrediction, RawColumns, fit_baselines
from tabml.evaluation.outputs import Evaluation, Rows, write_evaluation
from tabml.evaluation.plots import CALIBRATION, CONFUSION, PRECISION_RECALL, RESIDUALS, ROC, SLICES
from tabml.evaluation.slices import missing_columns, slice_groups, slice_plot_rows, slice_report
from tabml.tracking.stage_reports import Chart, evaluation_summary, track_stage
from tabml.training.trained_model import load_trained, recorded_run_id, score_arrays
from tabml.validation.report import read_report


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
    """Binary: the F1-maximising cut on the validation split, as recorded (`metrics.recorded_threshold`)."""
    with _scoring("val"):
        return metrics.recorded_threshold(val_scores, y_val)


def evaluate(
    info: PreprocessState, test_scores: np.ndarray, y_test: np.ndarray, threshold: float | None, p: EvaluateParams
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
            plots={RESIDUALS: metrics.residual_rows(test_scores, y_test, p.max_residual_points)},
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
            ROC: roc,
            PRECISION_RECALL: pr,
            CONFUSION: metrics.confusion_rows(y_test, predicted, labels),
            CALIBRATION: calibration,
        },
        predictions={"y_true": y_test, "y_pred": predicted, "y_proba": test_scores},
        labels=labels,
    )


def score_baselines(
    info: PreprocessState, predictions: list[BaselinePrediction], y_test: np.ndarray
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
    return replace(result, slices=report, plots={**result.plots, SLICES: rows})


def read_test_frame(params: Params, n_test: int) -> pd.DataFrame:
    """The raw test rows (for slices), checked against the slice columns and the test split."""
    source = params.preprocess.input
    frame = split_rows(params.preprocess.out_dir, read_accepted(source), "test", source)
    columns = params.evaluate.slice_columns(params.data.name)
    absent = missing_columns(frame, columns)
    if absent:
        raise StageError(
            f"evaluate.slices.{params.data.name} names columns that are not in the table: {absent}",
            source,
            f"list category columns of the table (it has {list(frame.columns)}) in params.yaml",
        )
    if len(frame) != n_test:
        raise StageError(
            f"the test split has {n_test} rows but splits.npz points at {len(frame)}",
            params.preprocess.out_dir,
            "the processed data is stale: run `dvc repro preprocess`",
        )
    return frame


def read_raw_columns(params: Params, splits: dict[str, SplitArrays]) -> RawColumns | None:
    """The linear baseline's inputs: the raw rows of each split, encoded as a user's own linear model would encode
    them (tabml.evaluation.baselines.raw_columns). None (the baseline then reads the encoded arrays, and says so)
    when the processed folder has no row positions or the table is gone."""
    from tabml.data.processed import POSITIONS_FILE
    from tabml.evaluation.baselines import raw_columns

    processed, source = params.preprocess.out_dir, params.preprocess.input
    if not (processed / POSITIONS_FILE).is_file() or not source.is_file():
        print(
            f"[evaluate] note: no raw rows ({processed / POSITIONS_FILE}, {source}): linear baseline on encoded inputs"
        )
        return None
    table = read_accepted(source)
    frames = {name: split_rows(processed, table, name, source) for name in splits}
    stale = [name for name, frame in frames.items() if len(frame) != len(splits[name])]
    if stale:
        raise StageError(
            f"the row positions of {stale} do not match the split arrays",
            processed,
            "the processed data is stale: run `dvc repro`",
        )
    return raw_columns(frames, read_state(processed))


def run(params: Params) -> list[Path]:
    processed, p = params.preprocess.out_dir, params.evaluate
    info = read_state(processed)
    if info.task != params.data.task:
        raise StageError(
            f"processed data is for a {info.task} task but params.yaml says data.task: {params.data.task}",
            processed,
            "run `dvc repro` so preprocess and train follow params.yaml",
        )
    train, val, test = (read_split(processed, split) for split in ("train", "val", "test"))
    net = load_trained(params.train.out_dir, info.output_dim, test)
    threshold = None
    if info.task == "binary":
        threshold = decision_threshold(score_arrays(net, val, info.task), val.y)
    test_scores = score_arrays(net, test, info.task, info.target_mean, info.target_std)
    result = evaluate(info, test_scores, test.y, threshold, p)
    n_classes = len(info.labels or [])
    raw = read_raw_columns(params, {"train": train, "val": val, "test": test})
    baselines = fit_baselines(train, val, test, info.task, n_classes, p.linear_baseline_l2, raw)
    result = replace(result, baselines=score_baselines(info, baselines, test.y))
    if p.slice_columns(params.data.name):
        result = with_slices(result, test_scores, read_test_frame(params, len(test)), p, params.data.name)
    written = write_evaluation(result, p)
    track(params, result)  # metrics and charts into the pipeline's W&B run; never fails the stage
    print(result.line(), flush=True)
    return written


def charts_of(plots: Mapping[str, Rows]) -> list[Chart]:
    """An evaluation's plot rows as W&B charts (the slice bars stay in the files and the PNGs)."""
    specs = [
        (ROC, "line", "evaluate/roc", "fpr", "tpr", "ROC (test)"),
        (PRECISION_RECALL, "line", "evaluate/precision_recall", "recall", "precision", "Precision-recall (test)"),
        (CALIBRATION, "line", "evaluate/calibration", "mean_predicted", "fraction_positive", "Calibration (test)"),
        (RESIDUALS, "scatter", "evaluate/residuals", "predicted", "residual", "Residuals (test)"),
        (CONFUSION, "confusion", "evaluate/confusion", "actual", "predicted", "Confusion (test)"),
    ]
    return [
        Chart(key, kind, plots[name], x, y, title)  # type: ignore[arg-type]
        for name, kind, key, x, y, title in specs
        if plots.get(name)
    ]


def track(params: Params, result: Evaluation) -> None:
    config = {"evaluate": params.evaluate.model_dump(mode="json"), "dataset": params.data.name}
    document = {**result.details_document(), **result.metrics_document()}
    summary = evaluation_summary(document, read_report(params.validate_.report))
    track_stage(
        params.tracking, "evaluate", recorded_run_id(params.train.out_dir), config, summary, charts_of(result.plots)
    )


def main(argv: list[str] | None = None) -> int:
    return stage_main("evaluate", run, argv)


if __name__ == "__main__":
    raise SystemExit(main())
