"""Metrics per slice: the test rows that share one value of a category column (`evaluate.slices`)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np
import pandas as pd

from tabml.evaluation.metrics import UndefinedMetricError

MISSING = "(missing)"
Groups = dict[str, dict[str, np.ndarray]]  # column -> value -> row positions


def slice_groups(frame: pd.DataFrame, columns: list[str], min_rows: int) -> Groups:
    """Pure: per column, the row positions of every value with at least `min_rows` rows, largest first."""
    groups: Groups = {}
    for column in columns:
        text = frame[column].astype("string").str.strip().fillna(MISSING).to_numpy(dtype=object)
        values, counts = np.unique(text, return_counts=True)
        order = np.argsort(-counts, kind="stable")
        groups[column] = {str(values[i]): np.flatnonzero(text == values[i]) for i in order if counts[i] >= min_rows}
    return groups


def missing_columns(frame: pd.DataFrame, columns: list[str]) -> list[str]:
    return [c for c in columns if c not in frame.columns]


def slice_report(
    groups: Groups, score: Callable[[np.ndarray], Mapping[str, float]]
) -> dict[str, list[dict[str, object]]]:
    """Per column, one entry per value: its row count and `score(rows)`, or null and why it is undefined."""
    report: dict[str, list[dict[str, object]]] = {}
    for column, values in groups.items():
        entries: list[dict[str, object]] = []
        for value, rows in values.items():
            try:
                entries.append({"value": value, "n": int(rows.size), "metrics": dict(score(rows))})
            except UndefinedMetricError as exc:
                entries.append({"value": value, "n": int(rows.size), "metrics": None, "undefined": str(exc)})
        report[column] = entries
    return report


def slice_plot_rows(report: Mapping[str, Sequence[Mapping[str, object]]], metric: str) -> list[dict[str, object]]:
    """`{"slice": "Home=rent", "metric": "auroc", "value": 0.81, "n": 120}` rows for a bar chart (fixed field
    names, so one DVC plot definition serves every task); undefined values are left out."""
    rows: list[dict[str, object]] = []
    for column, entries in report.items():
        for entry in entries:
            metrics = entry.get("metrics")
            if isinstance(metrics, Mapping) and metric in metrics:
                slice_name = f"{column}={entry['value']}"
                rows.append({"slice": slice_name, "metric": metric, "value": metrics[metric], "n": entry["n"]})
    return rows
