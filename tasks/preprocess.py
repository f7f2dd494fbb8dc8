"""preprocess: snapshot -> stratified train/val/test arrays + preprocessing state (JSON) + decision report."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import cast

import numpy as np
import pandas as pd

from tabml.core.errors import StageError
from tabml.core.params import DataParams, Params, PreprocessParams
from tabml.core.stage import stage_main
from tabml.data.column_types import ColumnDecision, infer_column_kinds
from tabml.data.preprocessing import PreprocessState, SplitArrays, fit_state, numeric_width, transform
from tabml.data.processed import REPORT_FILE, write_processed
from tabml.data.snapshot import read_accepted
from tabml.data.target import encode_target, fit_target, present_rows


def split_indices(y: np.ndarray, stratify: bool, p: PreprocessParams) -> dict[str, np.ndarray]:
    """Deterministic train/val/test row positions; stratified on the class for classification."""
    from sklearn.model_selection import train_test_split

    rows = np.arange(len(y))
    strata = y if stratify else None
    rest, test = train_test_split(rows, test_size=p.test_size, random_state=p.seed, stratify=strata)
    rest_strata = y[rest] if stratify else None
    val_share = p.val_size / (1 - p.test_size)
    train, val = train_test_split(rest, test_size=val_share, random_state=p.seed, stratify=rest_strata)
    return {"train": np.sort(train), "val": np.sort(val), "test": np.sort(test)}


def class_counts(y: np.ndarray, labels: list[str] | None) -> dict[str, int] | None:
    if labels is None:
        return None
    counts = np.bincount(y, minlength=len(labels))
    return {label: int(n) for label, n in zip(labels, counts, strict=True)}


def build_report(
    decisions: list[ColumnDecision],
    state: PreprocessState,
    rows_in: int,
    dropped_target: int,
    splits: dict[str, np.ndarray],
    y: np.ndarray,
) -> dict[str, object]:
    return {
        "rows_in": rows_in,
        "rows_dropped_missing_target": dropped_target,
        "task": state.task,
        "labels": state.labels,
        "split_rows": {name: int(idx.size) for name, idx in splits.items()},
        "class_counts": {name: class_counts(y[idx], state.labels) for name, idx in splits.items()},
        "features": {"numeric_inputs": numeric_width(state), "categorical_inputs": len(state.categorical)},
        "columns": [{"name": d.name, "kind": d.kind, "reason": d.reason} for d in decisions],
        "categorical_levels": {c.name: len(c.levels) for c in state.categorical},
    }


def check_features(decisions: list[ColumnDecision], data: DataParams) -> None:
    if all(d.kind == "drop" for d in decisions):
        reasons = "; ".join(f"{d.name}: {d.reason}" for d in decisions)
        raise StageError(
            f"no usable feature columns are left ({reasons})",
            data.path,
            "remove columns from data.drop_columns or set data.column_types for the columns to keep",
        )


def preprocess_frame(
    frame: pd.DataFrame,
    data: DataParams,
    p: PreprocessParams,
) -> tuple[dict[str, SplitArrays], PreprocessState, dict[str, np.ndarray], dict[str, object]]:
    """Pure: table -> (arrays per split, fitted state, split row positions, report)."""
    keep = present_rows(frame[data.target])
    table = frame if keep.all() else frame.loc[keep].reset_index(drop=True)  # no copy when every target is known
    decisions = infer_column_kinds(table, data, p)
    check_features(decisions, data)
    encoding = fit_target(table[data.target], data)
    y = encode_target(table[data.target], encoding)
    splits = split_indices(y, data.task != "regression", p)
    state = fit_state(table.iloc[splits["train"]], decisions, encoding, p, data.id_column)
    arrays = {name: transform(table.iloc[idx], state, y[idx]) for name, idx in splits.items()}
    report = build_report(decisions, state, len(frame), int((~keep).sum()), splits, y)
    kept_rows = np.flatnonzero(keep)
    positions = {name: kept_rows[idx] for name, idx in splits.items()}
    return arrays, state, positions, report


def run(params: Params) -> list[Path]:
    data, p = params.data, params.preprocess
    frame = read_accepted(p.input, text_as_categories=True)
    arrays, state, positions, report = preprocess_frame(frame, data, p)
    write_processed(p.out_dir, arrays, positions, state, report)
    columns = cast(list[dict[str, object]], report["columns"])
    dropped = [c for c in columns if c["kind"] == "drop"]
    print(
        f"[preprocess] {report['split_rows']} rows; {report['features']}; "
        f"dropped {len(dropped)} columns, {report['rows_dropped_missing_target']} rows without a target "
        f"(details: {p.out_dir / REPORT_FILE})"
    )
    return [p.out_dir]


def main(argv: Sequence[str] | None = None) -> int:
    return stage_main("preprocess", run, argv)


if __name__ == "__main__":
    sys.exit(main())
