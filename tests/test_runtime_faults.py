"""Runtime faults injected into real stage processes of a real workspace: a full disk (a small tmpfs mounted over
the stage's output folder), a read-only file system (that tmpfs remounted read-only), a file size limit
(RLIMIT_FSIZE, as `ulimit -f`). Each ends as one `[stage] FAILED: what, where / what to do` line with the exit
code that says whether a rerun can help, leaves no temp file and no truncated output, and leaves what was there
(the accepted snapshot included) byte-identical. Mounting needs root; without it the tmpfs cases are skipped.
"""

from __future__ import annotations

import errno
import hashlib
import resource
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tabml.core.errors import ExitCode
from tabml.core.fs_errors import errno_of, file_system_failure
from tabml.core.stage import classify
from tests.conftest import make_workspace

STAGES = ("ingest", "validate", "preprocess", "train", "evaluate")
TEMP_NAMES = (".tmp", ".partial", ".staging-")


def stage(root: Path, name: str, limit_bytes: int | None = None) -> subprocess.CompletedProcess[str]:
    """`python -m tasks.<name>` in the workspace, as dvc.yaml runs it (optionally under `ulimit -f`)."""

    def limit() -> None:
        if limit_bytes is not None:
            resource.setrlimit(resource.RLIMIT_FSIZE, (limit_bytes, limit_bytes))

    return subprocess.run(
        [sys.executable, "-m", f"tasks.{name}"], cwd=root, capture_output=True, text=True, preexec_fn=limit
    )


def digests(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.name != "filler"
    }


def temp_files(folder: Path) -> list[str]:
    return [str(p) for p in folder.rglob("*") if any(t in p.name for t in TEMP_NAMES)]


def can_mount(tmp: Path) -> bool:
    target = tmp / "probe"
    target.mkdir()
    ok = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(target)], capture_output=True)
    if ok.returncode == 0:
        subprocess.run(["umount", str(target)], check=True)
    return ok.returncode == 0


@contextmanager
def small_fs(folder: Path, free_bytes: int, read_only: bool = False) -> Iterator[None]:
    """Mount a tmpfs over `folder` holding a copy of its files, with about `free_bytes` left (or read-only)."""
    saved = folder.with_name(f"{folder.name}-saved")
    shutil.copytree(folder, saved)
    used = sum(p.stat().st_size for p in saved.rglob("*") if p.is_file())
    size_kb = (used + free_bytes) // 1024 + 64
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_kb}k", "tmpfs", str(folder)], check=True)
    try:
        shutil.copytree(saved, folder, dirs_exist_ok=True)
        with (folder / "filler").open("wb") as fh:  # take what is left down to `free_bytes`
            try:
                fh.write(b"\0" * max(0, shutil.disk_usage(folder).free - free_bytes))
            except OSError as exc:
                assert exc.errno == errno.ENOSPC
        if read_only:
            subprocess.run(["mount", "-o", "remount,ro", str(folder)], check=True)
        yield
    finally:
        subprocess.run(["umount", str(folder)], check=True)
        shutil.rmtree(saved)


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A workspace whose stages up to evaluate have run once (their outputs are what must stay intact)."""
    root = make_workspace(tmp_path_factory.mktemp("faults") / "ws")
    for name in STAGES:
        done = stage(root, name)
        assert done.returncode == 0, done.stdout + done.stderr
    return root


@pytest.fixture(scope="module")
def mountable(tmp_path_factory: pytest.TempPathFactory) -> None:
    if not can_mount(tmp_path_factory.mktemp("mount")):
        pytest.skip("mounting a tmpfs needs root (or CAP_SYS_ADMIN)")


def failed_line(done: subprocess.CompletedProcess[str], name: str) -> str:
    lines = [line for line in done.stderr.splitlines() if line.startswith(f"[{name}] FAILED: ")]
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr[-3000:]
    assert "what to do: " in done.stderr.split(lines[0], 1)[1].splitlines()[1], done.stderr[-2000:]
    return lines[0]


# Each stage, and the folder its outputs go to (the folder made full).
OUTPUT_FOLDER = {
    "ingest": "data/snapshot",
    "validate": "data/snapshot",  # the accepted snapshot's folder: publishing it fails, the reports do not
    "preprocess": "data/processed",
    "train": "models/train",
    "evaluate": "reports/evaluate",
}


@pytest.mark.slow
@pytest.mark.parametrize("name", STAGES)
def test_a_full_disk_is_one_line_exit_75_no_temp_file_and_what_was_there_unchanged(
    project: Path, mountable: None, name: str
) -> None:
    folder = project / OUTPUT_FOLDER[name]
    before = digests(folder)
    with small_fs(folder, free_bytes=2048):
        done = stage(project, name)
        left = temp_files(folder)
        after = digests(folder)

    line = failed_line(done, name)
    assert done.returncode == ExitCode.TRANSIENT and "no space left on the device" in line
    assert left == [] and after == before  # the accepted snapshot, the old model: byte-identical
    if name == "validate":
        report = (project / "reports/validation.json").read_text()
        assert '"success": false' in report and '"published": false' in report


@pytest.mark.slow
@pytest.mark.parametrize("name", ["ingest", "preprocess"])
def test_a_read_only_file_system_is_one_line_exit_65(project: Path, mountable: None, name: str) -> None:
    folder = project / OUTPUT_FOLDER[name]
    before = digests(folder)
    with small_fs(folder, free_bytes=1 << 20, read_only=True):
        done = stage(project, name)
    assert done.returncode == ExitCode.BAD_INPUT and "the file system is read-only" in failed_line(done, name)
    assert digests(folder) == before


@pytest.mark.slow
def test_a_file_size_limit_is_one_line_exit_65_and_no_truncated_snapshot(project: Path) -> None:
    snapshot = project / "data/snapshot/table.parquet"
    before = digests(snapshot.parent)
    done = stage(project, "ingest", limit_bytes=snapshot.stat().st_size // 2)
    line = failed_line(done, "ingest")
    assert done.returncode == ExitCode.BAD_INPUT and "file too large" in line and "ulimit -f" in done.stderr
    assert digests(snapshot.parent) == before and temp_files(snapshot.parent) == []


@pytest.mark.parametrize(
    ("make", "code", "words"),
    [
        (lambda: OSError(errno.ENOSPC, "No space left on device", "out/x.parquet"), 75, "no space left"),
        (lambda: OSError(errno.EROFS, "Read-only file system", "out/x"), 65, "read-only"),
        (lambda: PermissionError(errno.EACCES, "Permission denied", "out/x"), 65, "permission denied"),
        (lambda: OSError(errno.EFBIG, "File too large"), 65, "file too large"),
        (lambda: OSError("[errno 28] Error writing bytes to file"), 75, "no space left"),  # pyarrow's wording
        (lambda: RuntimeError("IoError(Os { code: 28, kind: StorageFull })"), 75, "no space left"),  # safetensors
    ],
)
def test_every_library_s_wording_of_a_refused_write_is_one_line(
    make: Callable[[], BaseException], code: int, words: str
) -> None:
    exc = make()
    got, message = classify(exc, "ingest")
    assert got == code and words in message and "what to do: " in message
    assert message.count("\n") == 1  # what, where / what to do


def test_the_message_names_the_output_not_the_temp_file_it_was_written_as() -> None:
    failure = file_system_failure(OSError(errno.ENOSPC, "No space", "data/.table.parquet.0123456789ab.tmp"), "x")
    assert failure is not None and str(failure).startswith("data/table.parquet: no space left on the device")
    failure = file_system_failure(OSError(errno.ENOSPC, "No space", ".accepted.parquet.partial"), "x")
    assert failure is not None and str(failure).startswith("accepted.parquet: ")


def test_the_error_is_found_through_the_exception_chain() -> None:
    try:
        try:
            raise OSError(errno.ENOSPC, "No space left on device", "data/x")
        except OSError as inner:
            raise ValueError("writing the table failed") from inner
    except ValueError as outer:
        assert errno_of(outer) == (errno.ENOSPC, "data/x")
        failure = file_system_failure(outer, "ingest")
        assert failure is not None and str(failure).startswith("data/x: no space left on the device")
    assert file_system_failure(ValueError("no errno here"), "ingest") is None
