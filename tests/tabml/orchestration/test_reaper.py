"""What a flow killed with SIGKILL left running (its temporary Prefect server, a stage) is stopped by its reaper."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tabml.core.lifeline import is_alive

# A flow entry point: guard first, then a child that stands for Prefect's temporary server; prints its pid.
FLOW_PY = """\
import subprocess, sys, time
from tabml.orchestration.reaper import guard_flow_process
reaper = guard_flow_process()
server = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
print(server.pid, reaper.pid, flush=True)
time.sleep(600)
"""


def test_the_reaper_stops_what_the_killed_flow_started_and_nothing_else(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(Path.cwd())}
    bystander = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])  # no flow's mark
    flow = subprocess.Popen(
        [sys.executable, "-c", FLOW_PY], env=env, stdout=subprocess.PIPE, text=True, start_new_session=True
    )
    try:
        assert flow.stdout is not None
        server, reaper = map(int, flow.stdout.readline().split())
        os.kill(flow.pid, signal.SIGKILL)
        flow.wait()
        deadline = time.monotonic() + 90
        while is_alive(server) or is_alive(reaper):
            assert time.monotonic() < deadline, "the temporary server outlived its flow"
            time.sleep(0.1)
        assert bystander.poll() is None  # only processes carrying the flow's mark are stopped
    finally:
        bystander.kill()
        bystander.wait()
        if flow.poll() is None:
            os.killpg(flow.pid, signal.SIGKILL)
