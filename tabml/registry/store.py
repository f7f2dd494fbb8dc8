"""The model registry of record: checksummed packages on disk, published atomically under a file lock.

Why files and not GTO tags or W&B artifacts as the record: it works without git or a W&B account; a
package appears with one `os.rename`, becomes a version with one fsynced line appended to the event log (the
commit point), and the index (a cache) changes with one `os.replace`, so a crash leaves the previous state or
an index that is rebuilt from disk, never reset; writers are serialised by an `fcntl` lock, so concurrent runs
get distinct versions; and one git commit can carry several versions (a pipeline re-run on the same HEAD). GTO
tags (`register.gto_tags`) are an optional mirror of this record, reconciled after every write.

Tests only: PAUSE_ENV (`TABML_TEST_PAUSE_AT=renamed|logged|indexed`, `assigned` in tabml.registry.gto) stops a
writer at that phase so a test can `kill -9` it there (docs/reliability.md). A bucket: tabml.registry.remote.

Stages: `production` (at most one version: what batch prediction uses by default), `staging` (at most one:
a registered challenger that did not beat production, waiting for a person) and `archived` (held a stage
once). Moving a version into a stage archives the version that held it, in the same index write.

Layout under `register.registry_dir`:
    <name>/events.jsonl      the record: an append-only, checksummed log of every registry write (events)
    <name>/index.json        a cache of events.jsonl and the version folders, rebuilt when lost (recovery)
    <name>/.lock             held by every writer
    <name>/versions/v<N>/    one package; MANIFEST.json holds the sha256 of every other file
    <name>/.staging-*/       a package being built (same filesystem, so publishing is a rename)"""

from __future__ import annotations

import fcntl
import math
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Collection, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from tabml.core.files import fsync_dir, sha256_file, utc_now, write_json_atomic
from tabml.core.params import MODEL_NAME_PATTERN
from tabml.registry.events import (
    Event,
    append_event,
    apply_event,
    import_record,
    moves_record,
    register_record,
    rerun_record,
)
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
    stage_moves,
)
from tabml.registry.package import MANIFEST_FILE, Package, build, manifest_hashes, verify
from tabml.registry.recovery import INDEX_FILE, LOCK_FILE, IndexState, current_index, versions_on_disk
from tabml.registry.remote import fetch_version, line_url, mirror_dir, pull, registry_url, remote_lock

PAUSE_ENV = "TABML_TEST_PAUSE_AT"  # tests only: stop at a named phase so a test can kill -9 the process there


# ---- I/O edges ------------------------------------------------------------------------------------


def pause_at(phase: str) -> None:
    """Tests only: when PAUSE_ENV names `phase`, say so on stderr and wait to be killed."""
    if os.environ.get(PAUSE_ENV) == phase:
        print(f"[registry] paused at {phase}", file=sys.stderr, flush=True)
        time.sleep(3600)


def model_dir(registry_dir: Path, name: str) -> Path:
    """registry/<name>; a name outside the registry's pattern (`../x`, `a/b`) is refused."""
    import re

    if not re.fullmatch(MODEL_NAME_PATTERN, name or ""):
        raise RegistryError(
            f"not a model name: {name!r}",
            registry_dir,
            f"use lower-case letters, digits and '-' ({MODEL_NAME_PATTERN})",
        )
    url = registry_url(registry_dir)
    return mirror_dir(url, name) if url is not None else Path(registry_dir) / name


def where(mdir: Path) -> str:
    """How to name a model line to a person: its folder, or its URL for a registry in a bucket."""
    return line_url(mdir) or str(mdir)


@contextmanager
def locked(mdir: Path, timeout: float) -> Iterator[Path]:
    """Hold the exclusive lock of one model line; the folder to write (for a bucket: a private mirror, pushed
    when the block succeeds; tabml.registry.remote)."""
    if line_url(mdir) is not None:
        with remote_lock(mdir, timeout) as work:
            yield work
        return
    with _file_lock(mdir, timeout):
        yield mdir


@contextmanager
def _file_lock(mdir: Path, timeout: float) -> Iterator[None]:
    """The OS releases it if the process dies."""
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
    """The model line's index (rebuilt from disk, with a warning, when index.json is lost or stale)."""
    return current_index(refreshed(mdir)).index


def refreshed(mdir: Path) -> Path:
    """`mdir`, pulled from its bucket first when it mirrors one (a local folder is returned as it is)."""
    pull(mdir)
    return mdir


def commit(mdir: Path, state: IndexState, record: Event | None) -> RegistryIndex:
    """Append `record` to the log, then rewrite index.json from it (caller holds the lock); the new index.

    A registry without a log (older, or its log lost) first gets an `import` event of the index it has.
    With no record, a rebuilt index is written back and nothing is logged."""
    index = state.index
    if not state.events and index.versions:
        index = apply_event(index, append_event(mdir, import_record(index, utc_now())))
    if record is not None:
        index = apply_event(index, append_event(mdir, record))
        pause_at("logged")
    if record is not None or state.rebuilt_because or index is not state.index:
        write_json_atomic(mdir / INDEX_FILE, index.model_dump(mode="json"))
        pause_at("indexed")
    return index


def _moves(before: RegistryIndex, after: RegistryIndex) -> list[tuple[int, str]]:
    return [(version, new) for version, _, new in stage_moves(before, after) if new is not None]


def identical_version(
    mdir: Path, index: RegistryIndex, files: Mapping[str, Path], identity: Collection[str]
) -> int | None:
    """The newest version whose `identity` files (weights, preprocessing) equal `files`, or None."""
    if not identity:
        return None
    wanted = {name: sha256_file(files[name]) for name in identity}
    for entry in reversed(index.versions):
        hashes = manifest_hashes(mdir / entry.path)
        if hashes is not None and all(hashes.get(name) == sha for name, sha in wanted.items()):
            return entry.version
    return None


def record_rerun(
    registry_dir: Path, name: str, version: int, *, lock_timeout: float
) -> tuple[RegistryIndex, RegistryIndex]:
    """Record a registration of a model identical to `version` against it (no new version); (before, after)."""
    with locked(model_dir(registry_dir, name), lock_timeout) as mdir:
        state = current_index(mdir, holding_lock=True)
        if state.index.get(version) is None:
            raise RegistryError(f"{name} has no v{version}", mdir / INDEX_FILE, "run `python -m tabml.registry list`")
        return state.index, commit(mdir, state, rerun_record(version, utc_now()))


def publish(
    registry_dir: Path,
    name: str,
    files: Mapping[str, Path],
    documents: Callable[[int], Mapping[str, object]],
    metrics: Mapping[str, float | None],
    *,
    stage: ActiveStage | None | Callable[[RegistryIndex], ActiveStage | None],
    lock_timeout: float,
    identity: Collection[str] = (),
    key: bytes | None = None,
) -> tuple[VersionEntry, RegistryIndex, RegistryIndex]:
    """Build v<N> in a staging folder, rename it into place, log it and put it in `stage`; (entry, before, after).

    `stage` may be a function of the index as read under the lock: the register stage uses one to refuse
    production if production changed while it was comparing against it. When a version's `identity` files equal
    `files`, the run is recorded against that version and nothing is built (the entry is then in `before`);
    `key` signs the MANIFEST. A crash before the log append leaves an orphan folder (skipped by the next version
    number, invisible to readers) and the previous stages in place."""
    shared = model_dir(registry_dir, name)
    with locked(shared, lock_timeout) as mdir:
        state = current_index(mdir, holding_lock=True)
        index = state.index
        same = identical_version(mdir, index, files, identity)
        if same is not None:
            after = commit(mdir, state, rerun_record(same, utc_now()))
            return after.get(same) or index.versions[-1], index, after
        version = next_version(index, versions_on_disk(mdir))
        chosen = stage(index) if callable(stage) else stage  # before documents(): they may record it
        staging, target = Path(tempfile.mkdtemp(dir=mdir, prefix=".staging-")), mdir / "versions" / f"v{version}"
        try:
            build(staging, name, version, files, documents(version), key)
            target.parent.mkdir(exist_ok=True)
            os.rename(staging, target)  # the package is complete or absent; the log append below registers it
            fsync_dir(target.parent)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        pause_at("renamed")
        now = utc_now()
        entry = VersionEntry(
            version=version,
            path=f"versions/v{version}",
            created_at=now,
            metrics={k: v if v is None or math.isfinite(v) else None for k, v in metrics.items()},
            manifest_sha256=sha256_file(target / MANIFEST_FILE),
        )
        new = index.model_copy(update={"versions": [*index.versions, entry]})
        staged = assign_stage(new, version, now, "register", chosen) if chosen is not None else new
        after = commit(mdir, state, register_record(entry, _moves(new, staged), now))
    if line_url(shared) is not None:  # the package's files in the shared mirror, as a reader would find them
        fetch_version(refreshed(shared), entry.path)
    return after.get(version) or entry, index, after


def _update_index(
    registry_dir: Path,
    name: str,
    lock_timeout: float,
    action: str,
    change: Callable[[RegistryIndex, str], RegistryIndex],
) -> tuple[RegistryIndex, RegistryIndex]:
    with locked(model_dir(registry_dir, name), lock_timeout) as mdir:
        state = current_index(mdir, holding_lock=True)
        now = utc_now()
        moves = _moves(state.index, change(state.index, now))
        after = commit(mdir, state, moves_record(action, moves, now) if moves else None)
    return state.index, after


def promote(
    registry_dir: Path, name: str, version: int, *, lock_timeout: float, stage: ActiveStage = "production"
) -> tuple[RegistryIndex, RegistryIndex]:
    """Put `version` in `stage` (the holder is archived) in one logged index write; returns (before, after)."""
    return _update_index(
        registry_dir, name, lock_timeout, "promote", lambda ix, at: assign_stage(ix, version, at, stage=stage)
    )


def rollback(registry_dir: Path, name: str, *, lock_timeout: float) -> tuple[RegistryIndex, RegistryIndex]:
    """Move production back to the previous production version; returns (before, after)."""

    def change(index: RegistryIndex, at: str) -> RegistryIndex:
        return assign_stage(index, rollback_target(index), at, "rollback")

    return _update_index(registry_dir, name, lock_timeout, "rollback", change)


def repair(registry_dir: Path, name: str, *, lock_timeout: float) -> tuple[IndexState, RegistryIndex]:
    """Rewrite index.json from disk when it is lost or stale, and start the log of an older registry."""
    with locked(model_dir(registry_dir, name), lock_timeout) as mdir:
        state = current_index(mdir, holding_lock=True)
        return state, commit(mdir, state, None)


def load_package(
    registry_dir: Path, name: str, version: int | None = None, stage: Stage | None = None, key: bytes | None = None
) -> Package:
    """Resolve a version (default: production) and verify every file against its MANIFEST.json (and, with a
    signing key, the MANIFEST's signature)."""
    mdir = model_dir(registry_dir, name)
    index = read_index(mdir)
    entry = index.get(version) if version is not None else index.in_stage(stage or "production")
    if entry is None:
        wanted = f"v{version}" if version is not None else f"{stage or 'production'} version"
        raise RegistryError(f"{name} has no {wanted}", mdir / INDEX_FILE, "run `python -m tabml.registry list`")
    path = mdir / entry.path
    if line_url(mdir) is None:
        return Package(name, path, entry, verify(path, entry.manifest_sha256, key))
    fetch_version(mdir, entry.path)
    try:
        return Package(name, path, entry, verify(path, entry.manifest_sha256, key))
    except RegistryError:  # the cached copy may be what is wrong: fetch it again, and refuse what the bucket holds
        fetch_version(mdir, entry.path, again=True)
        return Package(name, path, entry, verify(path, entry.manifest_sha256, key))
