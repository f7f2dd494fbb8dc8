"""The model registry of record: checksummed packages on disk, published atomically under a file lock.

Why files and not GTO tags or W&B artifacts as the record: it works without git or a W&B account; a
version appears with one `os.rename` and the index changes with one `os.replace`, so a crash leaves the
previous state; writers are serialised by an `fcntl` lock, so concurrent runs get distinct versions;
and one git commit can carry several versions (a pipeline re-run on the same HEAD). GTO tags
(`tabml.gto_tags`) are an optional mirror of this record for git-based workflows.

Stages: `production` (at most one version: what batch prediction uses by default), `staging` (at most one:
a registered challenger that did not beat production, waiting for a person) and `archived` (held a stage
once). Moving a version into a stage archives the version that held it, in the same index write.

Layout under `register.registry_dir`:
    <name>/index.json        versions: created_at, metrics, stage and stage history, MANIFEST.json sha256
    <name>/.lock             held by every writer
    <name>/versions/v<N>/    one package; MANIFEST.json holds the sha256 of every other file
    <name>/.staging-*/       a package being built (same filesystem, so publishing is a rename)
"""

from __future__ import annotations

import fcntl
import math
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from pydantic import ValidationError

from tabml.core.files import fsync_dir, sha256_file, utc_now, write_json_atomic
from tabml.registry.index import (
    ActiveStage,
    RegistryBusy,
    RegistryError,
    RegistryIndex,
    Stage,
    VersionEntry,
    assign_stage,
    next_version,
    rollback_target,
)
from tabml.registry.package import MANIFEST_FILE, Package, build, verify

INDEX_FILE = "index.json"
LOCK_FILE = ".lock"


# ---- I/O edges ------------------------------------------------------------------------------------


def model_dir(registry_dir: Path, name: str) -> Path:
    return Path(registry_dir) / name


@contextmanager
def locked(mdir: Path, timeout: float) -> Iterator[None]:
    """Hold the exclusive lock of one model line; the OS releases it if the process dies."""
    mdir.mkdir(parents=True, exist_ok=True)
    with (mdir / LOCK_FILE).open("a") as fh:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    what = f"could not lock the registry within {timeout:g}s: another registration holds it"
                    todo = "wait for it to finish, or raise register.lock_timeout_seconds in params.yaml"
                    raise RegistryBusy(what, mdir / LOCK_FILE, todo) from None
                time.sleep(0.05)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def read_index(mdir: Path) -> RegistryIndex:
    path = mdir / INDEX_FILE
    if not path.exists():
        return RegistryIndex(name=mdir.name)
    try:
        return RegistryIndex.model_validate_json(path.read_bytes())
    except ValidationError as exc:
        raise RegistryError(f"not a valid registry index: {exc}", path, "restore it from a backup") from None


def _versions_on_disk(mdir: Path) -> list[int]:
    folder = mdir / "versions"
    names = [p.name for p in folder.iterdir()] if folder.is_dir() else []
    return [int(n[1:]) for n in names if n.startswith("v") and n[1:].isdigit()]


def publish(
    registry_dir: Path,
    name: str,
    files: Mapping[str, Path],
    documents: Callable[[int], Mapping[str, object]],
    metrics: Mapping[str, float | None],
    *,
    stage: ActiveStage | None | Callable[[RegistryIndex], ActiveStage | None],
    lock_timeout: float,
) -> tuple[VersionEntry, RegistryIndex, RegistryIndex]:
    """Build v<N> in a staging folder, rename it into place, and put it in `stage` with the same index write.

    `stage` may be a function of the index as read under the lock: the register stage uses one to refuse
    production if production changed while it was comparing against it. Returns (entry, index before,
    index after): a crash before the index write leaves an orphan folder (skipped by the next version
    number, invisible to readers) and the previous stages in place."""
    mdir = model_dir(registry_dir, name)
    with locked(mdir, lock_timeout):
        index = read_index(mdir)
        version = next_version(index, _versions_on_disk(mdir))
        chosen = stage(index) if callable(stage) else stage  # before documents(): they may record it
        staging, target = Path(tempfile.mkdtemp(dir=mdir, prefix=".staging-")), mdir / "versions" / f"v{version}"
        try:
            build(staging, name, version, files, documents(version))
            target.parent.mkdir(exist_ok=True)
            os.rename(staging, target)  # the commit point: the version is complete or absent
            fsync_dir(target.parent)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        now, manifest_sha256 = utc_now(), sha256_file(target / MANIFEST_FILE)
        entry = VersionEntry(
            version=version,
            path=f"versions/v{version}",
            created_at=now,
            metrics={k: v if v is None or math.isfinite(v) else None for k, v in metrics.items()},
            manifest_sha256=manifest_sha256,
        )
        new = index.model_copy(update={"versions": [*index.versions, entry]})
        if chosen is not None:
            new = assign_stage(new, version, now, "register", chosen)
        write_json_atomic(mdir / INDEX_FILE, new.model_dump(mode="json"))
    return new.get(version) or entry, index, new


def _update_index(
    registry_dir: Path, name: str, lock_timeout: float, change: Callable[[RegistryIndex], RegistryIndex]
) -> tuple[RegistryIndex, RegistryIndex]:
    mdir = model_dir(registry_dir, name)
    with locked(mdir, lock_timeout):
        before = read_index(mdir)
        after = change(before)
        write_json_atomic(mdir / INDEX_FILE, after.model_dump(mode="json"))
    return before, after


def promote(
    registry_dir: Path, name: str, version: int, *, lock_timeout: float, stage: ActiveStage = "production"
) -> tuple[RegistryIndex, RegistryIndex]:
    """Put `version` in `stage` (the holder is archived) in one atomic index write; returns (before, after)."""
    return _update_index(registry_dir, name, lock_timeout, lambda ix: assign_stage(ix, version, utc_now(), stage=stage))


def rollback(registry_dir: Path, name: str, *, lock_timeout: float) -> tuple[RegistryIndex, RegistryIndex]:
    """Move production back to the previous production version; returns (before, after)."""

    def change(index: RegistryIndex) -> RegistryIndex:
        return assign_stage(index, rollback_target(index), utc_now(), "rollback")

    return _update_index(registry_dir, name, lock_timeout, change)


def load_package(registry_dir: Path, name: str, version: int | None = None, stage: Stage | None = None) -> Package:
    """Resolve a version (default: production) and verify every file against its MANIFEST.json."""
    mdir = model_dir(registry_dir, name)
    index = read_index(mdir)
    entry = index.get(version) if version is not None else index.in_stage(stage or "production")
    if entry is None:
        wanted = f"v{version}" if version is not None else f"{stage or 'production'} version"
        raise RegistryError(f"{name} has no {wanted}", mdir / INDEX_FILE, "run `python -m tabml.registry list`")
    path = mdir / entry.path
    return Package(name, path, entry, verify(path, entry.manifest_sha256))
