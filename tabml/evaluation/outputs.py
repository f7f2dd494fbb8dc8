"""The evaluation-outputs artifact (evaluate's output folder and `evaluate.metrics`): the test metrics, the plot
rows `dvc plots show` draws, the same plots as PNG figures (copied into the model package), metrics per slice
value and the raw test predictions. Every reader and writer of these files goes through here.

`evaluate.metrics` (a DVC metric: `dvc exp show` makes a column of every number in it) holds only what a person
compares between experiments: the test metrics and the decision threshold. The rest of the evaluation (task, test
rows, each baseline's metrics) is `details.json` in the output folder, which DVC does not show as metrics;
`read_evaluation` joins the two for the stages that need both.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tabml.core.errors import StageError
from tabml.core.files import atomic_path, read_json_object, write_text_atomic
from tabml.core.metric_names import PRIMARY_METRIC
from tabml.core.params import EvaluateParams
from tabml.evaluation.plots import PLOT_FILES, write_figures

PREDICTIONS_FILE = "test_predictions.npz"
DETAILS_FILE = "details.json"  # task, n_test, baselines: the evaluation's facts that are not compared metrics
SLICES_FILE = "slices.json"
PLOTS_DIR = "plots"
FIGURES_DIR = "figures"  # PNGs; register copies them into the model package
Rows = Sequence[Mapping[str, object]]


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

    def metrics_document(self) -> dict[str, object]:
        """metrics.json: what `dvc exp show` and `dvc metrics diff` compare."""
        return {"test": self.test, "threshold": self.threshold}

    def details_document(self) -> dict[str, object]:
        """details.json: what the gate and the reports need besides the metrics."""
        return {"task": self.task, "n_test": self.n_test, "baselines": self.baselines}

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


def write_evaluation(result: Evaluation, p: EvaluateParams) -> list[Path]:
    """metrics.json, slices.json, one JSON file per plot (stale ones from another task removed), PNG
    figures and raw test predictions."""
    plots_dir, figures_dir = p.out_dir / PLOTS_DIR, p.out_dir / FIGURES_DIR
    plots_dir.mkdir(parents=True, exist_ok=True)
    for name in PLOT_FILES:
        (plots_dir / name).unlink(missing_ok=True)
    shutil.rmtree(figures_dir, ignore_errors=True)
    written = []
    for name, rows in result.plots.items():
        write_text_atomic(plots_dir / name, json.dumps(rows))
        written.append(plots_dir / name)
    written += write_figures(result.plots, result.labels, PRIMARY_METRIC[result.task], figures_dir)
    slices = p.out_dir / SLICES_FILE
    write_text_atomic(slices, json.dumps(result.slices, indent=2) + "\n")
    predictions = p.out_dir / PREDICTIONS_FILE
    with atomic_path(predictions) as tmp, tmp.open("wb") as fh:
        np.savez(fh, allow_pickle=False, **result.predictions)
    details = details_path(p)
    write_text_atomic(details, json.dumps(result.details_document(), indent=2) + "\n")
    write_text_atomic(p.metrics, json.dumps(result.metrics_document(), indent=2) + "\n")
    return [p.metrics, details, slices, *written, predictions]


def read_metrics(path: Path) -> dict[str, Any]:
    """metrics.json as evaluate wrote it, or a StageError saying to rerun evaluate."""
    if not path.exists():
        raise StageError("not found", path, "run the evaluate stage first: dvc repro evaluate")
    try:
        document = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise StageError(f"not valid JSON: {exc}", path, "run the evaluate stage again: dvc repro evaluate") from None
    if not isinstance(document, dict):
        raise StageError("not a metrics document", path, "run the evaluate stage again: dvc repro evaluate")
    return document


def read_evaluation(p: EvaluateParams) -> dict[str, Any]:
    """metrics.json and details.json as one document (task, n_test, test, threshold, baselines), or a StageError."""
    details = details_path(p)
    document = read_json_object(details)
    if document is None:
        raise StageError("missing or not a JSON object", details, "run the evaluate stage again: dvc repro evaluate")
    return {**document, **read_metrics(p.metrics)}


def details_path(p: EvaluateParams) -> Path:
    return p.out_dir / DETAILS_FILE


def last_metrics(path: Path | None) -> dict[str, Any] | None:
    """metrics.json if there is a readable one (for summaries), else None."""
    return read_json_object(path)


def slices_path(p: EvaluateParams) -> Path:
    return p.out_dir / SLICES_FILE


def plots_dir(p: EvaluateParams) -> Path:
    return p.out_dir / PLOTS_DIR


def figure_paths(p: EvaluateParams) -> list[Path]:
    """The PNG figures of the last evaluation, by name."""
    return sorted((p.out_dir / FIGURES_DIR).glob("*.png"))
