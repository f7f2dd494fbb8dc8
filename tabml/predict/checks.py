"""What a file sent for scoring must satisfy: the model's input schema, and the same value checks as a training
batch against the reference the model was trained under (types, categorical levels, ranges, nulls).

Missing columns always refuse; each other check refuses or warns as `predict.checks` says, naming the rows
(1 = the first data row of the file). Packages registered before references were packaged get the schema only.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from tabml.core.errors import StageError
from tabml.core.params import PredictParams
from tabml.data.preprocessing import as_float, datetime_part
from tabml.registry.package import INPUT_SCHEMA_FILE, Package
from tabml.validation.reference import NUMERIC, Reference

SHOWN_BAD_VALUES = 5
SHOWN_ROWS = 10
CheckName = Literal["types", "levels", "ranges", "nulls"]


@dataclass(frozen=True)
class InputProblem:
    """One failed check of one column: which rows (0-based positions) and what to say."""

    check: CheckName
    column: str
    rows: np.ndarray
    message: str


def row_numbers(rows: np.ndarray) -> str:
    """`rows 3, 8, 11 (+5 more)`, counting the first data row of the file as 1."""
    shown = ", ".join(str(int(r) + 1) for r in rows[:SHOWN_ROWS])
    more = f" (+{len(rows) - SHOWN_ROWS} more)" if len(rows) > SHOWN_ROWS else ""
    return f"row{'s' if len(rows) > 1 else ''} {shown}{more}"


def missing_columns(frame: pd.DataFrame, columns: list[dict[str, str]]) -> list[str]:
    return [c["name"] for c in columns if c["name"] not in frame.columns]


def type_problems(frame: pd.DataFrame, columns: list[dict[str, str]]) -> list[InputProblem]:
    """Numeric and date inputs whose values do not parse as such."""
    problems = []
    for column in columns:
        name, kind = column["name"], column["kind"]
        if name not in frame.columns or kind not in ("numeric", "datetime"):
            continue
        values = frame[name]
        parsed = as_float(values) if kind == "numeric" else datetime_part(values, "epoch_days")
        bad = values.notna().to_numpy() & ~np.isfinite(parsed)
        if bad.any():  # blank text is missing, not a bad value (looked at in the few rows that did not parse)
            rows = np.flatnonzero(bad)
            bad[rows] = values.iloc[rows].astype("string").str.strip().ne("").to_numpy(dtype=bool)
        if bad.any():
            rows = np.flatnonzero(bad)
            examples = list(values.iloc[rows].astype(str).unique()[:SHOWN_BAD_VALUES])
            message = f"column {name!r} should be {kind} but {len(rows)} value(s) are not, e.g. {examples}"
            problems.append(InputProblem("types", name, rows, f"{message} ({row_numbers(rows)})"))
    return problems


def check_output(output: Path, protected: list[Path]) -> None:
    """Refuse an output inside the registry, the references or DVC's own folder (they are records, not scratch)."""
    target = output.resolve()
    for folder in protected:
        if target.is_relative_to(folder.resolve()):
            raise StageError(
                f"refusing to write predictions inside {folder}", output, "write them somewhere else, e.g. scored/"
            )
    if ".dvc" in target.parts:
        raise StageError(
            "refusing to write predictions inside .dvc/", output, "write them somewhere else, e.g. scored/"
        )


def level_problem(name: str, values: pd.Series, allowed: list[str]) -> InputProblem | None:
    """Category levels the model never saw; levels that differ from a known one only in case are named so."""
    text = values.astype("string").str.strip()
    unseen = (values.notna() & ~text.isin(allowed)).to_numpy(dtype=bool)
    if not unseen.any():
        return None
    rows = np.flatnonzero(unseen)
    found = list(text.iloc[rows].unique()[:SHOWN_BAD_VALUES])
    by_case = {a.lower(): a for a in allowed}
    recased = {v: by_case[v.lower()] for v in found if v.lower() in by_case}
    hint = f"; differ only in case from {sorted(set(recased.values()))}" if recased else ""
    message = (
        f"column {name!r}: {len(rows)} value(s) the model never saw, e.g. {found}{hint}; "
        f"known: {allowed[: SHOWN_BAD_VALUES * 2]} ({row_numbers(rows)})"
    )
    return InputProblem("levels", name, rows, message)


def reference_problems(frame: pd.DataFrame, ref: Reference, inputs: set[str]) -> list[InputProblem]:
    """Levels, ranges and null shares of the model's inputs against the reference."""
    problems = []
    for name, column in ref.columns.items():
        if name not in inputs or name not in frame.columns:
            continue
        values = frame[name]
        if column.allowed_values is not None:
            found = level_problem(name, values, column.allowed_values)
            problems += [found] if found is not None else []
        if column.kind in NUMERIC and column.min is not None and column.max is not None:
            numbers = as_float(values)
            outside = np.isfinite(numbers) & ((numbers < column.min) | (numbers > column.max))
            if outside.any():
                rows = np.flatnonzero(outside)
                examples = sorted({float(v) for v in numbers[rows][:SHOWN_BAD_VALUES]})
                message = (
                    f"column {name!r}: {len(rows)} value(s) outside the reference range "
                    f"[{column.min}, {column.max}], e.g. {examples} ({row_numbers(rows)})"
                )
                problems.append(InputProblem("ranges", name, rows, message))
        nulls = values.isna().to_numpy()
        if len(values) and nulls.mean() > column.max_null_fraction:
            rows = np.flatnonzero(nulls)
            message = (
                f"column {name!r}: {nulls.mean():.1%} missing, the reference allows at most "
                f"{column.max_null_fraction:.1%} ({row_numbers(rows)})"
            )
            problems.append(InputProblem("nulls", name, rows, message))
    return problems


def check_input(
    frame: pd.DataFrame, package: Package, source: Path, ref: Reference | None, policy: PredictParams
) -> list[InputProblem]:
    """Refuse what the policy refuses (nothing is written then); return every problem, the warned ones too."""
    schema = package.document(INPUT_SCHEMA_FILE)
    expected = ", ".join(f"{c['name']} ({c['kind']})" for c in schema["columns"])
    fits = f"does not fit {package.name} v{package.entry.version}"
    missing = missing_columns(frame, schema["columns"])
    if missing:
        raise StageError(
            f"{fits}: missing columns {missing}", source, f"send the columns the model was trained on: {expected}"
        )
    problems = type_problems(frame, schema["columns"])
    inputs = {c["name"] for c in schema["columns"]}
    problems += reference_problems(frame, ref, inputs) if ref is not None else []
    refused = [p for p in problems if getattr(policy.checks, p.check) == "refuse"]
    if refused:
        checks = sorted({p.check for p in refused})
        raise StageError(
            f"{fits}: " + "; ".join(p.message for p in refused),
            source,
            f"fix those rows, or set predict.checks.{checks[0]}: warn to score them anyway "
            f"(with predict.status_column to flag them); columns: {expected}",
        )
    return problems


def row_status(rows: int, problems: list[InputProblem], start: int = 0) -> pd.Series:
    """Per row of the `rows` from position `start`: `ok`, or the checks it failed (`levels:Home; ranges:Income`)."""
    status = [[] for _ in range(rows)]  # type: list[list[str]]
    for problem in problems:
        inside = problem.rows[(problem.rows >= start) & (problem.rows < start + rows)]
        for r in inside:
            status[int(r) - start].append(f"{problem.check}:{problem.column}")
    return pd.Series(["; ".join(s) if s else "ok" for s in status], dtype="object")
