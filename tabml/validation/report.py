"""The validation artifacts: the reference file of a dataset and the validation report of a snapshot.

`<validate.reference_dir>/<data.name>/expectations.json` is the reviewed reference (git-tracked, editable);
`validate.report` is what one validation found (also rendered as Data Docs). Nothing else reads or writes them.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from datetime import datetime
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from tabml.core.errors import StageError
from tabml.core.files import read_json_object, write_text_atomic
from tabml.core.params import Params
from tabml.validation.expectations import Validation
from tabml.validation.reference import Reference

REFERENCE_FILE = "expectations.json"
REDERIVE = "python -m tasks.validate --rederive-reference"


def reference_path(reference_dir: Path, dataset: str) -> Path:
    return reference_dir / dataset / REFERENCE_FILE


def load_reference(path: Path) -> Reference:
    try:
        return Reference.model_validate_json(path.read_text())
    except (ValidationError, ValueError) as exc:
        raise StageError(
            f"reference expectations are not valid: {exc}",
            path,
            f"fix the file by hand, or re-derive it from the current snapshot: {REDERIVE}",
        ) from None


def write_reference(reference: Reference, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(path, reference.to_json_text())
    return path


def build_report(
    params: Params, result: Validation, rows: int, columns: int, ref_written: bool, rederived: bool, now: datetime
) -> dict[str, Any]:
    """Pure: the report of one validation (`quarantine` is filled in by the stage).

    No clock time and no duration: the report is git-tracked and must not change when nothing about the data did
    (`now` only names the quarantine folder, and the stage prints how long it took).
    """
    errors, p, accepted = result.problems("error"), params.validate_, params.preprocess.input
    return {
        "success": not errors,
        "dataset": params.data.name,
        "snapshot": str(params.ingest.snapshot),
        "accepted_snapshot": str(accepted) if not errors or accepted.exists() else None,
        "rows": rows,
        "columns": columns,
        "reference": str(reference_path(p.reference_dir, params.data.name)),
        "reference_created": ref_written,
        "reference_rederived": ref_written and rederived,
        "data_docs": str(p.data_docs),
        "quarantine": None,
        "errors": errors,
        "warnings": result.problems("warning"),
        "drift": [asdict(d) for d in result.drift],
        "checks": [asdict(c) for c in result.checks],
    }


def write_report(report: dict[str, Any], path: Path) -> Path:
    return write_text_atomic(path, json.dumps(report, indent=2, default=str) + "\n")


def read_report(path: Path) -> dict[str, Any] | None:
    """The last validation report, or None when there is none (or it is unreadable): for summaries and W&B."""
    return read_json_object(path)
