"""The runs of a model line as the registry holds them: metrics, history and params (from lineage.json), no curves."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from tabml.core.errors import StageError
from tabml.registry.package import GATE_REPORT_FILE, LINEAGE_FILE, METRICS_FILE
from tabml.registry.store import INDEX_FILE, model_dir, read_index
from tabml.report.runs import Run, RunSelectionError, flatten, parse_history, workspace_reader
from tabml.training.trained_model import HISTORY_FILE


def registry_runs(
    registry_dir: Path, name: str, versions: Sequence[int] | None = None, last: int | None = None
) -> list[Run]:
    """Registered versions of one model line: metrics, history and params (from lineage.json); no curves."""
    index_path = model_dir(registry_dir, name) / INDEX_FILE
    if not index_path.is_file():
        raise RunSelectionError(f"{index_path}: no readable registry index (there is no such file)")
    try:
        index = read_index(model_dir(registry_dir, name))
    except StageError as exc:
        raise RunSelectionError(f"{index_path}: no readable registry index ({exc.what})") from None
    entries = {e.version: e.model_dump(mode="json") for e in index.versions}
    if versions:
        unknown = sorted(set(versions) - set(entries))
        if unknown:
            raise RunSelectionError(f"{name} has no version(s) {unknown} (known: {sorted(entries)})")
        chosen = list(versions)
    else:
        chosen = sorted(entries)[-(last or len(entries)) :]
    return [_registry_run(registry_dir / name, entries[v]) for v in chosen]


def _registry_run(model_dir: Path, entry: Mapping[str, Any]) -> Run:
    package = model_dir / str(entry.get("path", f"versions/v{entry['version']}"))
    read = workspace_reader(package)
    lineage = json.loads(read(LINEAGE_FILE) or "{}")
    gate = json.loads(read(GATE_REPORT_FILE) or "null")
    history = read(HISTORY_FILE)
    registration = {
        "passed": True,
        "version": entry["version"],
        "stage": entry.get("stage"),
        "manifest_sha256": entry.get("manifest_sha256"),
        "registry_path": str(package),
        **(
            {"reasons": _gate_reasons(gate), "held_back": gate.get("held_back") or []} if isinstance(gate, dict) else {}
        ),
    }
    return Run(
        name=f"v{entry['version']}",
        source="registry",
        rev=(lineage.get("git") or {}).get("rev"),
        created=entry.get("created_at"),
        params=flatten(lineage.get("params") or {}),
        metrics=json.loads(read(METRICS_FILE) or "{}"),
        history=parse_history(history) if history else [],
        registration=registration,
        run_info=lineage.get("run"),
        notes=("ROC/PR points are not kept in registry packages: compare DVC experiments for curves",),
    )


def _gate_reasons(gate: Mapping[str, Any]) -> list[str]:
    return [str(c.get("reason") or c.get("name")) for c in gate.get("checks") or [] if isinstance(c, dict)]
