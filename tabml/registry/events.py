"""The stage history of a model line as an append-only, checksummed event log: `<name>/events.jsonl`.

One JSON line per registry write, appended (and fsynced) under the registry lock *before* index.json is
replaced, so the log is the record and the index a cache of it plus the version folders. Each line carries its
own `sha` (sha256 of its canonical JSON without `sha`) and `prev` (the sha of the line before; 64 zeros for
the first): an edited or reordered line breaks the chain and is reported, never skipped. A last line without its
newline is a write cut short by a crash: it is dropped (with a warning) and cut off by the next append.

Actions: `register` (a new version: its entry, then its stage moves), `promote` and `rollback` (stage moves),
`rerun` (an identical model registered again: recorded against the existing version) and `import` (the whole
index of a registry written before this log existed).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Any

from tabml.registry.index import RegistryError, RegistryIndex, StageEvent, VersionEntry

log = logging.getLogger(__name__)

EVENTS_FILE = "events.jsonl"
GENESIS = "0" * 64
RESTORE_TODO = "restore events.jsonl from a backup (index.json and the version folders are untouched)"
Event = dict[str, Any]


def _digest(record: Event) -> str:
    body = {k: v for k, v in record.items() if k != "sha"}
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def sealed(record: Event, prev: str, seq: int) -> Event:
    """The record with its place in the chain: `seq`, `prev` and its own `sha`."""
    body = {**record, "seq": seq, "prev": prev}
    return {**body, "sha": _digest(body)}


def read_events(mdir: Path) -> tuple[list[Event], int]:
    """The verified events and the byte length they span (a torn last line is left out, with a warning)."""
    path = mdir / EVENTS_FILE
    data = path.read_bytes() if path.exists() else b""
    events: list[Event] = []
    good, prev = 0, GENESIS
    for number, line in enumerate(data.splitlines(keepends=True), start=1):
        if not line.endswith(b"\n"):
            log.warning("%s: line %d is incomplete (a write cut short); ignoring it", path, number)
            break
        try:
            record = json.loads(line)
            ok = isinstance(record, dict) and record.get("prev") == prev and record.get("sha") == _digest(record)
        except ValueError:
            ok = False
        if not ok:
            raise RegistryError(f"line {number} fails its checksum chain: the log was edited", path, RESTORE_TODO)
        events.append(record)
        good, prev = good + len(line), record["sha"]
    return events, good


def append_event(mdir: Path, record: Event) -> Event:
    """Seal `record` after the last good line, append it durably and return it (caller holds the lock)."""
    events, good = read_events(mdir)
    prev = events[-1]["sha"] if events else GENESIS
    event = sealed(record, prev, len(events) + 1)
    line = (json.dumps(event, sort_keys=True, separators=(",", ":")) + "\n").encode()
    fd = os.open(mdir / EVENTS_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        os.ftruncate(fd, good)  # cut a torn line off
        os.lseek(fd, good, os.SEEK_SET)
        os.write(fd, line)
        os.fsync(fd)
    finally:
        os.close(fd)
    return event


def register_record(entry: VersionEntry, moves: list[tuple[int, str]], at: str) -> Event:
    unstaged = entry.model_dump(mode="json", exclude={"stage", "stages", "reruns"})
    return {"action": "register", "at": at, "entry": unstaged, "moves": [list(m) for m in moves]}


def moves_record(action: str, moves: list[tuple[int, str]], at: str) -> Event:
    return {"action": action, "at": at, "moves": [list(m) for m in moves]}


def rerun_record(version: int, at: str) -> Event:
    return {"action": "rerun", "at": at, "version": version}


def import_record(index: RegistryIndex, at: str) -> Event:
    return {"action": "import", "at": at, "versions": [v.model_dump(mode="json") for v in index.versions]}


def apply_event(index: RegistryIndex, event: Event) -> RegistryIndex:
    """Pure: the index after one event (what writers do, replayed)."""
    versions = {v.version: v for v in index.versions}
    action, at = event["action"], event["at"]
    if action == "import":
        versions = {v["version"]: VersionEntry.model_validate(v) for v in event["versions"]}
    elif action == "register":
        entry = VersionEntry.model_validate(event["entry"])
        versions[entry.version] = entry
    elif action == "rerun":
        entry = versions[event["version"]]
        versions[entry.version] = entry.model_copy(update={"reruns": [*entry.reruns, at]})
    stage_action = "register" if action == "register" else action
    for version, stage in event.get("moves", []):
        entry = versions[version]
        moved = StageEvent.model_validate({"stage": stage, "at": at, "action": stage_action})
        versions[version] = entry.model_copy(update={"stage": stage, "stages": [*entry.stages, moved]})
    ordered = [versions[v] for v in sorted(versions)]
    return index.model_copy(update={"versions": ordered, "log_head": event["sha"]})


def replay(name: str, events: list[Event]) -> RegistryIndex:
    """Pure: the index the events describe."""
    index = RegistryIndex(name=name)
    for event in events:
        try:
            index = apply_event(index, event)
        except (KeyError, ValueError) as exc:
            what = f"event {event.get('seq')} cannot be replayed ({exc})"
            raise RegistryError(what, EVENTS_FILE, RESTORE_TODO) from None
    return index
