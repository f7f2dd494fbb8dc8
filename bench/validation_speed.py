"""Validation speed: the validate stage's checks against the same checks in plain vectorised pandas.

One frame of 1,000,000 rows x 20 columns (id, 8 float, 4 integer, 5 text, 1 boolean, a binary target), written
to Parquet and read back with the stage's own reader (text columns as `category`), so both sides see exactly
what the stage sees. The reference is derived from another sample of the same distribution, as from an earlier
accepted snapshot. Rows printed, each as a median over the repeats, interleaved so machine noise hits both:

- validation: `tabml.expectations.validate_frame` (GX suite + pandas-only rules + drift) vs `pandas_validation`
  (every one of those checks in pandas; drift through the same numpy code, so it costs the same on both sides)
- GX suite only: `run_suite` vs `pandas_suite`, pandas versions of exactly the suite's expectations
- plain GX suite: the textbook suite (per-value expectations, text as `str`, `get_batch().validate()`, the
  default result format), run once, vs `pandas_suite` on the same `str` frame: the issue's 13x starting point

Importing GX (seconds, once per process) and GX's first-call set-up are excluded from every timing and printed
on their own line. Wall and CPU time are both shown: CPU time (this process only) is the steadier figure on a
shared machine. Peak memory is tracemalloc's peak (numpy and Python allocations) in a separate, untimed pass.

Usage: python -m bench.validation_speed [--rows 1000000] [--repeats 5]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pandas as pd

from tabml.core.env import quiet_telemetry
from tabml.core.params import DataParams, DriftParams, ValidateParams
from tabml.validation.drift import assess_drift
from tabml.validation.reference import NUMERIC, Reference, column_kind, derive_reference

Verdicts = dict[tuple[str, str | None], bool]
T = TypeVar("T")
DATA = DataParams(
    name="bench", path=Path("bench.parquet"), target="label", task="binary", positive_class="bad", id_column="id"
)
LIMITS = ValidateParams(
    report=Path("reports/validation.json"),
    data_docs=Path("reports/validation.html"),
    quarantine_dir=Path("quarantine"),
    reference_dir=Path("references"),
    min_rows=50,
    max_null_fraction_margin=0.1,
    range_margin=0.5,
    max_categories_checked=50,
    drift=DriftParams(threshold=0.25, action="block", bins=10, min_rows=500),
)


def bench_frame(rows: int, seed: int) -> pd.DataFrame:
    """20 columns: id, 8 float (half with 2% nulls), 4 integer, 5 text (3 to 15 levels), 1 boolean, target."""
    rng = np.random.default_rng(seed)
    columns: dict[str, Any] = {"id": np.arange(rows) + seed * rows}
    for i in range(8):
        values = rng.normal(100 * i, 10 + i, rows)
        values[rng.random(rows) < (0.02 if i % 2 else 0)] = np.nan
        columns[f"num_{i}"] = values
    for i in range(4):
        columns[f"int_{i}"] = rng.integers(0, 100 * (i + 1), rows)
    for i in range(5):
        columns[f"text_{i}"] = rng.choice([f"level_{j}" for j in range(3 + 3 * i)], rows)
    columns["flag"] = rng.random(rows) < 0.3
    columns["label"] = np.where(rng.random(rows) < 0.2, "bad", "good")
    return pd.DataFrame(columns)


def pandas_suite(df: pd.DataFrame, ref: Reference, min_rows: int) -> Verdicts:
    """The GX suite's expectations in pandas: columns, row count, nulls, ranges, category sets, classes, ids."""
    ok: Verdicts = {("columns_present", None): set(ref.columns) <= set(df.columns)}
    lowest, highest = max(ref.row_count.min or 0, min_rows), ref.row_count.max
    ok["row_count", None] = len(df) >= lowest and (highest is None or len(df) <= highest)
    for c, col in ref.columns.items():
        s = df[c]
        ok["not_null", c] = bool(s.isna().mean() <= col.max_null_fraction)
        if col.min is not None and col.max is not None:
            values = s.to_numpy(dtype="float64", na_value=np.nan)
            ok["range", c] = not bool(((values < col.min) | (values > col.max)).any())
        if col.allowed_values:
            ok["categories", c] = set(s.dropna().unique()) <= set(col.allowed_values)
    if ref.target.classes:
        ok["target_classes", ref.target.column] = set(df[ref.target.column].dropna().unique()) <= set(
            ref.target.classes
        )
    if ref.id_column:
        ok["unique_id", ref.id_column] = bool(df[ref.id_column].dropna().is_unique)
    return ok


def pandas_validation(df: pd.DataFrame, ref: Reference, p: ValidateParams, nan_counts: dict[str, int]) -> Verdicts:
    """Everything `validate_frame` checks, in pandas: the suite, kinds, NaN/inf, target rules, drift."""
    ok = pandas_suite(df, ref, p.min_rows)
    for c, col in ref.columns.items():
        kind = column_kind(df[c])
        ok["type", c] = kind == col.kind or (col.kind == "numeric" and kind == "integer")
        if col.kind in NUMERIC:
            inf = np.isinf(df[c].to_numpy(dtype="float64", na_value=np.nan)).any()
            ok["finite", c] = not inf and not nan_counts.get(c, 0)
    labels = {str(v) for v in df[DATA.target].dropna().unique()}
    ok["target_class_count", DATA.target] = len(labels) == 2
    ok["positive_class", DATA.target] = DATA.positive_class in labels
    for d in assess_drift(df, ref.profiles(), p.drift, ref.derived_from.rows):
        if d.psi is not None:
            ok["drift", d.column] = not d.drifted
    return ok


def gx_validation(df: pd.DataFrame, ref: Reference, p: ValidateParams, nan_counts: dict[str, int]) -> Verdicts:
    from tabml.validation.expectations import validate_frame

    return {(c.name, c.column): c.success for c in validate_frame(df, ref, DATA, p, nan_counts).checks}


def gx_suite(df: pd.DataFrame, ref: Reference, min_rows: int) -> Verdicts:
    from tabml.validation.expectations import build_expectations, run_suite

    checks = run_suite(df, ref, build_expectations(ref, set(), min_rows), min_rows)
    return {(c.name, c.column): c.success for c in checks}


def plain_gx_suite(df: pd.DataFrame, ref: Reference, min_rows: int) -> int:
    """The suite as the GX docs write it: per-value expectations, a batch, `batch.validate`, default format."""
    import great_expectations as gx
    import great_expectations.expectations as gxe
    from great_expectations.data_context.types.base import ProgressBarsConfig

    expectations: list[Any] = [
        gxe.ExpectTableColumnsToMatchSet(column_set=list(ref.columns), exact_match=False),
        gxe.ExpectTableRowCountToBeBetween(min_value=max(ref.row_count.min or 0, min_rows)),
    ]
    for c, col in ref.columns.items():
        expectations.append(gxe.ExpectColumnValuesToNotBeNull(column=c, mostly=round(1 - col.max_null_fraction, 6)))
        if col.min is not None and col.max is not None:
            expectations.append(gxe.ExpectColumnValuesToBeBetween(column=c, min_value=col.min, max_value=col.max))
        if col.allowed_values:
            expectations.append(gxe.ExpectColumnValuesToBeInSet(column=c, value_set=col.allowed_values))
    assert ref.target.classes and ref.id_column  # the bench table has both
    expectations.append(gxe.ExpectColumnValuesToBeInSet(column=ref.target.column, value_set=list(ref.target.classes)))
    expectations.append(gxe.ExpectColumnValuesToBeUnique(column=ref.id_column))
    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
    asset = context.data_sources.add_pandas("plain").add_dataframe_asset("bench")
    batch = asset.add_batch_definition_whole_dataframe("all").get_batch(batch_parameters={"dataframe": df})
    suite = context.suites.add(gx.ExpectationSuite(name="plain", expectations=expectations))
    result = batch.validate(suite)
    assert result.success, "the plain suite should pass on the clean frame"
    return len(expectations)


def timed(fn: Callable[[], T]) -> tuple[float, T]:
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def cpu_timed(fn: Callable[[], T]) -> tuple[float, float, T]:
    """Wall seconds, this process's CPU seconds (steadier on a shared machine), and the result."""
    start, cpu = time.perf_counter(), time.process_time()
    out = fn()
    return time.perf_counter() - start, time.process_time() - cpu, out


def peak_mib(fn: Callable[[], object]) -> float:
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1] / 2**20
    finally:
        tracemalloc.stop()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.validation_speed", description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    quiet_telemetry()
    from tasks.validate import read_snapshot

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "snapshot.parquet"
        bench_frame(args.rows, seed=0).to_parquet(path, index=False)
        df, nan_counts = read_snapshot(path)
        raw = pd.read_parquet(path)  # text as `str`, for the plain suite
    ref = derive_reference(bench_frame(min(args.rows, 100_000), seed=1), DATA, LIMITS, snapshot="sample.parquet")
    print(f"frame: {len(df):,} rows x {df.shape[1]} columns, {df.memory_usage(deep=True).sum() / 2**20:.0f} MiB")

    import_s, _ = timed(lambda: __import__("great_expectations.expectations"))
    small, small_nans = df.head(1_000), {c: 0 for c in nan_counts}
    setup_s, _ = timed(lambda: gx_validation(small, ref, LIMITS, small_nans))
    print(f"excluded from all timings: GX import {import_s:.1f} s, GX first-call set-up {setup_s:.1f} s (1,000 rows)")

    ours, base, suite, base_suite = [], [], [], []  # (wall, cpu) per run
    for _ in range(args.repeats):
        *t, gx_verdicts = cpu_timed(lambda: gx_validation(df, ref, LIMITS, nan_counts))
        ours.append(t)
        *t, pd_verdicts = cpu_timed(lambda: pandas_validation(df, ref, LIMITS, nan_counts))
        base.append(t)
        *t, gx_suite_verdicts = cpu_timed(lambda: gx_suite(df, ref, LIMITS.min_rows))
        suite.append(t)
        *t, pd_suite_verdicts = cpu_timed(lambda: pandas_suite(df, ref, LIMITS.min_rows))
        base_suite.append(t)
    assert gx_verdicts == pd_verdicts, "both sides must run the same checks with the same verdicts"
    assert gx_suite_verdicts == pd_suite_verdicts, "and the suite alone the same expectations"
    plain_s, plain_count = timed(lambda: plain_gx_suite(raw, ref, LIMITS.min_rows))
    base_plain = statistics.median(timed(lambda: pandas_suite(raw, ref, LIMITS.min_rows))[0] for _ in range(3))

    memory = {
        "ours": peak_mib(lambda: gx_validation(df, ref, LIMITS, nan_counts)),
        "pandas": peak_mib(lambda: pandas_validation(df, ref, LIMITS, nan_counts)),
    }

    def row(label: str, ours_s: float, base_s: float, unit: str = "s") -> None:
        print(f"{label:42}{ours_s:>9.2f} {unit:<3}{base_s:>7.2f} {unit:<3}{ours_s / base_s:>6.1f}x")

    def med(runs: list[list[float]], i: int) -> float:
        return statistics.median(r[i] for r in runs)

    print(f"\n{'':42}{'GX (ours)':>13}{'pandas':>11}{'ratio':>7}")
    row(f"validation, {len(gx_verdicts)} checks, wall", med(ours, 0), med(base, 0))
    row(f"validation, {len(gx_verdicts)} checks, CPU", med(ours, 1), med(base, 1))
    row(f"GX suite only, {len(pd_suite_verdicts)} checks, wall", med(suite, 0), med(base_suite, 0))
    row(f"GX suite only, {len(pd_suite_verdicts)} checks, CPU", med(suite, 1), med(base_suite, 1))
    row(f"plain GX suite, {plain_count} expectations, wall", plain_s, base_plain)
    row("validation, peak memory", memory["ours"], memory["pandas"], "MiB")
    for name, runs in (("GX", ours), ("pandas", base)):
        print(f"{name} validation runs (wall/CPU s): " + ", ".join(f"{w:.2f}/{c:.2f}" for w, c in runs))


if __name__ == "__main__":
    main()
