"""validate stage: the pipeline's guard between ingest and preprocess.

Checks the incoming snapshot against the dataset's reference (a Great Expectations suite, pandas-only rules and
drift per column), writes the report and its Data Docs page, then either publishes the snapshot as the accepted
one (what preprocess reads) or quarantines it: the previous accepted snapshot and the registered model stay as
they were, and the stage exits 1 naming the quarantine folder.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
from pydantic import ValidationError

from tabml.core.errors import StageError
from tabml.core.files import sha256_file
from tabml.core.params import DEFAULT_PARAMS, Params
from tabml.core.stage import stage_main
from tabml.data.tables import read_table
from tabml.validation.data_docs import write_data_docs
from tabml.validation.expectations import Validation, validate_frame
from tabml.validation.quarantine import quarantine, quarantine_folder
from tabml.validation.reference import Reference, derive_reference

STAGE = "validate"
REDERIVE = f"python -m tasks.{STAGE} --rederive-reference"


def reference_path(params: Params) -> Path:
    return params.validate_.reference_dir / params.data.name / "expectations.json"


def read_snapshot(path: Path) -> tuple[pd.DataFrame, dict[str, int]]:
    """The snapshot as a frame (text columns as `category`), plus NaNs per float column.

    pandas reads NaN and null alike as missing, so NaNs stored as such are counted here, in Arrow.
    """
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    if not path.exists():
        raise StageError("snapshot not found", path, "run the ingest stage first: python -m tasks.ingest")
    schema = pq.read_schema(path)
    text = [f.name for f in schema if pa.types.is_string(f.type) or pa.types.is_large_string(f.type)]
    table = pq.read_table(path, read_dictionary=text)  # each distinct value once in memory and in the checks
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


def publish(snapshot: Path, accepted: Path) -> Path:
    """Replace the accepted snapshot with this one, atomically (same bytes, so DVC stores them once)."""
    accepted.parent.mkdir(parents=True, exist_ok=True)
    partial = accepted.with_name(f".{accepted.name}.partial")
    shutil.copyfile(snapshot, partial)
    os.replace(partial, accepted)
    return accepted


def failure(result: Validation, params: Params, ref_path: Path, note: str, folder: Path) -> StageError:
    """The readable block printed when validation fails: which file, columns, expected vs observed, what to do."""
    failed = [c for c in result.checks if not c.success and c.severity == "error"]
    lines = [f"{len(failed)} check(s) failed against {ref_path}{note}:"]
    for c in failed:
        expected, observed = (json.dumps(v, default=str) for v in (c.expected, c.observed))
        lines += [f"  - {c.message}", f"      expected: {expected}  observed: {observed}"]
    lines += [f"  warning: {w}" for w in result.problems("warning")]
    p = params.validate_
    kept = f"{p.accepted_snapshot} (the last accepted snapshot)" if p.accepted_snapshot.exists() else "nothing"
    lines += [
        f"  quarantined: {folder}/ (the snapshot, {p.report.name}, {p.data_docs.name}); "
        f"preprocess still reads {kept}, the registered model is untouched",
        f"  Data Docs: {p.data_docs}",
    ]
    todo = (
        f"fix the data at {params.data.path} and re-run the pipeline; or, if the change is intended, "
        f"re-derive the reference with `{REDERIVE}` and review the diff of {ref_path}"
    )
    return StageError("\n".join(lines), params.ingest.snapshot, todo)


def build_report(
    params: Params, result: Validation, df: pd.DataFrame, ref_written: bool, rederived: bool, now: datetime
) -> dict[str, Any]:
    errors, p = result.problems("error"), params.validate_
    return {
        "success": not errors,
        "dataset": params.data.name,
        "snapshot": str(params.ingest.snapshot),
        "accepted_snapshot": str(p.accepted_snapshot) if not errors or p.accepted_snapshot.exists() else None,
        "rows": len(df),
        "columns": len(df.columns),
        "reference": str(reference_path(params)),
        "reference_created": ref_written,
        "reference_rederived": ref_written and rederived,
        "data_docs": str(p.data_docs),
        "quarantine": None,
        "validated_at": now.isoformat(timespec="seconds"),
        "errors": errors,
        "warnings": result.problems("warning"),
        "drift": [asdict(d) for d in result.drift],
        "checks": [asdict(c) for c in result.checks],
    }


def quarantine_manifest(params: Params, report: dict[str, Any]) -> dict[str, Any]:
    """What `quarantine.json` says about a rejected batch: where it came from, what it is, why it was rejected."""
    return {
        "dataset": params.data.name,
        "quarantined_at": report["validated_at"],
        "source": str(params.data.path),
        "snapshot": str(params.ingest.snapshot),
        "snapshot_sha256": sha256_file(params.ingest.snapshot),
        "reference": report["reference"],
        "accepted_snapshot_kept": report["accepted_snapshot"],
        "errors": report["errors"],
    }


def run(params: Params, rederive_reference: bool = False, reference_table: Path | None = None) -> list[Path]:
    """Validate the snapshot; derive the reference on first use or on request; publish or quarantine it."""
    start, now = time.perf_counter(), datetime.now(UTC)
    p, snapshot, ref_path = params.validate_, params.ingest.snapshot, reference_path(params)
    df, nan_counts = read_snapshot(snapshot)
    derive = rederive_reference or not ref_path.exists()
    if reference_table is not None:
        ref = derive_reference(read_table(reference_table), params.data, p, snapshot=str(reference_table))
    elif derive:
        ref = derive_reference(df, params.data, p, snapshot=str(snapshot))
    else:
        ref = load_reference(ref_path)
    result = validate_frame(df, ref, params.data, p, nan_counts)
    errors = result.problems("error")
    written = []
    # a snapshot becomes the reference only if it is accepted; a table the user names always does
    if reference_table is not None or (derive and not errors):
        ref_path.parent.mkdir(parents=True, exist_ok=True)
        ref_path.write_text(ref.to_json_text())
        written.append(ref_path)
    report = build_report(params, result, df, bool(written), rederive_reference, now)
    folder = quarantine_folder(p.quarantine_dir, params.data.name, now) if errors else None
    report["quarantine"] = str(folder) if folder else None
    report["seconds"] = round(time.perf_counter() - start, 3)
    written[:0] = [write_json(report, p.report), write_data_docs(report, p.data_docs)]
    if folder is not None:
        quarantine(folder, [snapshot, p.report, p.data_docs], quarantine_manifest(params, report))
        note = " (derived from this snapshot, not written)" if derive and not written else ""
        raise failure(result, params, ref_path, note, folder)
    written.append(publish(snapshot, p.accepted_snapshot))
    for warning in result.problems("warning"):
        print(f"[{STAGE}] warning: {warning}", file=sys.stderr)
    verb = "re-derived" if rederive_reference else "created"
    action = f"; reference {verb} at {ref_path}" if report["reference_created"] else ""
    print(
        f"[{STAGE}] ok: {len(df)} rows, {len(df.columns)} columns, {len(result.checks)} checks, "
        f"{len(report['warnings'])} warning(s){action}; accepted -> {p.accepted_snapshot}; Data Docs: {p.data_docs}",
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
    parser.add_argument(
        "--from",
        dest="reference_table",
        type=Path,
        metavar="TABLE",
        help="with --rederive-reference: derive from this CSV/Parquet instead (e.g. the champion's training data)",
    )
    args = parser.parse_args(argv)
    if args.reference_table is not None and not args.rederive_reference:
        parser.error("--from needs --rederive-reference")
    return stage_main(
        STAGE,
        lambda p: run(p, rederive_reference=args.rederive_reference, reference_table=args.reference_table),
        ["--params", str(args.params)],
    )


if __name__ == "__main__":
    raise SystemExit(main())
