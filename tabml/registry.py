"""The model registry of record: checksummed packages on disk, published atomically under a file lock.

Why files and not GTO tags or W&B artifacts as the record: it works without git or a W&B account; a
version appears with one `os.rename` and the index changes with one `os.replace`, so a crash leaves the
previous state; writers are serialised by an `fcntl` lock, so concurrent runs get distinct versions;
and one git commit can carry several versions (a pipeline re-run on the same HEAD). GTO tags
(`tabml.gto_tags`) are an optional mirror of this record for git-based workflows.

Layout under `register.registry_dir`:
    <name>/index.json        versions: created_at, metrics, stage and stage history, MANIFEST.json sha256
    <name>/.lock             held by every writer
    <name>/versions/v<N>/    one package; MANIFEST.json holds the sha256 of every other file
    <name>/.staging-*/       a package being built (same filesystem, so publishing is a rename)
"""

from __future__ import annotations

import argparse
import fcntl
import hashlib
import json
import math
import os
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from tabml.cli import StageError
from tabml.params import DEFAULT_PARAMS, ParamsError, RegisterParams, load_params

Stage = Literal["production", "archived"]
Action = Literal["register", "promote", "rollback"]
INDEX_FILE = "index.json"
LOCK_FILE = ".lock"
MANIFEST_FILE = "MANIFEST.json"


class RegistryError(StageError):
    """A registry operation that cannot go ahead; says which file and what to do."""


class StageEvent(BaseModel):
    model_config = ConfigDict(extra="forbid")
    stage: Stage
    at: str
    action: Action


class VersionEntry(BaseModel):
    model_config = ConfigDict(extra="forbid")
    version: int
    path: str  # relative to the model line's folder
    created_at: str
    metrics: dict[str, float | None]
    manifest_sha256: str
    stage: Stage | None = None
    stages: list[StageEvent] = []


class RegistryIndex(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    versions: list[VersionEntry] = []

    def get(self, version: int) -> VersionEntry | None:
        return next((v for v in self.versions if v.version == version), None)

    def in_stage(self, stage: Stage) -> VersionEntry | None:
        return next((v for v in reversed(self.versions) if v.stage == stage), None)


@dataclass(frozen=True)
class Package:
    """A verified package: every file matched MANIFEST.json."""

    name: str
    path: Path
    entry: VersionEntry
    sha256: dict[str, str]


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


# ---- pure core: index transitions ---------------------------------------------------------------


def production_version(index: RegistryIndex) -> int | None:
    entry = index.in_stage("production")
    return entry.version if entry else None


def next_version(index: RegistryIndex, on_disk: list[int]) -> int:
    """Highest version seen in the index or on disk, plus one (an orphan folder from a crash is skipped)."""
    return max([0, *(v.version for v in index.versions), *on_disk]) + 1


def assign_stage(index: RegistryIndex, version: int, at: str, action: Action = "promote") -> RegistryIndex:
    """Make `version` production; the current production version becomes archived."""
    entry = index.get(version)
    if entry is None:
        raise RegistryError(f"{index.name} has no v{version}", todo="see `python -m tabml.registry list`")
    if entry.stage == "production":
        return index

    def moved(entry: VersionEntry, stage: Stage) -> VersionEntry:
        event = StageEvent(stage=stage, at=at, action=action)
        return entry.model_copy(update={"stage": stage, "stages": [*entry.stages, event]})

    versions = [
        moved(e, "production") if e.version == version else moved(e, "archived") if e.stage == "production" else e
        for e in index.versions
    ]
    return index.model_copy(update={"versions": versions})


def rollback_target(index: RegistryIndex) -> int:
    """The version that held production before the current one, skipping versions already rolled back."""
    current = index.in_stage("production")
    if current is None:
        raise RegistryError(f"{index.name} has no production version", todo="promote one first")
    rolled_back = {v.version for v in index.versions if v.stage == "archived" and v.stages[-1].action == "rollback"}
    events = sorted((e.at, v.version) for v in index.versions for e in v.stages if e.stage == "production")
    for _, version in reversed(events):
        if version != current.version and version not in rolled_back:
            return version
    raise RegistryError(
        f"{index.name} v{current.version} is the only production version so far",
        todo="nothing to roll back to; promote a version explicitly",
    )


# ---- I/O edges ------------------------------------------------------------------------------------


def sha256_file(path: Path) -> str:
    with path.open("rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _copy(source: Path, dest: Path) -> None:
    with source.open("rb") as src, dest.open("wb") as dst:
        shutil.copyfileobj(src, dst, 1 << 20)
        dst.flush()
        os.fsync(dst.fileno())


def _write_json(path: Path, document: object) -> None:
    with path.open("w") as fh:
        fh.write(json.dumps(document, indent=2) + "\n")
        fh.flush()
        os.fsync(fh.fileno())


def write_json_atomic(path: Path, document: object) -> None:
    """Write-temp, fsync, os.replace, fsync the folder: readers see the old or the new file, never half."""
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        _write_json(tmp, document)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    _fsync_dir(path.parent)


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
                    raise RegistryError(what, mdir / LOCK_FILE, todo) from None
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


def _build(staging: Path, name: str, version: int, files: Mapping[str, Path], documents: Mapping[str, object]) -> None:
    for file_name, source in files.items():
        _copy(source, staging / file_name)
    for file_name, document in documents.items():
        _write_json(staging / file_name, document)
    hashes = {p.name: sha256_file(p) for p in sorted(staging.iterdir())}
    _write_json(staging / MANIFEST_FILE, {"name": name, "version": version, "sha256": hashes})
    _fsync_dir(staging)


def publish(
    registry_dir: Path,
    name: str,
    files: Mapping[str, Path],
    documents: Callable[[int], Mapping[str, object]],
    metrics: Mapping[str, float | None],
    *,
    stage: Stage | None,
    lock_timeout: float,
) -> tuple[VersionEntry, int | None]:
    """Build v<N> in staging, rename it into place, update the index; returns (entry, previous production)."""
    mdir = model_dir(registry_dir, name)
    with locked(mdir, lock_timeout):
        index = read_index(mdir)
        version = next_version(index, _versions_on_disk(mdir))
        staging, target = Path(tempfile.mkdtemp(dir=mdir, prefix=".staging-")), mdir / "versions" / f"v{version}"
        try:
            _build(staging, name, version, files, documents(version))
            target.parent.mkdir(exist_ok=True)
            os.rename(staging, target)  # the commit point: the version is complete or absent
            _fsync_dir(target.parent)
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
        if stage is not None:
            new = assign_stage(new, version, now, "register")
        write_json_atomic(mdir / INDEX_FILE, new.model_dump(mode="json"))
    return new.get(version) or entry, production_version(index)


def _update_index(
    registry_dir: Path, name: str, lock_timeout: float, change: Callable[[RegistryIndex], RegistryIndex]
) -> tuple[RegistryIndex, RegistryIndex]:
    mdir = model_dir(registry_dir, name)
    with locked(mdir, lock_timeout):
        before = read_index(mdir)
        after = change(before)
        write_json_atomic(mdir / INDEX_FILE, after.model_dump(mode="json"))
    return before, after


def promote(registry_dir: Path, name: str, version: int, *, lock_timeout: float) -> int | None:
    """Make `version` production (the previous one is archived); returns the previous production version."""
    before, _ = _update_index(registry_dir, name, lock_timeout, lambda ix: assign_stage(ix, version, utc_now()))
    return production_version(before)


def rollback(registry_dir: Path, name: str, *, lock_timeout: float) -> tuple[int | None, int | None]:
    """Move production back to the previous production version; returns (from, to)."""

    def change(index: RegistryIndex) -> RegistryIndex:
        return assign_stage(index, rollback_target(index), utc_now(), "rollback")

    before, after = _update_index(registry_dir, name, lock_timeout, change)
    return production_version(before), production_version(after)


def load_package(registry_dir: Path, name: str, version: int | None = None, stage: Stage | None = None) -> Package:
    """Resolve a version (default: production) and verify every file against MANIFEST.json."""
    mdir = model_dir(registry_dir, name)
    index = read_index(mdir)
    entry = index.get(version) if version is not None else index.in_stage(stage or "production")
    if entry is None:
        wanted = f"v{version}" if version is not None else f"{stage or 'production'} version"
        raise RegistryError(f"{name} has no {wanted}", mdir / INDEX_FILE, "run `python -m tabml.registry list`")
    path, todo = mdir / entry.path, "do not use this package; register the model again or restore the folder"
    manifest = path / MANIFEST_FILE
    if not manifest.exists() or sha256_file(manifest) != entry.manifest_sha256:
        raise RegistryError("MANIFEST.json is missing or does not match index.json", manifest, todo)
    hashes: dict[str, str] = json.loads(manifest.read_text())["sha256"]
    present = {p.name for p in path.iterdir()} - {MANIFEST_FILE}
    if present != set(hashes):
        raise RegistryError(f"files differ from MANIFEST.json: {sorted(present ^ set(hashes))}", path, todo)
    for file_name, expected in hashes.items():
        if sha256_file(path / file_name) != expected:
            raise RegistryError("sha256 does not match MANIFEST.json: the file was modified", path / file_name, todo)
    return Package(name, path, entry, hashes)


# ---- command line: python -m tabml.registry list|show|promote|rollback ---------------------------


def _version_arg(text: str) -> int:
    digits = text.removeprefix("v")
    if not digits.isdigit():
        raise argparse.ArgumentTypeError(f"not a version: {text!r} (write 3 or v3)")
    return int(digits)


def _summary(entry: VersionEntry) -> str:
    metrics = " ".join(f"{k}={v:.4g}" for k, v in entry.metrics.items() if v is not None)
    return f"  v{entry.version:<4} {entry.stage or '-':<11} {entry.created_at}  {metrics}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tabml.registry", description="Inspect and move registry stages.")
    parser.add_argument("--params", type=Path, default=DEFAULT_PARAMS, help="params file (default: params.yaml)")
    parser.add_argument("--registry-dir", type=Path, help="default: register.registry_dir from params")
    parser.add_argument("--name", help="model line (default: data.name from params)")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="versions with stage, date and test metrics")
    which = sub.add_parser("show", help="one version as JSON, after verifying its files").add_mutually_exclusive_group()
    which.add_argument("--version", type=_version_arg)
    which.add_argument("--stage", choices=["production", "archived"])
    sub.add_parser("promote", help="make a version production").add_argument("version", type=_version_arg)
    sub.add_parser("rollback", help="move production back to the previous production version")
    args = parser.parse_args(argv)
    try:
        params = load_params(args.params) if args.params.exists() or not (args.registry_dir and args.name) else None
        registry_dir = args.registry_dir or params.register_.registry_dir  # type: ignore[union-attr]
        name = args.name or params.data.name  # type: ignore[union-attr]
        p = params.register_ if params else None
        timeout = p.lock_timeout_seconds if p else RegisterParams.model_fields["lock_timeout_seconds"].default
        moved = None
        if args.command == "list":
            index = read_index(model_dir(registry_dir, name))
            print(f"{name} ({model_dir(registry_dir, name)}): {len(index.versions)} version(s)")
            print("\n".join(_summary(entry) for entry in index.versions))
        elif args.command == "show":
            package = load_package(registry_dir, name, args.version, args.stage)
            shown = {"name": name, "dir": str(package.path), "verified": True, **package.entry.model_dump()}
            print(json.dumps(shown, indent=2))
        elif args.command == "promote":
            previous, moved = promote(registry_dir, name, args.version, lock_timeout=timeout), args.version
            print(
                f"promoted {name} v{moved} to production"
                + (f" (v{previous} archived)" if previous not in (None, moved) else "")
            )
        else:
            previous, moved = rollback(registry_dir, name, lock_timeout=timeout)
            print(f"rolled back {name}: production v{previous} -> v{moved} (v{previous} archived)")
        if moved is not None and p is not None and p.gto_tags:
            from tabml.gto_tags import mirror_assignment

            with locked(model_dir(registry_dir, name), timeout):
                tags = mirror_assignment(Path.cwd(), name, moved, previous)
            print(f"GTO tags: {', '.join(tags) if tags is not None else 'skipped (see warning)'}")
    except (StageError, ParamsError) as exc:
        print(f"[registry] FAILED: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
