"""File helpers every artifact writer shares: checksums, durable copies, atomic writes, UTC timestamps."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any


def utc_now() -> str:
    """`2025-01-01T03:00:00.123456Z`: microseconds, so events of one second keep their order."""
    return datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def sha256_file(path: Path) -> str:
    with path.open("rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def fsync_dir(path: Path) -> None:
    """Make a rename or a new file in `path` durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def copy_durable(source: Path, dest: Path) -> None:
    """Copy and fsync: the bytes are on disk before the caller renames anything into place."""
    with source.open("rb") as src, dest.open("wb") as dst:
        shutil.copyfileobj(src, dst, 1 << 20)
        dst.flush()
        os.fsync(dst.fileno())


def write_json_durable(path: Path, document: object) -> None:
    """Indented JSON, fsynced (for files inside a folder that is renamed into place afterwards)."""
    with path.open("w") as fh:
        fh.write(json.dumps(document, indent=2) + "\n")
        fh.flush()
        os.fsync(fh.fileno())


def write_json_atomic(path: Path, document: object) -> None:
    """Write-temp, fsync, os.replace, fsync the folder: readers see the old or the new file, never half."""
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        write_json_durable(tmp, document)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    fsync_dir(path.parent)


def read_json_object(path: Path | None) -> dict[str, Any] | None:
    """The JSON object in `path`, or None when there is no path, no file, or no JSON object in it (for reports
    that summaries read and that may legitimately be missing)."""
    if path is None:
        return None
    try:
        document = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError):
        return None
    return document if isinstance(document, dict) else None


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """A temp name beside `path` to write to: renamed over `path` when the block succeeds, removed when it fails
    (a full disk, a file size limit, a crash), so a failed write leaves neither half a file nor a temp file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:12]}.tmp")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_text_atomic(path: Path, text: str) -> Path:
    """`path.write_text(text)`, whole or not at all (atomic_path)."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return path
