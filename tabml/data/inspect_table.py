"""First look at a new table: print the `data:` section of params.yaml the pipeline would use for it.

python -m tabml.data.inspect_table path/to/table.csv [--target COLUMN]
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from tabml.core.errors import StageError
from tabml.core.params import PreprocessParams, load_params
from tabml.data.column_types import infer_column
from tabml.data.tables import read_table
from tabml.data.target import label_text

TARGET_NAMES = re.compile(r"^(target|label|class|y|outcome|status|churn|default|fraud|response|result)$", re.I)
ID_NAMES = re.compile(r"(^|[^a-z])(id|uuid|guid|key)([^a-z]|$)|id$", re.I)
LEAK_SEPARATION = 0.98


@dataclass
class Suggestion:
    name: str
    target: str
    task: str
    positive_class: str | None
    id_column: str | None
    drop_columns: list[str] = field(default_factory=list)
    notes: dict[str, str] = field(default_factory=dict)


def dataset_name(path: Path) -> str:
    stem = re.sub(r"[^a-z0-9]+", "-", path.name.split(".")[0].lower()).strip("-")
    return stem or "dataset"


def guess_target(frame: pd.DataFrame) -> str:
    named = [c for c in frame.columns if TARGET_NAMES.match(str(c))]
    return str(named[0] if named else frame.columns[-1])


def guess_task(target: pd.Series) -> str:
    values = target.dropna()
    distinct = values.nunique()
    if distinct == 2:
        return "binary"
    if pd.api.types.is_numeric_dtype(values) and distinct > 20:
        return "regression"
    return "multiclass"


def guess_id(frame: pd.DataFrame, target: str) -> str | None:
    for column in frame.columns:
        values = frame[column]
        if column != target and ID_NAMES.search(str(column)) and values.nunique() >= 0.98 * len(values.dropna()):
            return str(column)
    return None


def regression_fit(feature: pd.Series, y: np.ndarray) -> float:
    """How well one column alone predicts a numeric target: |Spearman rho| for numbers, eta² (R² of group means)
    for categories; 1.0 = perfectly."""
    target = pd.Series(y, index=feature.index, dtype="float64")
    numbers = pd.to_numeric(feature, errors="coerce") if not isinstance(feature.dtype, pd.CategoricalDtype) else None
    if numbers is not None and numbers.notna().mean() > 0.5:
        rho = numbers.corr(target, method="spearman")
        return 0.0 if pd.isna(rho) else float(abs(rho))
    groups = feature.astype("string").fillna("<missing>")
    if groups.nunique() > len(groups) / 5:
        return 0.0  # near-unique text: group means would fit by construction
    means = target.groupby(groups).transform("mean")
    total = float(((target - target.mean()) ** 2).sum())
    return 0.0 if total == 0 else float(1 - ((target - means) ** 2).sum() / total)


def separation(feature: pd.Series, y: np.ndarray) -> float:
    """How well one column alone predicts the class (1.0 = perfectly): the share of rows in its purest groups."""
    frame = pd.DataFrame({"x": feature.astype("string").fillna("<missing>"), "y": y})
    if frame["x"].nunique() > len(frame) / 5:  # numeric or near-unique: use rank order instead of groups
        ranks = pd.to_numeric(feature, errors="coerce")
        if ranks.isna().mean() > 0.5:
            return 0.0
        from sklearn.metrics import roc_auc_score

        if len(np.unique(y)) != 2:
            return 0.0
        auc = roc_auc_score(y, ranks.fillna(ranks.median()))
        return float(max(auc, 1 - auc))
    purity = frame.groupby("x")["y"].agg(lambda s: s.value_counts().iloc[0]).sum()
    majority = frame["y"].value_counts().iloc[0]
    return float((purity - majority) / max(1, len(frame) - majority))


def suggest(frame: pd.DataFrame, path: Path, target: str | None, p: PreprocessParams) -> Suggestion:
    target = target or guess_target(frame)
    if target not in frame.columns:
        raise StageError(f"no column {target!r}", path, f"pick --target from {list(frame.columns)}")
    task = guess_task(frame[target])
    labels = label_text(frame[target].dropna())
    positive = str(labels.value_counts().index[-1]) if task == "binary" else None
    out = Suggestion(dataset_name(path), target, task, positive, guess_id(frame, target))
    known = frame[target].notna().to_numpy()
    y = pd.Categorical(labels).codes if task != "regression" else pd.to_numeric(frame.loc[known, target]).to_numpy()
    for column in map(str, frame.columns):
        if column in (target, out.id_column):
            continue
        decision = infer_column(column, frame[column], p)
        out.notes[column] = f"{decision.kind}: {decision.reason}"
        if decision.kind == "drop" and decision.reason.startswith("identifier: a row number"):
            if out.id_column is None:
                out.id_column = column
            else:
                out.drop_columns.append(column)
            continue
        fit = regression_fit if task == "regression" else separation
        if decision.kind != "drop" and fit(frame.loc[known, column], y) >= LEAK_SEPARATION:
            out.drop_columns.append(column)
            out.notes[column] = f"LIKELY LEAK: predicts {target!r} almost perfectly on its own; review before use"
    return out


def render(s: Suggestion, path: Path) -> str:
    data: dict[str, object] = {
        "name": s.name,
        "path": str(path),
        "format": "auto",
        "target": s.target,
        "task": s.task,
        "positive_class": s.positive_class,
        "id_column": s.id_column,
        "drop_columns": s.drop_columns,
        "column_types": {},
    }
    lines = ["# Suggested `data:` section for params.yaml; review the notes, then paste it in.", ""]
    lines += yaml.safe_dump({"data": data}, sort_keys=False).splitlines()
    lines += ["", "# Column decisions (override any with data.column_types):"]
    lines += [f"#   {column}: {note}" for column, note in s.notes.items()]
    if s.task == "binary":
        lines.append(f"# positive_class is the rarer label ({s.positive_class!r}); set it to the event you predict.")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tabml.data.inspect_table", description=__doc__.splitlines()[0])
    parser.add_argument("table", type=Path)
    parser.add_argument("--target", help="target column (default: a column named like a target, else the last)")
    parser.add_argument("--params", type=Path, default=Path("params.yaml"), help="for the preprocess settings")
    args = parser.parse_args(argv)
    try:
        p = load_params(args.params).preprocess
        frame = read_table(args.table)
        print(render(suggest(frame, args.table, args.target, p), args.table))
    except StageError as exc:
        print(f"[inspect] FAILED: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
