"""One pipeline run per workspace at a time: an `fcntl` lock that waits, with a timeout, and names its holder.

DVC's own lock fails at once when another `dvc` process holds it; a scheduled run that collides with a
manual one should wait instead. The OS releases the lock when its process dies, so a crash never leaves
a stale lock behind. The file records the holder (run, pid, host, start), and a waiting run says whether that
process still runs. The file lives in `.dvc/tmp/`, which DVC keeps out of git.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

from tabml.core.lifeline import is_alive

LOCK_FILE = Path(".dvc/tmp/tabml-pipeline.lock")


class WorkspaceLockTimeout(RuntimeError):
    """Another run held the workspace for longer than we were willing to wait."""

    def __init__(self, path: Path, timeout: float, holder: str) -> None:
        self.path, self.timeout, self.holder = path, timeout, holder
        super().__init__(
            f"{path}: another pipeline run still holds this workspace after {timeout:g}s ({holder})\n"
            "  what to do: let it finish (or stop it), then trigger again; or raise "
            "orchestration.lock_timeout_seconds in params.yaml."
        )


def lock_path(root: Path) -> Path:
    """`<root>/.dvc/tmp/tabml-pipeline.lock`; the project must be a DVC repo."""
    if not (root / ".dvc").is_dir():
        raise FileNotFoundError(f"{root}: not a DVC repository (no .dvc/). Run `dvc init` there, or pass the root.")
    return root / LOCK_FILE


def describe_holder(text: str) -> str:
    """Who holds the lock, from what the holder wrote into the file: `flow run 1a2b (pid 42 on host, since ...,
    running)`; on this host it also says whether that process still runs (a gone holder's lock is held by a
    process it left behind, which the OS frees when that one ends)."""
    try:
        info = json.loads(text)
        where = f"pid {info['pid']} on {info['host']}, since {info['since']}"
        if info["host"] == socket.gethostname():
            where += ", running" if is_alive(int(info["pid"])) else ", its process is gone (a child may hold the lock)"
        return f"{info['holder']} ({where})"
    except (ValueError, KeyError, TypeError):
        return "holder unknown"


@contextmanager
def workspace_lock(
    root: Path,
    timeout: float,
    holder: str,
    on_wait: Callable[[str], object] = lambda message: None,
    poll_seconds: float = 0.2,
) -> Iterator[Path]:
    """Hold the workspace for one run; wait up to `timeout` seconds for another run, telling `on_wait` once."""
    path = lock_path(root.resolve())
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a+") as fh:
        _acquire(fh, path, timeout, on_wait, poll_seconds)
        try:
            _write(fh, holder)
            yield path
        finally:
            _write(fh, None)
            fcntl.flock(fh, fcntl.LOCK_UN)


def _acquire(fh: IO[str], path: Path, timeout: float, on_wait: Callable[[str], object], poll_seconds: float) -> None:
    deadline = time.monotonic() + timeout
    told = False
    while True:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            holder = describe_holder(path.read_text())
            if time.monotonic() >= deadline:
                raise WorkspaceLockTimeout(path, timeout, holder) from None
            if not told:
                on_wait(f"waiting up to {timeout:g}s for the workspace: another run holds it ({holder})")
                told = True
            time.sleep(poll_seconds)


def _write(fh: IO[str], holder: str | None) -> None:
    fh.seek(0)
    fh.truncate()
    if holder is not None:
        since = datetime.now(UTC).isoformat(timespec="seconds")
        fh.write(json.dumps({"holder": holder, "pid": os.getpid(), "host": socket.gethostname(), "since": since}))
    fh.flush()
