"""PNG figures of an evaluation (matplotlib, Agg, no display): what goes into the model package and W&B.

They are drawn from the same rows as the DVC plot JSON files, so the two never disagree.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from tabml.core.files import atomic_path

Rows = Sequence[Mapping[str, Any]]
DPI = 110
# The plots of an evaluation, by the name of their rows file under plots/ (dvc.yaml's `plots:` read these).
ROC = "roc.json"
PRECISION_RECALL = "precision_recall.json"
CONFUSION = "confusion.json"
CALIBRATION = "calibration.json"
RESIDUALS = "residuals.json"
SLICES = "slices.json"
PLOT_FILES = (ROC, PRECISION_RECALL, CONFUSION, CALIBRATION, RESIDUALS, SLICES)


def _figure(width: float = 5.0, height: float = 4.5, panels: int = 1) -> Any:
    from matplotlib.figure import Figure  # no pyplot: no global state, no GUI backend

    fig = Figure(figsize=(width * panels, height), layout="constrained")
    return fig, fig.subplots(1, panels) if panels > 1 else fig.subplots()


def _by_class(rows: Rows) -> dict[str | None, list[Mapping[str, Any]]]:
    groups: dict[str | None, list[Mapping[str, Any]]] = {}
    for row in rows:
        groups.setdefault(row.get("class"), []).append(row)
    return groups


def _curves(rows: Rows, x: str, y: str, title: str, xlabel: str, ylabel: str, diagonal: bool) -> Any:
    fig, ax = _figure()
    for label, group in _by_class(rows).items():
        ax.plot([r[x] for r in group], [r[y] for r in group], label=label or None, linewidth=1.6)
    if diagonal:
        ax.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=1, label="chance" if x == "fpr" else "perfect")
    ax.set(title=title, xlabel=xlabel, ylabel=ylabel, xlim=(0, 1), ylim=(0, 1.02))
    ax.grid(alpha=0.3)
    if any(not line.get_label().startswith("_") for line in ax.lines):
        ax.legend(loc="lower right", fontsize="small")
    return fig


def roc_figure(rows: Rows) -> Any:
    return _curves(rows, "fpr", "tpr", "ROC curve (test)", "false positive rate", "true positive rate", True)


def precision_recall_figure(rows: Rows) -> Any:
    return _curves(rows, "recall", "precision", "Precision-recall (test)", "recall", "precision", False)


def calibration_figure(rows: Rows) -> Any:
    fig = _curves(
        rows,
        "mean_predicted",
        "fraction_positive",
        "Calibration (test)",
        "mean predicted probability",
        "observed frequency",
        True,
    )
    for line in fig.axes[0].lines[:-1]:
        line.set_marker("o")
    return fig


def confusion_figure(rows: Rows, labels: Sequence[str]) -> Any:
    import numpy as np

    index = {label: i for i, label in enumerate(labels)}
    counts = np.zeros((len(labels), len(labels)), dtype=np.int64)
    for row in rows:
        counts[index[row["actual"]], index[row["predicted"]]] += 1
    fig, ax = _figure(4.5 + 0.3 * len(labels), 4 + 0.3 * len(labels))
    ax.imshow(counts, cmap="Blues")
    for (i, j), n in np.ndenumerate(counts):
        ax.text(j, i, str(n), ha="center", va="center", color="white" if n > counts.max() / 2 else "black")
    ticks = range(len(labels))
    ax.set_xticks(ticks, labels, rotation=45 if len(labels) > 4 else 0)
    ax.set_yticks(ticks, labels)
    ax.set(title="Confusion matrix (test)", xlabel="predicted", ylabel="actual")
    return fig


def residuals_figure(rows: Rows) -> Any:
    fig, (left, right) = _figure(panels=2)
    actual, predicted = [r["actual"] for r in rows], [r["predicted"] for r in rows]
    left.scatter(actual, predicted, s=8, alpha=0.5)
    low, high = min(actual + predicted), max(actual + predicted)
    left.plot([low, high], [low, high], linestyle="--", color="grey", linewidth=1)
    left.set(title="Predicted vs actual (test)", xlabel="actual", ylabel="predicted")
    right.scatter(predicted, [r["residual"] for r in rows], s=8, alpha=0.5)
    right.axhline(0, linestyle="--", color="grey", linewidth=1)
    right.set(title="Residuals (test)", xlabel="predicted", ylabel="actual - predicted")
    return fig


def slices_figure(rows: Rows, metric: str) -> Any:
    fig, ax = _figure(6, 1.2 + 0.35 * len(rows))
    names = [f"{r['slice']} (n={r['n']})" for r in rows]
    ax.barh(names, [r["value"] for r in rows], color="tab:blue")
    ax.invert_yaxis()
    ax.set(title=f"{metric} per slice (test)", xlabel=metric)
    ax.grid(axis="x", alpha=0.3)
    return fig


def write_figures(plots: Mapping[str, Rows], labels: Sequence[str] | None, metric: str, out_dir: Path) -> list[Path]:
    """One PNG per plot the evaluation produced (`roc.json` -> `roc.png`); returns the files written."""
    makers = {
        ROC: roc_figure,
        PRECISION_RECALL: precision_recall_figure,
        CALIBRATION: calibration_figure,
        RESIDUALS: residuals_figure,
        CONFUSION: lambda rows: confusion_figure(rows, labels or []),
        SLICES: lambda rows: slices_figure(rows, metric),
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, rows in plots.items():
        if name in makers and rows:
            path = out_dir / name.replace(".json", ".png")
            with atomic_path(path) as tmp:
                makers[name](rows).savefig(tmp, format="png", dpi=DPI, metadata={"Software": None})
            written.append(path)
    return written
