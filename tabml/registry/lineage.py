"""The lineage record of a registered model: the code, data, params and environment behind it, never a secret.

No environment variable is recorded (the Prefect flow run id is read from `TABML_FLOW_RUN_ID`, nothing
else); values under secret-looking keys and credentials inside URLs are redacted before anything is written.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import socket
import subprocess
from collections.abc import Mapping
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import TYPE_CHECKING

import yaml

from tabml.core.params import Params
from tabml.core.redact import redact

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)

LIBRARIES = {  # name in the record -> distribution name
    "torch": "torch",
    "lightning": "lightning",
    "torchmetrics": "torchmetrics",
    "pandas": "pandas",
    "numpy": "numpy",
    "scikit-learn": "scikit-learn",
    "dvc": "dvc",
    "great_expectations": "great-expectations",
    "prefect": "prefect",
    "wandb": "wandb",
}
PIPELINE_SECTIONS = ("data", "ingest", "validate", "preprocess", "train", "evaluate", "register")
FLOW_RUN_ENV = "TABML_FLOW_RUN_ID"


def git_state(repo: Path) -> dict[str, object]:
    """HEAD's commit and whether tracked files differ from it; None for both outside a git repo."""

    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, check=True).stdout.strip()

    try:
        rev = git("rev-parse", "--verify", "HEAD")
        dirty = bool(git("status", "--porcelain", "--untracked-files=no"))
    except (OSError, subprocess.CalledProcessError):
        return {"rev": None, "dirty": None}
    return {"rev": rev, "dirty": dirty}


def _hashes(entries: object) -> dict[str, str | None]:
    items = entries if isinstance(entries, list) else []
    return {str(e["path"]): e.get("md5") for e in items if isinstance(e, dict) and "path" in e}


def summarize_dvc_lock(lock: Mapping[str, object]) -> dict[str, object]:
    """Per stage: deps and outs as path -> md5, params as recorded."""
    stages = lock.get("stages")
    return {
        name: {"deps": _hashes(st.get("deps")), "outs": _hashes(st.get("outs")), "params": st.get("params", {})}
        for name, st in (stages.items() if isinstance(stages, dict) else [])
        if isinstance(st, dict)
    }


def read_dvc_lock(path: Path) -> dict[str, object] | None:
    if not path.exists():
        return None
    try:
        lock = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        log.warning("%s: not valid YAML, lineage records no dvc.lock: %s", path, exc)
        return None
    return summarize_dvc_lock(lock) if isinstance(lock, dict) else None


def library_versions() -> dict[str, str | None]:
    """Installed versions from package metadata; nothing is imported."""

    def installed(dist: str) -> str | None:
        try:
            return version(dist)
        except PackageNotFoundError:
            return None

    return {name: installed(dist) for name, dist in LIBRARIES.items()}


def _number(value: object) -> float | None:
    number = float(value)  # type: ignore[arg-type]
    return None if number != number else float(f"{number:.10g}")  # NaN -> None; 10 digits survive platforms


def table_profile(frame: pd.DataFrame) -> dict[str, object]:
    """Pure: schema and summary statistics of a table: rows, and per column dtype, nulls, distinct values,
    and min/mean/max for numbers. Equal tables give equal profiles, whatever their file bytes."""
    import pandas as pd

    columns = []
    for name in frame.columns:
        values = frame[name]
        column: dict[str, object] = {
            "name": str(name),
            "dtype": str(values.dtype),
            "nulls": int(values.isna().sum()),
            "distinct": int(values.nunique(dropna=True)),
        }
        if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values) and values.notna().any():
            column |= {"min": _number(values.min()), "mean": _number(values.mean()), "max": _number(values.max())}
        columns.append(column)
    return {"rows": len(frame), "columns": columns}


def sha256_json(document: object) -> str:
    """sha256 of canonical JSON (sorted keys, no whitespace)."""
    return hashlib.sha256(json.dumps(document, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def data_profile(snapshot: Path, frame: pd.DataFrame, expectations: Path) -> dict[str, object]:
    """What identifies the data behind a version beyond dvc.lock's file hash: the hash of the table's profile
    (schema + statistics) and the hash of the reference expectations it was validated against."""
    profile = table_profile(frame)
    reviewed = None
    if expectations.is_file():
        reviewed = {"path": str(expectations), "sha256": hashlib.sha256(expectations.read_bytes()).hexdigest()}
    return {
        "snapshot": {"path": str(snapshot), "rows": profile["rows"], "profile_sha256": sha256_json(profile)},
        "reference_expectations": reviewed,
    }


def build_lineage(
    *,
    name: str,
    version: int,
    created_at: str,
    git: Mapping[str, object],
    dvc_lock: Mapping[str, object] | None,
    params: Mapping[str, object],
    libraries: Mapping[str, str | None],
    run_info: Mapping[str, object],
    flow_run_id: str | None,
    hostname: str,
    profile: Mapping[str, object] | None = None,
) -> dict[str, object]:
    """Pure: assemble and redact the record written as lineage.json."""
    record = {
        "model": {"name": name, "version": version},
        "created_at": created_at,
        "git": dict(git),
        "dvc_lock": dvc_lock,
        "data_profile": dict(profile) if profile is not None else None,
        "params": {k: params[k] for k in PIPELINE_SECTIONS if k in params},
        "libraries": dict(libraries),
        "run": {
            "seed": run_info.get("seed"),
            "wandb_run_id": run_info.get("wandb_run_id"),
            "prefect_flow_run_id": flow_run_id,
            "hostname": hostname,
        },
    }
    return redact(record)  # type: ignore[return-value]


def collect_lineage(
    params: Params,
    name: str,
    version: int,
    created_at: str,
    run_info: Mapping[str, object],
    repo: Path = Path("."),
    profile: Mapping[str, object] | None = None,
) -> dict[str, object]:
    """Gather git, dvc.lock, library and host facts from `repo` (the project root) and build the record."""
    return build_lineage(
        name=name,
        version=version,
        created_at=created_at,
        git=git_state(repo),
        dvc_lock=read_dvc_lock(repo / "dvc.lock"),
        params=params.model_dump(mode="json", by_alias=True),
        libraries=library_versions(),
        run_info=run_info,
        flow_run_id=os.environ.get(FLOW_RUN_ENV) or None,
        hostname=socket.gethostname(),
        profile=profile,
    )
