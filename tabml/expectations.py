"""Reference profile of a table, the Great Expectations suite built from it, and the checks it yields."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from tabml.env import quiet_telemetry
from tabml.params import DataParams, TaskType, ValidateParams

if TYPE_CHECKING:
    from great_expectations.expectations import Expectation

EXAMPLES = 5  # bad values quoted per failed check
Kind = Literal["numeric", "integer", "boolean", "string", "datetime"]
NUMERIC: tuple[Kind, ...] = ("numeric", "integer")
Severity = Literal["error", "warning"]
Label = bool | int | float | str  # pydantic keeps the first exact match, so `true` stays a bool


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ColumnReference(_Model):
    kind: Kind
    max_null_fraction: float = Field(ge=0, le=1)
    min: int | float | None = None
    max: int | float | None = None
    allowed_values: list[str] | None = None  # absent: not enforced (too many distinct values)


class TargetReference(_Model):
    column: str
    task: TaskType
    classes: list[Label] | None = None  # classification only, as stored in the file


class RowCount(_Model):
    min: int | None = Field(default=None, ge=0)
    max: int | None = Field(default=None, ge=0)


class DerivedFrom(_Model):
    snapshot: str
    rows: int


class Reference(_Model):
    """What `<reference_dir>/<dataset>/expectations.json` holds; users may edit it."""

    format_version: Literal[1] = 1
    dataset: str
    derived_from: DerivedFrom
    row_count: RowCount
    target: TargetReference
    id_column: str | None = None
    columns: dict[str, ColumnReference]

    def to_json_dict(self) -> dict[str, Any]:
        """Plain JSON; per-column keys that do not apply are left out so the file reads easily."""
        out = self.model_dump(mode="json")
        out["columns"] = {c: col.model_dump(mode="json", exclude_none=True) for c, col in self.columns.items()}
        return out


@dataclass(frozen=True)
class Check:
    """One check's outcome, as it appears in the validation report."""

    name: str
    column: str | None
    severity: Severity
    success: bool
    expected: Any
    observed: Any
    message: str


def _q(names: object) -> str:
    return ", ".join(f"'{n}'" for n in names) if isinstance(names, list) else f"'{names}'"


def _plain(value: Any) -> Any:
    """A JSON-safe Python scalar: numpy unwrapped, NaN and ±inf as text (strict JSON has neither)."""
    value = value.item() if isinstance(value, np.generic) else value
    return str(value) if isinstance(value, float) and not math.isfinite(value) else value


def _py(values: pd.Series, limit: int | None = EXAMPLES) -> list[Any]:
    """Distinct values as plain Python scalars, at most `limit` of them."""
    values = values.drop_duplicates()
    return [_plain(v) for v in (values if limit is None else values.head(limit))]


def label(value: object) -> str:
    """A target value as text, so `1`, `1.0`, `True` and `yes` compare with `positive_class`."""
    return str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)


def column_kind(s: pd.Series) -> Kind:
    """The kind of a column as the reference records it."""
    if pd.api.types.is_bool_dtype(s.dtype):
        return "boolean"
    if pd.api.types.is_integer_dtype(s.dtype):
        return "integer"
    if pd.api.types.is_float_dtype(s.dtype):
        return "numeric"
    if pd.api.types.is_datetime64_any_dtype(s.dtype):
        return "datetime"
    values = s.dropna()
    if s.dtype == object and len(values):  # bools or numbers with nulls load as object
        if values.map(lambda v: isinstance(v, bool | np.bool_)).all():
            return "boolean"
        if values.map(lambda v: isinstance(v, int | float | np.number) and not isinstance(v, bool)).all():
            return "numeric"
    return "string"


def _excluded(data: DataParams) -> set[str]:
    return set(data.drop_columns) | {c for c, kind in data.column_types.items() if kind == "drop"}


def _profile(s: pd.Series, kind: Kind, p: ValidateParams, values_checked: bool) -> ColumnReference:
    null_fraction = float(s.isna().mean()) if len(s) else 0.0
    bounds: dict[str, Any] = {}
    if values_checked and kind in NUMERIC:
        values = s.astype("float64")
        finite = values[np.isfinite(values)]
        if len(finite):
            lo, hi = float(finite.min()), float(finite.max())
            widen = p.range_margin * ((hi - lo) or max(abs(hi), 1.0))  # a constant column still gets a margin
            lo, hi = lo - widen, hi + widen
            bounds["min"], bounds["max"] = (math.floor(lo), math.ceil(hi)) if kind == "integer" else (lo, hi)
    elif values_checked and kind == "string":
        distinct = s.dropna().astype(str).unique()
        if len(distinct) <= p.max_categories_checked:
            bounds["allowed_values"] = sorted(distinct.tolist())
    max_null = min(1.0, round(null_fraction + p.max_null_fraction_margin, 6))
    return ColumnReference(kind=kind, max_null_fraction=max_null, **bounds)


def derive_reference(df: pd.DataFrame, data: DataParams, p: ValidateParams, snapshot: str) -> Reference:
    """Profile a snapshot into the reference that later snapshots are checked against."""
    classified = data.task != "regression"
    # ids get no range or set (new ids are always unseen); a class target is checked by `target.classes`
    plain = [c for c in df.columns if c not in _excluded(data)]
    columns = {
        str(c): _profile(df[c], column_kind(df[c]), p, c != data.id_column and not (classified and c == data.target))
        for c in plain
    }
    has_target = classified and data.target in df.columns
    classes = sorted(_py(df[data.target].dropna(), None), key=label) if has_target else None
    return Reference(
        dataset=data.name,
        derived_from=DerivedFrom(snapshot=snapshot, rows=len(df)),
        row_count=RowCount(min=p.min_rows),
        target=TargetReference(column=data.target, task=data.task, classes=classes),
        id_column=data.id_column,
        columns=columns,
    )


def build_expectations(ref: Reference, skip: set[str], min_rows: int) -> list[Expectation]:
    """The GX expectations for a reference; columns in `skip` (missing, or of the wrong kind) get no value checks."""
    quiet_telemetry()
    import great_expectations.expectations as gxe

    out: list[Expectation] = []

    def add(expectation: type[Expectation], check: str, expected: Any, **kwargs: Any) -> None:
        out.append(expectation(meta={"check": check, "expected": expected}, **kwargs))

    names, rows = list(ref.columns), {"min": max(ref.row_count.min or 0, min_rows), "max": ref.row_count.max}
    add(gxe.ExpectTableColumnsToMatchSet, "columns_present", names, column_set=names, exact_match=False)
    add(gxe.ExpectTableRowCountToBeBetween, "row_count", rows, min_value=rows["min"], max_value=rows["max"])
    for name, col in ref.columns.items():
        if name in skip:
            continue
        if col.max_null_fraction < 1:
            limit, mostly = {"max_null_fraction": col.max_null_fraction}, round(1 - col.max_null_fraction, 6)
            add(gxe.ExpectColumnValuesToNotBeNull, "not_null", limit, column=name, mostly=mostly)
        if col.min is not None and col.max is not None:
            bounds = {"min": col.min, "max": col.max}
            add(gxe.ExpectColumnValuesToBeBetween, "range", bounds, column=name, min_value=col.min, max_value=col.max)
        if col.allowed_values is not None:
            values = col.allowed_values
            add(gxe.ExpectColumnValuesToBeInSet, "categories", values, column=name, value_set=values)
    target = ref.target
    if target.classes is not None and target.column in ref.columns and target.column not in skip:
        classes = target.classes
        add(gxe.ExpectColumnValuesToBeInSet, "target_classes", classes, column=target.column, value_set=classes)
    if ref.id_column in ref.columns and ref.id_column not in skip:
        add(gxe.ExpectColumnValuesToBeUnique, "unique_id", "unique", column=ref.id_column)
    return out


def _for_gx(df: pd.DataFrame, ref: Reference) -> pd.DataFrame:
    """String columns as `category`: GX's per-value checks then touch each distinct value once."""
    strings = {c: df[c].astype("category") for c, col in ref.columns.items() if col.kind == "string" and c in df}
    return df.assign(**strings) if strings else df


def run_suite(df: pd.DataFrame, ref: Reference, expectations: list[Expectation]) -> list[Check]:
    """Validate the whole frame in an ephemeral GX context; explain the failures with pandas."""
    quiet_telemetry()
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
    source = context.data_sources.add_pandas("snapshot")
    batch_definition = source.add_dataframe_asset(ref.dataset).add_batch_definition_whole_dataframe("whole_table")
    batch = batch_definition.get_batch(batch_parameters={"dataframe": _for_gx(df, ref)})
    suite = context.suites.add(gx.ExpectationSuite(name=f"{ref.dataset}_reference", expectations=expectations))
    checks = []
    for r in batch.validate(suite, result_format="BOOLEAN_ONLY").results:
        config = r.expectation_config
        assert config is not None and config.meta is not None
        name, expected, column = config.meta["check"], config.meta["expected"], config.kwargs.get("column")
        if r.success:
            checks.append(Check(name, column, "error", True, expected, None, "ok"))
            continue
        errors = [v["exception_message"] for v in (r.exception_info or {}).values() if isinstance(v, dict)]
        observed, message = (
            ({"exception": errors[0]}, f"{name} could not be evaluated: {errors[0]}")
            if errors and errors[0]
            else explain(name, df, column, expected)
        )
        where = f"column {_q(column)}: " if column else ""
        checks.append(Check(name, column, "error", False, expected, observed, where + message))
    return checks


def explain(name: str, df: pd.DataFrame, column: str | None, expected: Any) -> tuple[Any, str]:
    """Observed value and a one-line message for a failed GX expectation, computed with pandas."""
    if name == "columns_present":
        missing, extra = [c for c in expected if c not in df.columns], [c for c in df.columns if c not in expected]
        hint = f" (renamed? the snapshot has new column(s) {_q(extra)})" if extra else ""
        return {"missing": missing}, f"missing column(s) {_q(missing)}: in the reference, not in the snapshot{hint}"
    if name == "row_count":
        return len(df), f"{len(df)} rows, expected at least {expected['min']} and at most {expected['max'] or 'any'}"
    s = df[column]
    observed: dict[str, Any]
    if name == "not_null":
        nulls = int(s.isna().sum())
        observed = {"null_fraction": round(nulls / max(len(s), 1), 6), "null_count": nulls}
        limit = f"{expected['max_null_fraction']:.1%}"
        return observed, f"{observed['null_fraction']:.1%} nulls ({nulls} rows), the reference allows at most {limit}"
    if name == "range":
        values = pd.to_numeric(s, errors="coerce")
        bad = values[(values < expected["min"]) | (values > expected["max"])]
        lo, hi = (_plain(v) for v in values.agg(["min", "max"]).tolist())
        observed = {"min": lo, "max": hi, "unexpected_count": len(bad), "examples": _py(bad)}
        return observed, f"{len(bad)} value(s) outside [{expected['min']}, {expected['max']}], e.g. {_py(bad)}"
    if name in ("categories", "target_classes", "unique_id"):
        bad = s[s.notna() & s.duplicated(keep=False)] if name == "unique_id" else s[s.notna() & ~s.isin(expected)]
        observed = {"unexpected_count": len(bad), "examples": _py(bad)}
        what = {"categories": "unseen categories", "target_classes": "unseen target classes"}.get(name, "duplicate ids")
        allowed = "" if name == "unique_id" else f"; the reference allows {_q(expected)}"
        return observed, f"{len(bad)} row(s) with {what}, e.g. {_q(_py(bad))}{allowed}"
    return None, f"{name} failed"


def _error(name: str, column: str, ok: bool, expected: Any, observed: Any, message: str) -> Check:
    return Check(name, column, "error", ok, expected, observed, "ok" if ok else message)


def _kind_check(column: str, s: pd.Series, expected: Kind) -> Check:
    observed: str = column_kind(s)
    values = pd.to_numeric(s, errors="coerce").dropna() if observed == "numeric" else None
    ok = (
        observed == expected
        or s.notna().sum() == 0
        or (expected == "numeric" and observed == "integer")
        or (expected == "integer" and values is not None and bool((values[np.isfinite(values)] % 1 == 0).all()))
    )  # ints with nulls load as floats
    message = f"column {_q(column)}: type changed, the reference says {expected}, the snapshot holds {observed}"
    text = s.dropna().astype(str).str.strip() if not ok and expected in NUMERIC and observed == "string" else None
    parsed = pd.to_numeric(text, errors="coerce") if text is not None else None
    if text is not None and parsed is not None and parsed.notna().any():
        numeric, other = text[parsed.notna()], text[parsed.isna()]
        observed = "numbers stored as strings"
        message = (
            f"column {_q(column)}: numbers stored as strings ({len(numeric)} of {len(text)} values are numeric "
            f"text, e.g. {_q(_py(numeric))}); the reference says {expected}"
        ) + (f"; non-numeric values, e.g. {_q(_py(other))}" if len(other) else "")
    return _error("type", column, ok, expected, observed, message)


def structure_checks(df: pd.DataFrame, ref: Reference, data: DataParams) -> list[Check]:
    """Column kinds (error) and columns the reference does not know (warning)."""
    checks = [_kind_check(c, df[c], col.kind) for c, col in ref.columns.items() if c in df.columns]
    for c in df.columns:
        if c not in ref.columns and c not in _excluded(data):
            message = f"column {_q(c)} is not in the reference (a new column); it is not checked"
            checks.append(Check("extra_column", str(c), "warning", False, None, column_kind(df[c]), message))
    return checks


def finite_checks(df: pd.DataFrame, ref: Reference, skip: set[str], nan_counts: dict[str, int]) -> list[Check]:
    """NaN (stored as such in the file, apart from nulls) and ±inf in numeric columns."""
    checks = []
    for c, col in ref.columns.items():
        if col.kind in NUMERIC and c not in skip and c in df.columns:
            values = pd.to_numeric(df[c], errors="coerce").astype("float64")
            inf, nan = int(np.isinf(values).sum()), int(nan_counts.get(c, 0))
            message = f"column {_q(c)}: {nan} NaN and {inf} ±inf value(s) in a numeric column"
            checks.append(_error("finite", c, not inf + nan, "no NaN or ±inf", {"inf": inf, "nan": nan}, message))
    return checks


def target_checks(df: pd.DataFrame, ref: Reference, data: DataParams) -> list[Check]:
    """Target rules GX cannot express: class count, positive class present, numeric regression target."""
    t = data.target
    if t not in df.columns:  # when the reference has it, columns_present already says so
        message = f"target column {_q(t)} is not in the snapshot"
        return [] if t in ref.columns else [_error("target", t, False, "present", "missing", message)]
    s = df[t].dropna()
    if data.task == "regression":
        kind = column_kind(s)
        message = f"target {_q(t)}: regression needs a numeric target, the snapshot holds {kind}"
        return [_error("target", t, kind in NUMERIC, "numeric", kind, message)]
    labels = sorted({label(v) for v in _py(s, None)})
    shown = labels[:20]
    need = "exactly 2 classes" if data.task == "binary" else "at least 2 classes"
    ok = len(labels) == 2 if data.task == "binary" else len(labels) >= 2
    message = f"target {_q(t)}: a {data.task} task needs {need}, found {len(labels)}: {_q(shown)}"
    checks = [_error("target_class_count", t, ok, need, shown, message)]
    if data.task == "binary" and data.positive_class is not None:
        positive = data.positive_class
        message = f"target {_q(t)}: positive_class {_q(positive)} not among {_q(shown)}"
        checks.append(_error("positive_class", t, positive in labels, positive, shown, message))
    return checks


def validate_frame(
    df: pd.DataFrame, ref: Reference, data: DataParams, p: ValidateParams, nan_counts: dict[str, int] | None = None
) -> list[Check]:
    """Every check of a snapshot against its reference: the GX suite plus the pandas-only rules."""
    checks = structure_checks(df, ref, data)
    wrong_kind = {c.column for c in checks if c.name == "type" and not c.success and c.column}
    skip = {c for c in ref.columns if c not in df.columns} | wrong_kind
    checks += run_suite(df, ref, build_expectations(ref, skip, p.min_rows))
    checks += finite_checks(df, ref, skip, nan_counts or {})
    return checks + target_checks(df, ref, data)


def problems(checks: list[Check], severity: Severity) -> list[str]:
    """One readable line per failed check of a severity."""
    return [c.message for c in checks if not c.success and c.severity == severity]
