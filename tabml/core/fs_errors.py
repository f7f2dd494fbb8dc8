"""What a failed write means to the user: a full disk, a read-only or forbidden folder, a file size limit.

Libraries report these differently: Python's OSError carries errno and the file name; pyarrow says
`[errno 28]`, safetensors `os error 28` inside another exception type. `file_system_failure` finds the error
anywhere in an exception's chain and turns it into one StageError line (what, where / what to do).
"""

from __future__ import annotations

import errno
import os
import re

from tabml.core.errors import ExitCode, StageError, TransientError

# errno -> (what happened, what to do, whether a rerun alone could get past it)
KNOWN = {
    errno.ENOSPC: ("no space left on the device", "free disk space there (`df -h`), then rerun", True),
    errno.EDQUOT: ("disk quota exceeded", "free space within your quota (or raise it), then rerun", True),
    errno.EROFS: (
        "the file system is read-only",
        "run in a writable checkout, or remount it read-write, then rerun",
        False,
    ),
    errno.EACCES: (
        "permission denied",
        "make the folder writable by this user (`ls -ld` it), or point the path in params.yaml elsewhere",
        False,
    ),
    errno.EPERM: ("operation not permitted", "check the folder's owner and permissions, then rerun", False),
    errno.EFBIG: (
        "file too large for this process's file size limit (`ulimit -f`) or the file system",
        "raise the limit (`ulimit -f unlimited`) or write to a file system that allows larger files",
        False,
    ),
}
_ERRNO_IN_TEXT = re.compile(r"(?:\[errno |os error |code: )(\d+)", re.IGNORECASE)


class FileSystemError(StageError):
    """A write the file system refused for a reason a rerun alone does not fix (read-only, permission, size)."""

    exit_code = ExitCode.BAD_INPUT


class FileSystemFull(TransientError):
    """A full disk or quota: the flow retries with backoff, and a rerun succeeds once space is freed."""


def errno_of(exc: BaseException) -> tuple[int, str | None] | None:
    """(errno, file name) of the first known file-system error in `exc`'s chain, or None."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError) and current.errno in KNOWN:
            name = current.filename
            return current.errno, None if name is None else os.fsdecode(name)
        match = _ERRNO_IN_TEXT.search(str(current))
        if match and int(match.group(1)) in KNOWN:
            return int(match.group(1)), None
        current = current.__cause__ or current.__context__
    return None


_TEMP_NAME = re.compile(r"^\.(?P<name>.+?)(?:\.[0-9a-f]{8,32})?\.(?:tmp|partial)$")


def final_name(path: str) -> str:
    """The file a temp file stood in for (`data/.table.parquet.1a2b3c4d5e6f.tmp` -> `data/table.parquet`)."""
    head, _, tail = path.rpartition("/")
    match = _TEMP_NAME.match(tail)
    return f"{head}/{match['name']}" if match and head else match["name"] if match else path


def file_system_failure(exc: BaseException, stage: str) -> StageError | None:
    """The one-line StageError for a known file-system failure anywhere in `exc`'s chain, or None."""
    found = errno_of(exc)
    if found is None:
        return None
    code, name = found
    what, todo, transient = KNOWN[code]
    where = final_name(name) if name else f"a file the {stage} stage writes"
    return (FileSystemFull if transient else FileSystemError)(what, where, todo)
