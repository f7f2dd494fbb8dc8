"""The Great Expectations suite built from a reference, the pandas-only rules, and the checks they yield."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd

from tabml.core.env import quiet_telemetry
from tabml.core.params import DataParams, ValidateParams
from tabml.validation.drift import ColumnDrift, assess_drift
from tabml.validation.reference import NUMERIC, Kind, Reference, column_kind, distinct, excluded_columns, label, plain

if TYPE_CHECKING:
    from great_expectations.expectations import Expectation

Severity = Literal["error", "warning"]


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


@dataclass(frozen=True)
class Validation:
    """Every check of a snapshot, and the per-column drift behind the `drift` checks."""

    checks: list[Check]
    drift: list[ColumnDrift]

    def problems(self, severity: Severity) -> list[str]:
        return problems(self.checks, severity)


def _q(names: object) -> str:
    return ", ".join(f"'{n}'" for n in names) if isinstance(names, list) else f"'{names}'"


def expected(ref: Reference, check: str, column: str | None, min_rows: int) -> Any:
    """What a check of the GX suite expects, read from the reference: for the report and the failure message."""
    if check == "columns_present":
        return list(ref.columns)
    if check == "row_count":
        return {"min": max(ref.row_count.min or 0, min_rows), "max": ref.row_count.max}
    col = ref.columns[str(column)]
    return {
        "not_null": {"max_null_fraction": col.max_null_fraction},
        "range": {"min": col.min, "max": col.max},
        "categories": col.allowed_values,
        "target_classes": ref.target.classes,
    }.get(check, "unique")


def build_expectations(
    ref: Reference, skip: set[str], min_rows: int, empty: frozenset[str] = frozenset()
) -> list[Expectation]:
    """The GX expectations for a reference; columns in `skip` (missing, or of the wrong kind) get no checks,
    columns in `empty` (no value at all: GX's min of nothing fails) only the null check.

    Aggregate expectations wherever GX has them (quantiles 0 and 1 for a range, distinct values in a set,
    proportion of unique values): GX's per-value ("map") expectations copy the whole table once per column.
    `meta` names the check only: GX rebuilds each expectation's configuration, meta included, dozens of times.
    """
    quiet_telemetry()
    import great_expectations.expectations as gxe

    out: list[Expectation] = []

    def add(expectation: type[Expectation], check: str, **kwargs: Any) -> None:
        out.append(expectation(meta={"check": check}, **kwargs))

    rows = expected(ref, "row_count", None, min_rows)
    add(gxe.ExpectTableColumnsToMatchSet, "columns_present", column_set=list(ref.columns), exact_match=False)
    add(gxe.ExpectTableRowCountToBeBetween, "row_count", min_value=rows["min"], max_value=rows["max"])
    for name, col in ref.columns.items():
        if name in skip:
            continue
        if col.max_null_fraction < 1:
            add(gxe.ExpectColumnValuesToNotBeNull, "not_null", column=name, mostly=round(1 - col.max_null_fraction, 6))
        if name in empty:
            continue
        if col.min is not None and col.max is not None:  # quantile 0 >= min and quantile 1 <= max: one aggregate
            ranges = {"quantiles": [0.0, 1.0], "value_ranges": [[col.min, None], [None, col.max]]}
            add(gxe.ExpectColumnQuantileValuesToBeBetween, "range", column=name, quantile_ranges=ranges)
        if col.allowed_values:
            add(gxe.ExpectColumnDistinctValuesToBeInSet, "categories", column=name, value_set=col.allowed_values)
    target = ref.target
    if target.classes and target.column in ref.columns and target.column not in skip | empty:
        add(gxe.ExpectColumnDistinctValuesToBeInSet, "target_classes", column=target.column, value_set=target.classes)
    if ref.id_column in ref.columns and ref.id_column not in skip | empty:
        add(gxe.ExpectColumnProportionOfUniqueValuesToBeBetween, "unique_id", column=ref.id_column, min_value=1)
    return out


def _for_gx(df: pd.DataFrame, ref: Reference) -> pd.DataFrame:
    """String columns as `category` (tasks.validate reads them so already): GX then touches each value once."""
    strings = {
        c: df[c].astype("category")
        for c, col in ref.columns.items()
        if col.kind == "string" and c in df and not isinstance(df[c].dtype, pd.CategoricalDtype)
    }
    return df.assign(**strings) if strings else df


def run_suite(df: pd.DataFrame, ref: Reference, expectations: list[Expectation], min_rows: int) -> list[Check]:
    """Validate the whole frame in an ephemeral GX context; explain the failures with pandas."""
    quiet_telemetry()
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig
    from great_expectations.execution_engine import pandas_execution_engine

    # The validator `Batch.validate` builds internally, built here from the batch definition: that way GX
    # loads the frame once, not once for `get_batch` and again for `validate`.
    from great_expectations.validator.v1_validator import Validator

    # GX hashes every frame under 1 GB into a batch marker (a quarter of its time on 1M rows); the snapshot's
    # md5 is already in dvc.lock and the lineage record, so frames are not hashed again.
    pandas_execution_engine.HASH_THRESHOLD = 0
    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
    source = context.data_sources.add_pandas("snapshot")
    batch_definition = source.add_dataframe_asset(ref.dataset).add_batch_definition_whole_dataframe("whole_table")
    suite = gx.ExpectationSuite(name=f"{ref.dataset}_reference", expectations=expectations)
    validator = Validator(batch_definition, "BOOLEAN_ONLY", batch_parameters={"dataframe": _for_gx(df, ref)})
    checks = []
    for r in validator.validate_expectation_suite(suite).results:
        config = r.expectation_config
        assert config is not None and config.meta is not None
        name, column = config.meta["check"], config.kwargs.get("column")
        expects = expected(ref, name, column, min_rows)
        if r.success:
            checks.append(Check(name, column, "error", True, expects, None, "ok"))
            continue
        errors = [v["exception_message"] for v in (r.exception_info or {}).values() if isinstance(v, dict)]
        observed, message = (
            ({"exception": errors[0]}, f"{name} could not be evaluated: {errors[0]}")
            if errors and errors[0]
            else explain(name, df, column, expects)
        )
        where = f"column {_q(column)}: " if column else ""
        checks.append(Check(name, column, "error", False, expects, observed, where + message))
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
        lo, hi = (plain(v) for v in values.agg(["min", "max"]).tolist())
        observed = {"min": lo, "max": hi, "unexpected_count": len(bad), "examples": distinct(bad)}
        return observed, f"{len(bad)} value(s) outside [{expected['min']}, {expected['max']}], e.g. {distinct(bad)}"
    if name in ("categories", "target_classes", "unique_id"):
        bad = s[s.notna() & s.duplicated(keep=False)] if name == "unique_id" else s[s.notna() & ~s.isin(expected)]
        observed = {"unexpected_count": len(bad), "examples": distinct(bad)}
        what = {"categories": "unseen categories", "target_classes": "unseen target classes"}.get(name, "duplicate ids")
        allowed = "" if name == "unique_id" else f"; the reference allows {_q(expected)}"
        return observed, f"{len(bad)} row(s) with {what}, e.g. {_q(distinct(bad))}{allowed}"
    return None, f"{name} failed"


def _error(name: str, column: str, ok: bool, expected: Any, observed: Any, message: str) -> Check:
    return Check(name, column, "error", ok, expected, observed, "ok" if ok else message)


def _kind_check(column: str, s: pd.Series, expected: Kind) -> Check:
    observed: str = column_kind(s)

    def whole_numbers() -> bool:  # ints with nulls load as floats
        values = pd.to_numeric(s, errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
        return bool((values[np.isfinite(values)] % 1 == 0).all())

    ok = (
        observed == expected
        or (expected == "numeric" and observed == "integer")
        or (expected == "integer" and observed == "numeric" and whole_numbers())
        or s.notna().sum() == 0
    )
    message = f"column {_q(column)}: type changed, the reference says {expected}, the snapshot holds {observed}"
    text = s.dropna().astype(str).str.strip() if not ok and expected in NUMERIC and observed == "string" else None
    parsed = pd.to_numeric(text, errors="coerce") if text is not None else None
    if text is not None and parsed is not None and parsed.notna().any():
        numeric, other = text[parsed.notna()], text[parsed.isna()]
        observed = "numbers stored as strings"
        message = (
            f"column {_q(column)}: numbers stored as strings ({len(numeric)} of {len(text)} values are numeric "
            f"text, e.g. {_q(distinct(numeric))}); the reference says {expected}"
        ) + (f"; non-numeric values, e.g. {_q(distinct(other))}" if len(other) else "")
    return _error("type", column, ok, expected, observed, message)


def structure_checks(df: pd.DataFrame, ref: Reference, data: DataParams) -> list[Check]:
    """Column kinds (error) and columns the reference does not know (warning)."""
    checks = [_kind_check(c, df[c], col.kind) for c, col in ref.columns.items() if c in df.columns]
    for c in df.columns:
        if c not in ref.columns and c not in excluded_columns(data):
            message = f"column {_q(c)} is not in the reference (a new column); it is not checked"
            checks.append(Check("extra_column", str(c), "warning", False, None, column_kind(df[c]), message))
    return checks


def finite_checks(df: pd.DataFrame, ref: Reference, skip: set[str], nan_counts: dict[str, int]) -> list[Check]:
    """NaN (stored as such in the file, apart from nulls) and ±inf in numeric columns."""
    checks = []
    for c, col in ref.columns.items():
        if col.kind in NUMERIC and c not in skip and c in df.columns:
            values = df[c].to_numpy(dtype="float64", na_value=np.nan)  # the kind check passed: numbers or nulls
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
    labels = sorted({label(v) for v in distinct(s, None)})
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


def drift_checks(drift: list[ColumnDrift]) -> list[Check]:
    """One check per assessed column: an error when its drift blocks, a warning when it only warns."""
    checks = []
    for d in drift:
        if d.psi is None:
            continue
        severity: Severity = "error" if d.action == "block" else "warning"
        bin_, was, now = max(zip(d.bins, d.reference, d.current, strict=True), key=lambda b: abs(b[2] - b[1]))
        message = (
            f"column {_q(d.column)}: distribution shifted, PSI {d.psi:.3f} > {d.threshold} "
            f"(bin {bin_!r} moved most: {was:.1%} of values in the reference, {now:.1%} now)"
        )
        message = message if d.drifted else "ok"
        checks.append(
            Check("drift", d.column, severity, not d.drifted, {"max_psi": d.threshold}, {"psi": d.psi}, message)
        )
    return checks


def validate_frame(
    df: pd.DataFrame, ref: Reference, data: DataParams, p: ValidateParams, nan_counts: dict[str, int] | None = None
) -> Validation:
    """Every check of a snapshot against its reference: the GX suite, the pandas-only rules and drift."""
    checks = structure_checks(df, ref, data)
    wrong_kind = {c.column for c in checks if c.name == "type" and not c.success and c.column}
    skip = {c for c in ref.columns if c not in df.columns} | wrong_kind
    empty = frozenset(c for c in ref.columns if c in df.columns and c not in skip and not df[c].notna().any())
    checks += run_suite(df, ref, build_expectations(ref, skip, p.min_rows, empty), p.min_rows)
    checks += finite_checks(df, ref, skip, nan_counts or {})
    checks += target_checks(df, ref, data)
    profiles = {c: prof for c, prof in ref.profiles().items() if c not in skip}
    drift = assess_drift(df, profiles, p.drift, ref.derived_from.rows)
    return Validation(checks + drift_checks(drift), drift)


def problems(checks: list[Check], severity: Severity) -> list[str]:
    """One readable line per failed check of a severity."""
    return [c.message for c in checks if not c.success and c.severity == severity]
