"""The target column: which rows count, labels <-> indices, and the errors that say what to change."""

from __future__ import annotations

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict

from tabml.core.errors import StageError
from tabml.core.params import DataParams, TaskType

MIN_ROWS_PER_CLASS = 3


class TargetEncoding(BaseModel):
    """binary labels are [negative, positive]; multiclass labels are sorted; regression is standardised."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    task: TaskType
    column: str
    labels: list[str] | None
    mean: float = 0.0
    std: float = 1.0


def label_text(values: pd.Series) -> pd.Series:
    """Target values as the text a user writes in params.yaml (`1`, not `1.0`; `True`, `yes`)."""
    if pd.api.types.is_float_dtype(values) and values.dropna().mod(1).eq(0).all():
        return values.astype("Int64").astype("string")
    return values.astype("string").str.strip()


def present_rows(target: pd.Series) -> np.ndarray:
    """Rows whose target is known (missing targets are dropped and counted)."""
    text = target.astype("string").str.strip()
    return (target.notna() & text.ne("")).to_numpy(dtype=bool)


def resolve_positive(positive: str | None, values: list[str], data: DataParams) -> str:
    if positive is None:
        raise StageError(
            f"data.positive_class is not set; the target {data.target!r} holds {values}",
            "params.yaml",
            "set data.positive_class to the label of the event you predict (as written in the file)",
        )
    if positive in values:
        return positive
    folded = [v for v in values if v.lower() == positive.lower()]
    if len(folded) == 1:
        return folded[0]
    raise StageError(
        f"data.positive_class {positive!r} never occurs in target {data.target!r}; its values are {values}",
        "params.yaml",
        "set data.positive_class to one of those values",
    )


def fit_target(target: pd.Series, data: DataParams) -> TargetEncoding:
    """Check the target suits the task and learn its encoding (rows with a missing target already removed)."""
    if data.task == "regression":
        numbers = pd.to_numeric(target, errors="coerce")
        bad = target[numbers.isna()]
        if len(bad):
            raise StageError(
                f"regression target {data.target!r} is not numeric: {len(bad):,} values such as "
                f"{list(bad.astype(str).unique()[:5])}",
                data.path,
                "fix those values, or set data.task to binary or multiclass if it is a label",
            )
        std = float(numbers.std()) or 1.0
        return TargetEncoding(task="regression", column=data.target, labels=None, mean=float(numbers.mean()), std=std)
    counts = label_text(target).value_counts()
    values = sorted(map(str, counts.index))
    if len(values) < 2:
        raise StageError(
            f"target {data.target!r} has a single class {values}: there is nothing to learn",
            data.path,
            "check the export (a filter may have removed the other class) or choose another target",
        )
    rare = {str(k): int(v) for k, v in counts.items() if v < MIN_ROWS_PER_CLASS}
    if rare:
        raise StageError(
            f"target {data.target!r} classes with fewer than {MIN_ROWS_PER_CLASS} rows: {rare}",
            data.path,
            "merge or drop those rows before training; a class needs rows in train, validation and test",
        )
    if data.task == "binary":
        if len(values) != 2:
            raise StageError(
                f"binary task but target {data.target!r} has {len(values)} classes: {values[:20]}",
                "params.yaml",
                "set data.task: multiclass, or map the labels to two classes",
            )
        positive = resolve_positive(data.positive_class, values, data)
        negative = next(v for v in values if v != positive)
        return TargetEncoding(task="binary", column=data.target, labels=[negative, positive])
    return TargetEncoding(task="multiclass", column=data.target, labels=values)


def encode_target(target: pd.Series, encoding: TargetEncoding) -> np.ndarray:
    """Class indices (int64) for classification, float32 values for regression."""
    if encoding.task == "regression":
        return pd.to_numeric(target, errors="coerce").to_numpy(dtype=np.float32)
    assert encoding.labels is not None
    return level_codes(label_text(target), encoding.labels)


def level_codes(text: pd.Series, levels: list[str]) -> np.ndarray:
    """Position of each value in `levels` (labels, or a categorical's kept levels); -1 for missing or unknown."""
    return pd.Index(levels).get_indexer(text.astype(object).where(text.notna(), None)).astype(np.int64)
