"""The registration reports: `register.record` (what happened to this run's model) and `register.gate_report`
(every check of the gate with its numbers; the package holds a copy). Written atomically; read by the flow's
summary, W&B and the compare page through here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tabml.core.files import read_json_object, write_json_atomic
from tabml.core.params import Params
from tabml.registry.gate import GateDecision
from tabml.registry.index import VersionEntry
from tabml.registry.store import model_dir, where


def registration_record(
    params: Params,
    decision: GateDecision,
    entry: VersionEntry | None = None,
    previous: int | None = None,
    gto: dict | None = None,
    wandb: dict | None = None,
) -> dict[str, object]:
    """Pure: what reports/registration.json says, for a refused, a staged or a promoted model."""
    mdir = model_dir(params.register_.registry_dir, params.data.name)
    return {
        "passed": decision.passed,
        "dataset": params.data.name,
        "task": params.data.task,
        "version": entry.version if entry else None,
        "stage": entry.stage if entry else None,
        "promoted": bool(entry and entry.stage == "production"),
        "previous_production": previous,
        "champion_version": decision.champion_version,
        "registry_path": f"{where(mdir)}/{entry.path}" if entry else None,
        "manifest_sha256": entry.manifest_sha256 if entry else None,
        "gate_report": str(params.register_.gate_report),
        "gto": gto,
        "wandb_registry": wandb,
        "primary_metric": decision.primary_metric,
        "value": decision.value,
        "reasons": decision.reasons,
        "held_back": decision.held_back,
    }


def gate_document(decision: GateDecision, name: str, version: int | None, n_test: int | None) -> dict[str, object]:
    return {"name": name, "version": version, "n_test": n_test, **decision.report()}


def write_document(path: Path, document: dict[str, object]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(path, document)
    return path


# What differs between two registrations of the same model (README "A clean checkout stays clean"): the git
# commit GTO anchored its tags on, the package's manifest hash (its lineage has the run's times and ids) and the
# W&B link. Kept beside the record in `<record>.run.json` (git-ignored, not a DVC output); read_record merges it.
PER_RUN_RECORD_FIELDS = ("manifest_sha256", "gto", "wandb_registry")
RUN_FACTS_SUFFIX = ".run.json"


def record_facts_file(path: Path) -> Path:
    """`reports/registration.json` -> `reports/registration.run.json`."""
    return path.with_name(path.stem + RUN_FACTS_SUFFIX)


def write_record(path: Path, record: dict[str, object]) -> Path:
    """The record without its per-run fields at `path`, those fields (and what they belong to) beside it."""
    kept = {key: value for key, value in record.items() if key not in PER_RUN_RECORD_FIELDS}
    facts = {key: record.get(key) for key in ("dataset", "version", *PER_RUN_RECORD_FIELDS)}
    write_document(record_facts_file(path), facts)
    return write_document(path, kept)


def facts_belong(record: dict[str, Any], facts: object) -> bool:
    """Pure: whether `facts` were written with `record` (same dataset and version)."""
    return isinstance(facts, dict) and (facts.get("dataset"), facts.get("version")) == (
        record.get("dataset"),
        record.get("version"),
    )


def with_run_facts(record: dict[str, Any] | None, facts: dict[str, Any] | None) -> dict[str, Any] | None:
    """Pure: `record` plus the per-run fields written with it (same dataset and version); as is otherwise."""
    if record is None or facts is None or not facts_belong(record, facts):
        return record
    return record | {key: facts.get(key) for key in PER_RUN_RECORD_FIELDS}


def read_record(path: Path) -> dict[str, Any] | None:
    """The last registration record with its per-run fields, or None when there is none (or it is unreadable)."""
    return with_run_facts(read_json_object(path), read_json_object(record_facts_file(path)))


def missing_here(path: Path, root: Path) -> str | None:
    """Why this workspace lacks the registration its record at `path` names, or None when it holds it.

    The record is tracked in git and is not a DVC-cached output, so a fresh clone has it while its registry (and
    the per-run facts beside the record) are not there: DVC, seeing register's deps and outputs unchanged, would
    skip it and leave a record of a model this workspace never registered."""
    record = read_json_object(path)
    if not record or record.get("version") is None:
        return None  # nothing registered (a refused model, an experiment): nothing to be missing
    named = f"{record.get('dataset')} v{record.get('version')}"
    if not facts_belong(record, read_json_object(record_facts_file(path))):  # no register here made this version
        return f"{path.name} records {named}, which no register stage made in this workspace"
    where_ = record.get("registry_path")
    if isinstance(where_, str) and "://" not in where_ and not (root / where_).is_dir():
        return f"{path.name} records {named} at {where_}, which is not there"
    return None
