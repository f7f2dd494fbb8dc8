"""validate stage: check the snapshot against the dataset's reference expectations (Great Expectations)."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pandas as pd
from pydantic import ValidationError

from tabml.cli import StageError, stage_main
from tabml.expectations import Check, Reference, derive_reference, problems, validate_frame
from tabml.params import DEFAULT_PARAMS, Params

STAGE = "validate"
REDERIVE = f"python -m tasks.{STAGE} --rederive-reference"


def reference_path(params: Params) -> Path:
    return params.validate_.reference_dir / params.data.name / "expectations.json"


def read_snapshot(path: Path) -> tuple[pd.DataFrame, dict[str, int]]:
    """The snapshot as a frame, plus NaNs per float column (pandas reads NaN and null alike as missing)."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    if not path.exists():
        raise StageError("snapshot not found", path, "run the ingest stage first: python -m tasks.ingest")
    table = pq.read_table(path)
    nan_counts = {
        name: int(pc.sum(pc.is_nan(table[name])).as_py() or 0)
        for name, field in zip(table.column_names, table.schema, strict=True)
        if pa.types.is_floating(field.type)
    }
    return table.to_pandas(), nan_counts


def load_reference(path: Path) -> Reference:
    try:
        return Reference.model_validate_json(path.read_text())
    except (ValidationError, ValueError) as exc:
        raise StageError(
            f"reference expectations are not valid: {exc}",
            path,
            f"fix the file by hand, or re-derive it from the current snapshot: {REDERIVE}",
        ) from None


def write_json(payload: dict[str, Any], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2, default=str) + "\n")
    return path


def failure(checks: list[Check], params: Params, ref_path: Path, note: str) -> StageError:
    """The readable block printed when validation fails: which file, columns, expected vs observed, what to do."""
    failed = [c for c in checks if not c.success and c.severity == "error"]
    lines = [f"{len(failed)} check(s) failed against {ref_path}{note}:"]
    for c in failed:
        expected, observed = (json.dumps(v, default=str) for v in (c.expected, c.observed))
        lines += [f"  - {c.message}", f"      expected: {expected}  observed: {observed}"]
    lines += [f"  warning: {w}" for w in problems(checks, "warning")]
    todo = (
        f"fix the data at {params.data.path} and re-run ingest; or, if the change is intended, "
        f"re-derive the reference with `{REDERIVE}` and review the diff of {ref_path}"
    )
    return StageError("\n".join(lines), params.ingest.snapshot, todo)


def run(params: Params, rederive_reference: bool = False) -> list[Path]:
    """Validate the snapshot; derive the reference on first use or on request; write the report."""
    start = time.perf_counter()
    snapshot, ref_path = params.ingest.snapshot, reference_path(params)
    df, nan_counts = read_snapshot(snapshot)
    derive = rederive_reference or not ref_path.exists()
    if derive:
        ref = derive_reference(df, params.data, params.validate_, snapshot=str(snapshot))
    else:
        ref = load_reference(ref_path)
    checks = validate_frame(df, ref, params.data, params.validate_, nan_counts)
    errors, warnings = problems(checks, "error"), problems(checks, "warning")
    written = []
    if derive and not errors:  # only an accepted snapshot becomes the reference
        written.append(write_json(ref.to_json_dict(), ref_path))
    report = {
        "success": not errors,
        "dataset": params.data.name,
        "snapshot": str(snapshot),
        "rows": len(df),
        "columns": len(df.columns),
        "reference": str(ref_path),
        "reference_created": bool(written),
        "reference_rederived": bool(written) and rederive_reference,
        "checks": [asdict(c) for c in checks],
        "errors": errors,
        "warnings": warnings,
        "seconds": round(time.perf_counter() - start, 3),
    }
    written.insert(0, write_json(report, params.validate_.report))
    if errors:
        note = " (derived from this snapshot, not written)" if derive else ""
        raise failure(checks, params, ref_path, note)
    for warning in warnings:
        print(f"[{STAGE}] warning: {warning}", file=sys.stderr)
    action = f"; reference {'re-derived' if rederive_reference else 'created'} at {ref_path}" if written[1:] else ""
    print(
        f"[{STAGE}] ok: {len(df)} rows, {len(df.columns)} columns, {len(checks)} checks, "
        f"{len(warnings)} warning(s){action}",
        flush=True,
    )
    return written


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=f"python -m tasks.{STAGE}", description="Run the validate stage.")
    parser.add_argument("--params", type=Path, default=DEFAULT_PARAMS, help="params file (default: params.yaml)")
    parser.add_argument(
        "--rederive-reference",
        action="store_true",
        help="re-derive the reference expectations from the current snapshot (review the diff afterwards)",
    )
    args = parser.parse_args(argv)
    return stage_main(
        STAGE, lambda p: run(p, rederive_reference=args.rederive_reference), ["--params", str(args.params)]
    )


if __name__ == "__main__":
    raise SystemExit(main())
