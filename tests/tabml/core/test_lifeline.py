"""A stage started by a flow leads its own process group and stops, with all it started, when the flow dies."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tabml.core.lifeline import FLOW_PID_ENV, STAGE_GROUP_ENV, is_alive, tie_to_flow

# A stage (through a shell, as DVC runs it, so the flow is not its parent): ties itself to the flow, starts a
# worker of its own, records the pids, and would run for ten minutes.
STAGE_PY = """\
import json, os, subprocess, sys, time
from tabml.core.lifeline import tie_to_flow
tie_to_flow("toy")
worker = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
record = {"stage": os.getpid(), "group": os.getpgrp(), "worker": worker.pid, "worker_group": os.getpgid(worker.pid)}
with open(sys.argv[1] + ".tmp", "w") as fh:
    json.dump(record, fh)
os.replace(sys.argv[1] + ".tmp", sys.argv[1])
time.sleep(600)
"""
FLOW_PY = """\
import os, subprocess, sys, time
os.environ["TABML_FLOW_PID"] = str(os.getpid())
stage = sys.argv[1], sys.argv[2]
subprocess.Popen(["sh", "-c", f"'{sys.executable}' '{stage[0]}' '{stage[1]}'; echo stage ended"])
time.sleep(600)
"""


def wait_until(condition: object, what: str, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, what
        time.sleep(0.1)


def test_kill_9_of_the_flow_stops_the_stage_and_everything_it_started(tmp_path: Path) -> None:
    (tmp_path / "stage.py").write_text(STAGE_PY)
    pids = tmp_path / "pids.json"
    log = (tmp_path / "flow.log").open("w")
    env = {**os.environ, "PYTHONPATH": str(Path.cwd())}
    flow = subprocess.Popen(
        [sys.executable, "-c", FLOW_PY, str(tmp_path / "stage.py"), str(pids)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        wait_until(pids.exists, "the stage did not start")
        record = json.loads(pids.read_text())
        assert record["group"] == record["stage"] != os.getpgid(flow.pid)  # its own group...
        assert record["worker_group"] == record["group"]  # ...which what it starts joins

        os.kill(flow.pid, signal.SIGKILL)  # no hook, no atexit: only the stage's own watch can act
        flow.wait()

        wait_until(lambda: not is_alive(record["stage"]) and not is_alive(record["worker"]), "an orphan survived")
        log.flush()
        assert "[toy] FAILED: the flow that started this stage" in (tmp_path / "flow.log").read_text()
    finally:
        for pid in (flow.pid,):
            if is_alive(pid):
                os.killpg(pid, signal.SIGKILL)
        log.close()


def test_outside_a_flow_a_stage_stays_in_the_group_it_was_started_in(monkeypatch: object) -> None:
    monkeypatch.delenv(FLOW_PID_ENV, raising=False)  # type: ignore[attr-defined]
    group = os.getpgrp()
    tie_to_flow("toy")
    assert os.getpgrp() == group and STAGE_GROUP_ENV not in os.environ


def test_a_zombie_or_a_finished_process_is_not_alive() -> None:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    while is_alive(proc.pid):  # exited but not reaped yet: a zombie, already gone
        time.sleep(0.01)
    proc.wait()
    assert not is_alive(proc.pid) and is_alive(os.getpid())
