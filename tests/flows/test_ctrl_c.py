"""Ctrl-C stops `make server` and `make worker`: the terminal's SIGINT to the foreground process group (make and the
Prefect process it runs) ends both, cleanly, instead of leaving a server (or its reports server) or a polling worker
behind.

Real processes: `make server` on a free loopback port with its own PREFECT_HOME, and `make worker` polling it.
The bound on the wait only detects a hang; it is not a timing assertion.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from contextlib import suppress
from pathlib import Path

import httpx
import pytest

from tests.flows.conftest import STARTUP_TIMEOUT_SECONDS, free_port, started

pytestmark = pytest.mark.slow
PROJECT = Path(__file__).resolve().parents[2]
HANG_SECONDS = 60  # far beyond a clean stop: only a process that ignores Ctrl-C gets here


def project_with_venv(tmp_path: Path) -> Path:
    """The Makefile and flows of this checkout, with `.venv` pointing at the running interpreter's venv."""
    root = tmp_path / "project"
    root.mkdir()
    for name in ("Makefile", "params.yaml", "requirements.lock", "pyproject.toml", "flows", "tabml", "tools"):
        source = PROJECT / name
        if source.is_dir():
            shutil.copytree(source, root / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(source, root / name)
    (root / ".venv").symlink_to(Path(sys.executable).parent.parent)
    return root


def ctrl_c(proc: subprocess.Popen[bytes]) -> int:
    """SIGINT to the process group, as a terminal's Ctrl-C; the exit status once every member is gone."""
    os.killpg(proc.pid, signal.SIGINT)
    code = proc.wait(timeout=HANG_SECONDS)
    deadline = time.monotonic() + HANG_SECONDS
    while time.monotonic() < deadline:
        try:
            os.killpg(proc.pid, 0)
        except ProcessLookupError:
            return code
        time.sleep(0.2)
    raise AssertionError("a process of the group outlived Ctrl-C")


def test_ctrl_c_stops_make_server_and_make_worker(tmp_path: Path) -> None:
    root = project_with_venv(tmp_path)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_") and k != "MAKEFLAGS"}
    env |= {"PREFECT_HOME": str(tmp_path / "prefect"), "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    make = ["make", "-o", ".venv/.installed"]  # the venv is there: no setup step
    server_log, worker_log = tmp_path / "server.log", tmp_path / "worker.log"
    reports_port = free_port()
    (root / "reports").mkdir()
    (root / "reports/validation.html").write_text("<html>docs</html>")
    server_args = [*make, "server", f"PREFECT_PORT={port}", f"REPORTS_PORT={reports_port}"]
    reports = f"http://127.0.0.1:{reports_port}/validation.html"
    with started(server_args, cwd=root, env=env, log=server_log) as server:
        api = f"http://127.0.0.1:{port}/api"
        deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
        while time.monotonic() < deadline and server.poll() is None:
            with suppress(httpx.HTTPError):
                if httpx.get(f"{api}/health", timeout=2).status_code == 200:
                    break
            time.sleep(0.5)
        else:
            pytest.fail(f"make server did not come up:\n{server_log.read_text()[-2000:]}")
        assert httpx.get(reports, timeout=5).text == "<html>docs</html>"  # the reports server came up with it
        with started([*make, "worker", f"PREFECT_PORT={port}"], cwd=root, env=env, log=worker_log) as worker:
            deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
            while "started!" not in worker_log.read_text() and time.monotonic() < deadline:
                assert worker.poll() is None, worker_log.read_text()[-2000:]
                time.sleep(0.5)
            ctrl_c(worker)
        assert "stopped!" in worker_log.read_text(), worker_log.read_text()[-2000:]
        ctrl_c(server)
    for url in (f"{api}/health", reports):  # the Prefect server and the reports server both stopped
        with pytest.raises(httpx.HTTPError):
            httpx.get(url, timeout=2)
