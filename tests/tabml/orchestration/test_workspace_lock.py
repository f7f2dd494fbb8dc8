"""The workspace lock across real processes: waits for the holder, times out naming it, dies with its process."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tabml.orchestration.workspace_lock import LOCK_FILE, WorkspaceLockTimeout, describe_holder, workspace_lock

# Holds the lock of argv[1] for argv[2] seconds; prints "held" once it has it.
HOLDER_PY = """\
import sys, time
from pathlib import Path
from tabml.orchestration.workspace_lock import workspace_lock
with workspace_lock(Path(sys.argv[1]), timeout=30, holder="flow run other-run"):
    print("held", flush=True)
    time.sleep(float(sys.argv[2]))
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / ".dvc").mkdir()
    return tmp_path


def hold_in_another_process(root: Path, seconds: float) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER_PY, str(root), str(seconds)], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
    return proc


def test_the_holder_is_written_while_held_and_cleared_after(project: Path) -> None:
    with workspace_lock(project, timeout=1, holder="flow run mine") as path:
        assert path == project / LOCK_FILE
        info = json.loads(path.read_text())
        assert info["holder"] == "flow run mine" and info["pid"] == os.getpid()
        assert describe_holder(path.read_text()).startswith("flow run mine (pid ")
    assert path.read_text() == ""
    with workspace_lock(project, timeout=1, holder="again"):  # released: free at once
        pass


def test_a_second_run_waits_for_the_first_then_gets_the_lock(project: Path) -> None:
    holder = hold_in_another_process(project, seconds=1.5)
    told: list[str] = []
    started = time.monotonic()
    with workspace_lock(project, timeout=30, holder="second", on_wait=told.append):
        waited = time.monotonic() - started
        assert holder.poll() is not None, "got the lock while the first run still held it"
    holder.wait()
    assert waited > 0.5
    assert len(told) == 1 and "another run holds it (flow run other-run (pid" in told[0]


def test_timeout_names_the_holder_and_the_setting(project: Path) -> None:
    holder = hold_in_another_process(project, seconds=30)
    try:
        expected = r"after 0\.5s \(flow run other-run \(pid \d+"
        with (
            pytest.raises(WorkspaceLockTimeout, match=expected) as caught,
            workspace_lock(project, timeout=0.5, holder="second"),
        ):
            pytest.fail("entered a workspace another run holds")
        assert "orchestration.lock_timeout_seconds" in str(caught.value)
    finally:
        holder.kill()
        holder.wait()


def test_a_killed_holder_leaves_no_stale_lock(project: Path) -> None:
    holder = hold_in_another_process(project, seconds=60)
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    started = time.monotonic()
    with workspace_lock(project, timeout=5, holder="after the crash"):
        assert time.monotonic() - started < 1


def test_outside_a_dvc_repo_it_says_so(tmp_path: Path) -> None:
    with (
        pytest.raises(FileNotFoundError, match=r"not a DVC repository.*dvc init"),
        workspace_lock(tmp_path, timeout=1, holder="x"),
    ):
        pass
