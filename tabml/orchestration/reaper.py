"""`python -m tabml.orchestration.reaper <pid>`: when flow process <pid> is gone, stop what it left running.

A flow killed with SIGKILL runs no hook and no atexit: Prefect's temporary server (a uvicorn subprocess) and
any stage it ran would live on. Every process the flow starts inherits TABML_FLOW_PID (tabml.core.lifeline),
so this small watcher, started by the flow's entry point in a session of its own, finds them by that mark once
the flow is gone: SIGTERM, then SIGKILL after the grace period. A flow that ends normally leaves nothing to find.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from contextlib import suppress

from tabml.core.lifeline import FLOW_PID_ENV, GRACE_SECONDS, POLL_SECONDS, is_alive


def left_behind(flow_pid: int) -> list[object]:
    """Processes (psutil) that carry this flow's mark, this watcher excepted."""
    import psutil

    found = []
    for proc in psutil.process_iter():
        if proc.pid == os.getpid():
            continue
        try:
            if proc.environ().get(FLOW_PID_ENV) == str(flow_pid):
                found.append(proc)
        except (psutil.Error, OSError):  # gone meanwhile, another user's, a kernel thread
            continue
    return found


def reap(flow_pid: int, grace_seconds: float = GRACE_SECONDS) -> list[int]:
    """Stop every process the gone flow left; the pids stopped."""
    import psutil

    procs = left_behind(flow_pid)
    for proc in procs:
        with suppress(psutil.Error):
            proc.terminate()  # type: ignore[attr-defined]
    _, alive = psutil.wait_procs(procs, timeout=grace_seconds)  # type: ignore[arg-type]
    for proc in alive:
        with suppress(psutil.Error):
            proc.kill()
    return [proc.pid for proc in procs]  # type: ignore[attr-defined]


def guard_flow_process() -> subprocess.Popen[bytes]:
    """Entry points of a flow, first thing: mark this process's children and start their watcher, in a session
    of its own (a Ctrl-C or a kill of the flow's group misses it)."""
    os.environ[FLOW_PID_ENV] = str(os.getpid())  # inherited by the temporary server and every stage
    command = [sys.executable, "-m", "tabml.orchestration.reaper", str(os.getpid())]
    return subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, start_new_session=True)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    flow_pid = int(args[0])
    while is_alive(flow_pid):
        time.sleep(POLL_SECONDS)
    stopped = reap(flow_pid)
    if stopped:
        print(
            f"[flow] the flow (pid {flow_pid}) is gone: stopped the {len(stopped)} process(es) it left running "
            f"(pids {', '.join(map(str, stopped))}: its temporary Prefect server, a stage)",
            file=sys.stderr,
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
