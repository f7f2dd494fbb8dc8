"""validate stage: the pipeline's guard between ingest and preprocess.

Checks the incoming snapshot against the dataset's reference (a Great Expectations suite, pandas-only rules and
drift per column), writes the report and its Data Docs page, then either publishes the snapshot as the accepted
one (what preprocess reads) or quarantines it: the previous accepted snapshot and the registered model stay as
they were, and the stage exits 1 naming the quarantine folder.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tabml.core.errors import StageError
from tabml.core.files import sha256_file
from tabml.core.params import DEFAULT_PARAMS, Params
from tabml.core.stage import stage_main
from tabml.data.snapshot import publish_accepted, read_snapshot, read_snapshot_dialect
from tabml.data.tables import ReadOptions, read_table_as
from tabml.validation.data_docs import write_data_docs
from tabml.validation.dialect_checks import dialect_checks
from tabml.validation.expectations import Validation, validate_frame
from tabml.validation.quarantine import quarantine, quarantine_folder
from tabml.validation.reference import derive_reference
from tabml.validation.report import (
    REDERIVE,
    build_report,
    load_reference,
    reference_path,
    write_reference,
    write_report,
)

STAGE = "validate"


def failure(result: Validation, params: Params, ref_path: Path, note: str, folder: Path) -> StageError:
    """The readable block printed when validation fails: which file, columns, expected vs observed, what to do."""
    failed = [c for c in result.checks if not c.success and c.severity == "error"]
    lines = [f"{len(failed)} check(s) failed against {ref_path}{note}:"]
    for c in failed:
        expected, observed = (json.dumps(v, default=str) for v in (c.expected, c.observed))
        lines += [f"  - {c.message}", f"      expected: {expected}  observed: {observed}"]
    lines += [f"  warning: {w}" for w in result.problems("warning")]
    p, accepted = params.validate_, params.preprocess.input
    kept = f"{accepted} (the last accepted snapshot)" if accepted.exists() else "nothing"
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


def quarantine_manifest(params: Params, report: dict[str, Any], now: datetime) -> dict[str, Any]:
    """What `quarantine.json` says about a rejected batch: where it came from, what it is, why it was rejected."""
    return {
        "dataset": params.data.name,
        "quarantined_at": now.isoformat(timespec="seconds"),
        "source": str(params.data.path),
        "snapshot": str(params.ingest.snapshot),
        "snapshot_sha256": sha256_file(params.ingest.snapshot),
        "reference": report["reference"],
        "accepted_snapshot_kept": report["accepted_snapshot"],
        "errors": report["errors"],
    }


def publish_or_retract(snapshot: Path, accepted: Path, report: dict[str, Any], report_path: Path) -> Path:
    """Publish the accepted snapshot before the report says success; when publishing fails, the report says
    so instead (or, if even that cannot be written, the previous run's report is removed): never a success."""
    try:
        return publish_accepted(snapshot, accepted)
    except OSError as exc:
        failed = {**report, "success": False, "published": False}
        failed["publish_error"] = f"{exc.strerror or type(exc).__name__}: {accepted}"
        try:
            write_report(failed, report_path)
        except OSError:
            report_path.unlink(missing_ok=True)
        raise


def run(params: Params, rederive_reference: bool = False, reference_table: Path | None = None) -> list[Path]:
    """Validate the snapshot; derive the reference on first use or on request; publish or quarantine it."""
    now = datetime.now(UTC)
    p, snapshot = params.validate_, params.ingest.snapshot
    ref_path = reference_path(p.reference_dir, params.data.name)
    df, nan_counts = read_snapshot(snapshot)
    dialect = read_snapshot_dialect(snapshot)
    derive = rederive_reference or not ref_path.exists()
    if reference_table is not None:
        table = read_table_as(reference_table, ReadOptions.of(params.data))
        ref = derive_reference(table.frame, params.data, p, str(reference_table), table.dialect)
    elif derive:
        ref = derive_reference(df, params.data, p, snapshot=str(snapshot), dialect=dialect)
    else:
        ref = load_reference(ref_path)
    result = validate_frame(df, ref, params.data, p, nan_counts)
    result = Validation(result.checks + dialect_checks(dialect, ref), result.drift)
    errors = result.problems("error")
    written = []
    # a snapshot becomes the reference only if it is accepted; a table the user names always does
    if reference_table is not None or (derive and not errors):
        written.append(write_reference(ref, ref_path))
    report = build_report(params, result, len(df), len(df.columns), bool(written), rederive_reference, now)
    folder = quarantine_folder(p.quarantine_dir, params.data.name, now) if errors else None
    report["quarantine"] = str(folder) if folder else None
    if folder is not None:
        written[:0] = [write_report(report, p.report), write_data_docs(report, p.data_docs)]
        quarantine(folder, [snapshot, p.report, p.data_docs], quarantine_manifest(params, report, now))
        note = " (derived from this snapshot, not written)" if derive and not written else ""
        raise failure(result, params, ref_path, note, folder)
    accepted = publish_or_retract(snapshot, params.preprocess.input, report, p.report)
    written[:0] = [write_report(report, p.report), write_data_docs(report, p.data_docs)]
    written.append(accepted)
    for warning in result.problems("warning"):
        print(f"[{STAGE}] warning: {warning}", file=sys.stderr)
    verb = "re-derived" if rederive_reference else "created"
    action = f"; reference {verb} at {ref_path}" if report["reference_created"] else ""
    print(
        f"[{STAGE}] ok: {len(df)} rows, {len(df.columns)} columns, {len(result.checks)} checks, "
        f"{len(report['warnings'])} warning(s){action}; accepted -> {params.preprocess.input}; "
        f"Data Docs: {p.data_docs}",
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
