"""The registry-package artifact: one immutable folder per version, every file listed with its sha256 in
MANIFEST.json. This module names the files, builds a package from the stage outputs, verifies one, and reads
what is inside; tabml.registry.store decides where packages live and which is production.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tabml.core.files import copy_durable, fsync_dir, sha256_file, write_json_durable
from tabml.core.params import Params, RegisterParams
from tabml.data.preprocessing import PreprocessState
from tabml.data.processed import REPORT_FILE, STATE_FILE
from tabml.evaluation.outputs import DETAILS_FILE, SLICES_FILE, details_path, figure_paths, slices_path
from tabml.registry.index import RegistryError, VersionEntry
from tabml.training.trained_model import model_files

if TYPE_CHECKING:
    from tabml.evaluation.scorer import Scorer

MANIFEST_FILE = "MANIFEST.json"
SIGNATURE_FILE = "MANIFEST.sig"  # HMAC-SHA256 of MANIFEST.json, hex, when register.signing_key_env is set
METRICS_FILE = "metrics.json"
INPUT_SCHEMA_FILE = "input_schema.json"
LINEAGE_FILE = "lineage.json"
GATE_REPORT_FILE = "gate_report.json"
REFERENCE_FILE = "reference.json"  # the validation reference the model was trained under (predict checks against it)
DOCUMENTS = (LINEAGE_FILE, GATE_REPORT_FILE, INPUT_SCHEMA_FILE)  # written by register, shown by `registry show`
TAMPERED_TODO = "do not use this package; register the model again or restore the folder"


@dataclass(frozen=True)
class Package:
    """A verified package: every file matched MANIFEST.json."""

    name: str
    path: Path
    entry: VersionEntry
    sha256: dict[str, str]

    def document(self, file_name: str) -> Any:
        return json.loads((self.path / file_name).read_text())

    def state(self) -> PreprocessState:
        return PreprocessState.model_validate(self.document(STATE_FILE))

    def threshold(self) -> float | None:
        threshold = self.document(METRICS_FILE).get("threshold")
        return None if threshold is None else float(threshold)


def package_sources(params: Params) -> dict[str, Path]:
    """Package file name -> the stage output copied into it (the evaluation's PNG figures included)."""
    processed = params.preprocess.out_dir
    return {
        **model_files(params.train.out_dir),
        STATE_FILE: processed / STATE_FILE,
        REPORT_FILE: processed / REPORT_FILE,
        METRICS_FILE: params.evaluate.metrics,
        SLICES_FILE: slices_path(params.evaluate),
        DETAILS_FILE: details_path(params.evaluate),  # task, n_test, baselines (metrics.json: test, threshold)
        **{figure.name: figure for figure in figure_paths(params.evaluate)},
    }


def input_schema(state: PreprocessState) -> dict[str, object]:
    """The columns a caller must send (`input_schema.json`)."""
    return {
        "task": state.task,
        "target": state.target,
        "labels": state.labels,
        "id_column": state.id_column,
        "columns": [column.model_dump() for column in state.input_schema],
    }


def signing_key(p: RegisterParams) -> bytes | None:
    """The key named by register.signing_key_env (None when signing is off); its value is never logged."""
    if p.signing_key_env is None:
        return None
    value = os.environ.get(p.signing_key_env, "")
    if not value:
        raise RegistryError(
            f"register.signing_key_env names {p.signing_key_env}, which is not set",
            "params.yaml",
            f"export {p.signing_key_env}=<the registry's signing key>, or set register.signing_key_env: null",
        )
    return value.encode()


def signature(manifest: Path, key: bytes) -> str:
    return hmac.new(key, manifest.read_bytes(), hashlib.sha256).hexdigest()


def build(
    staging: Path,
    name: str,
    version: int,
    files: Mapping[str, Path],
    documents: Mapping[str, object],
    key: bytes | None = None,
) -> None:
    """Fill `staging` with the copied files, the JSON documents, the MANIFEST (signed with `key`), all fsynced."""
    for file_name, source in files.items():
        copy_durable(source, staging / file_name)
    for file_name, document in documents.items():
        write_json_durable(staging / file_name, document)
    hashes = {p.name: sha256_file(p) for p in sorted(staging.iterdir())}
    write_json_durable(staging / MANIFEST_FILE, {"name": name, "version": version, "sha256": hashes})
    if key is not None:
        write_json_durable(staging / SIGNATURE_FILE, {"hmac_sha256": signature(staging / MANIFEST_FILE, key)})
    fsync_dir(staging)


def manifest_hashes(path: Path) -> dict[str, str] | None:
    """The sha256 per file that the package's MANIFEST.json lists, or None when it has none."""
    try:
        hashes = json.loads((path / MANIFEST_FILE).read_text())["sha256"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return hashes if isinstance(hashes, dict) else None


def check_signature(path: Path, key: bytes) -> None:
    """Refuse a package whose MANIFEST.json is unsigned or signed with another key."""
    try:
        recorded = json.loads((path / SIGNATURE_FILE).read_text())["hmac_sha256"]
    except (OSError, ValueError, KeyError, TypeError):
        recorded = None
    if recorded is None:
        raise RegistryError("the package is not signed, and a signing key is configured", path, TAMPERED_TODO)
    if not hmac.compare_digest(str(recorded), signature(path / MANIFEST_FILE, key)):
        raise RegistryError("MANIFEST.json's signature does not match the signing key", path, TAMPERED_TODO)


def verify(path: Path, manifest_sha256: str, key: bytes | None = None) -> dict[str, str]:
    """Every file of the package against MANIFEST.json, MANIFEST.json against the index and, with `key`, its
    signature; the hashes."""
    manifest = path / MANIFEST_FILE
    if not manifest.exists() or sha256_file(manifest) != manifest_sha256:
        raise RegistryError("MANIFEST.json is missing or does not match index.json", manifest, TAMPERED_TODO)
    if key is not None:
        check_signature(path, key)
    hashes: dict[str, str] = json.loads(manifest.read_text())["sha256"]
    present = {p.name for p in path.iterdir()} - {MANIFEST_FILE, SIGNATURE_FILE}
    if present != set(hashes):
        raise RegistryError(f"files differ from MANIFEST.json: {sorted(present ^ set(hashes))}", path, TAMPERED_TODO)
    for file_name, expected in hashes.items():
        if sha256_file(path / file_name) != expected:
            raise RegistryError(
                "sha256 does not match MANIFEST.json: the file was modified", path / file_name, TAMPERED_TODO
            )
    return hashes


def load_scorer(package: Package) -> Scorer:
    """The package's network with its own preprocessing state and threshold.

    Raises ValueError (pydantic) or KeyError when a file does not match what this code reads."""
    from tabml.evaluation.scorer import load_scorer as scorer_of_folder

    return scorer_of_folder(package.path, package.state(), package.threshold())
