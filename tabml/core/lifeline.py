"""A stage run by the flow dies with the flow: its own process group, and a watch on the flow's process.

The flow puts its pid in TABML_FLOW_PID. A stage that finds it there leads a process group of its own (its DDP
ranks and workers join it), so the flow can stop the whole stage with one `killpg` (tabml.orchestration) and a
terminal's Ctrl-C still reaches the flow first. When the flow is gone (kill -9, a lost pod: no hook runs there),
the stage's watch sends SIGTERM to its group (training saves `last.ckpt` and stops, as on preemption), then
SIGKILL after a grace period. On Linux, PR_SET_PDEATHSIG does the same at once when the flow is the direct parent.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import sys
import threading
import time
from pathlib import Path

FLOW_PID_ENV = "TABML_FLOW_PID"  # set by the flow: the process a stage lives and dies with
STAGE_GROUP_ENV = "TABML_STAGE_PGID"  # set by the stage for its own children: the group they belong to
POLL_SECONDS = 0.5  # how soon a stage notices that its flow is gone
GRACE_SECONDS = 30.0  # SIGTERM -> SIGKILL: long enough for training to save last.ckpt
PR_SET_PDEATHSIG = 1


def is_alive(pid: int) -> bool:
    """Whether process `pid` runs (a zombie, dead but not yet reaped, counts as gone)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True  # no /proc (macOS): kill(0) said it exists
    return state not in ("Z", "X")


def flow_pid() -> int | None:
    """The flow this process was started by, or None outside a flow."""
    raw = os.environ.get(FLOW_PID_ENV, "")
    return int(raw) if raw.isdigit() else None


def tie_to_flow(stage: str) -> None:
    """Under the flow: lead a process group (unless a parent stage process already does) and watch the flow."""
    pid = flow_pid()
    if pid is None or pid == os.getpid() or os.environ.get(STAGE_GROUP_ENV):
        # not under a flow; a stage called in the flow's own process (a test, a notebook): never regroup it; or a
        # child of a stage process (a DDP rank): its group leader watches
        return
    with contextlib.suppress(OSError):  # already a group or session leader: keep it
        os.setpgid(0, 0)
    os.environ[STAGE_GROUP_ENV] = str(os.getpgrp())
    if sys.platform.startswith("linux") and os.getppid() == pid:
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    watch = threading.Thread(target=_watch, args=(stage, pid), name="flow-lifeline", daemon=True)
    watch.start()


def _watch(stage: str, pid: int) -> None:
    while is_alive(pid):
        time.sleep(POLL_SECONDS)
    group = os.getpgrp()
    print(
        f"[{stage}] FAILED: the flow that started this stage (pid {pid}) is gone; stopping the stage "
        f"(process group {group})\n  what to do: rerun the flow or `dvc repro`: training resumes from last.ckpt",
        file=sys.stderr,
        flush=True,
    )
    kill_group(group, GRACE_SECONDS)


def _group_exists(group: int) -> bool:
    try:
        os.killpg(group, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def signal_group(group: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(group, signum)


def kill_group(group: int, grace_seconds: float) -> None:
    """SIGTERM to the group, SIGKILL to whatever is left after `grace_seconds` (this process included)."""
    signal_group(group, signal.SIGTERM)
    deadline = time.monotonic() + grace_seconds
    while time.monotonic() < deadline and _group_exists(group):
        time.sleep(POLL_SECONDS)
    signal_group(group, signal.SIGKILL)
