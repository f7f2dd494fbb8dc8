"""index.json as a cache: read it when it matches the event log, rebuild it from the log and the version folders
when it is lost, unreadable or behind (a crash between the log append and the index write).

A version is what its folder's MANIFEST.json says (`name`, `version`); its stages are what events.jsonl says.
Without any log (a registry from before the log existed that also lost its index) the folders are all there is:
every package whose MANIFEST names this line is listed with no stage, and the warning says so.
"""

from __future__ import annotations

import fcntl
import json
import logging
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from pydantic import ValidationError

from tabml.core.files import sha256_file
from tabml.registry.events import EVENTS_FILE, Event, read_events, replay
from tabml.registry.index import RegistryError, RegistryIndex, VersionEntry
from tabml.registry.package import MANIFEST_FILE, METRICS_FILE

log = logging.getLogger(__name__)

INDEX_FILE = "index.json"
LOCK_FILE = ".lock"
VERSION_FOLDER = re.compile(r"^v([0-9]+)$")


@dataclass(frozen=True)
class IndexState:
    """The index to use, and why it was rebuilt (None: index.json was current)."""

    index: RegistryIndex
    rebuilt_because: str | None
    events: list[Event]


def versions_on_disk(mdir: Path) -> list[int]:
    folder = mdir / "versions"
    names = [p.name for p in folder.iterdir()] if folder.is_dir() else []
    return sorted(int(m.group(1)) for m in map(VERSION_FOLDER.match, names) if m)


def _entry_from_folder(mdir: Path, version: int) -> VersionEntry | None:
    """What a package says about itself, or None (with a warning) when its MANIFEST is not this line's."""
    folder = mdir / "versions" / f"v{version}"
    try:
        manifest = json.loads((folder / MANIFEST_FILE).read_text())
        ok = manifest.get("name") == mdir.name and manifest.get("version") == version
    except (OSError, ValueError, AttributeError):
        ok = False
    if not ok:
        log.warning("%s: no MANIFEST.json for %s v%d in it; left out of the index", folder, mdir.name, version)
        return None
    metrics_doc = json.loads((folder / METRICS_FILE).read_text()) if (folder / METRICS_FILE).is_file() else {}
    metrics = metrics_doc.get("test") or {}
    stamp = datetime.fromtimestamp((folder / MANIFEST_FILE).stat().st_mtime, UTC)
    return VersionEntry(
        version=version,
        path=f"versions/v{version}",
        created_at=stamp.isoformat(timespec="microseconds").replace("+00:00", "Z"),
        metrics={k: v for k, v in metrics.items() if isinstance(v, int | float)},
        manifest_sha256=sha256_file(folder / MANIFEST_FILE),
    )


def rebuild(mdir: Path, events: list[Event]) -> RegistryIndex:
    """The index from the event log; from the version folders alone when there is no log."""
    if events:
        index = replay(mdir.name, events)
        orphans = sorted(set(versions_on_disk(mdir)) - {v.version for v in index.versions})
        if orphans:  # a crash between the rename and the log append: never registered, skipped by next_version
            log.warning("%s: version folder(s) %s were never registered (a crash); ignored", mdir, orphans)
        return index
    found = [_entry_from_folder(mdir, v) for v in versions_on_disk(mdir)]
    return RegistryIndex(name=mdir.name, versions=[e for e in found if e is not None])


def _cached(mdir: Path) -> tuple[RegistryIndex | None, str]:
    path = mdir / INDEX_FILE
    if not path.exists():
        return None, "index.json is missing"
    try:
        return RegistryIndex.model_validate_json(path.read_bytes()), ""
    except (ValidationError, ValueError, OSError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return None, f"index.json is unreadable ({first})"


def _writer_active(mdir: Path) -> bool:
    """Whether a writer holds the model line's lock right now (tabml.registry.store.locked)."""
    try:
        with (mdir / LOCK_FILE).open("rb") as fh:
            fcntl.flock(fh, fcntl.LOCK_SH | fcntl.LOCK_NB)
            fcntl.flock(fh, fcntl.LOCK_UN)
    except BlockingIOError:
        return True
    except OSError:
        return False
    return False


def current_index(mdir: Path, holding_lock: bool = False) -> IndexState:
    """index.json when it matches events.jsonl; otherwise the index rebuilt from disk, and why (writers pass
    `holding_lock`; for a reader, an index behind the log while a writer holds the lock is a write in flight)."""
    events, _ = read_events(mdir)
    cached, problem = _cached(mdir)
    head = events[-1]["sha"] if events else None
    if cached is not None and (cached.log_head == head or not events):
        if not events and cached.versions and cached.log_head is not None:
            log.warning("%s: %s is missing; index.json is used and the log restarts from it", mdir, EVENTS_FILE)
        return IndexState(cached, None, events)
    if cached is not None and cached.log_head is not None and cached.log_head not in {e["sha"] for e in events}:
        raise RegistryError(
            "index.json includes events that events.jsonl lacks (the log lost its end or was restored from an older "
            "copy)",
            mdir / EVENTS_FILE,
            f"restore the full log, or move it aside to rebuild it from index.json: mv {mdir / EVENTS_FILE} "
            f"{mdir / EVENTS_FILE}.old && python -m tabml.registry repair",
        )
    if cached is not None:
        if not holding_lock and _writer_active(mdir):  # a write between its log append and its index write: not a crash
            return IndexState(rebuild(mdir, events), None, events)
        problem = "index.json is behind events.jsonl (a crash before the index write)"
    if not events and not versions_on_disk(mdir):
        return IndexState(RegistryIndex(name=mdir.name), None, events)  # a new model line
    rebuilt = rebuild(mdir, events)
    source = f"{len(events)} event(s) of {EVENTS_FILE}" if events else "the version folders alone (no event log)"
    log.warning(
        "registry %s: %s; rebuilt %d version(s) from %s (rewritten by the next registry write or "
        "`python -m tabml.registry repair`)",
        mdir,
        problem,
        len(rebuilt.versions),
        source,
    )
    return IndexState(rebuilt, problem, events)
