"""A real Prefect server on loopback, shared by the flow tests that need one: `prefect server start` as a subprocess.

It gets its own PREFECT_HOME (SQLite) and a free port, and is stopped (its whole process group) at the end of
the session, also when a test failed. In-process flows reach it through `use_prefect_api`; subprocesses
(workers, `python -m flows.pipeline`) through the environment from `prefect_env`.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

# DVC binds its log handlers to sys.stdout when first imported: import it here, at collection, not first under
# a test's capsys, whose stream is closed after that test (DVC's logging would then fail every later stage).
import dvc  # noqa: F401
import httpx
import pytest

from tests.s3_server import S3Server, s3_server
from tests.workspace import stop_process_group  # noqa: F401 - the flow tests import it from here

STARTUP_TIMEOUT_SECONDS = 120  # a loaded 2-core CI box needs ~30 s


@dataclass(frozen=True)
class PrefectServer:
    api_url: str
    home: Path
    log: Path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def default_sigint() -> None:
    """Ctrl-C's default action in a started process (a test process may ignore SIGINT; children inherit that)."""

    signal.signal(signal.SIGINT, signal.SIG_DFL)


@contextmanager
def started(args: list[str], cwd: Path, env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """A background process in its own session (so its children can be stopped with it), output to `log`."""
    with log.open("wb") as out:
        proc = subprocess.Popen(
            args,
            cwd=cwd,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=default_sigint,  # as from a terminal, whatever the test process's own disposition
        )
        try:
            yield proc
        finally:
            stop_process_group(proc)


def client_env(server: PrefectServer, home: Path) -> dict[str, str]:
    """Environment for a process that talks to `server`: its own PREFECT_HOME, the venv's python first on PATH."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("PREFECT_")}
    return {
        **env,
        "PREFECT_API_URL": server.api_url,
        "PREFECT_HOME": str(home),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_WORKER_QUERY_SECONDS": "1",  # pick up a triggered run at once, not after 10 s
        "PREFECT_LOGGING_LEVEL": "INFO",
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
    }


@pytest.fixture(scope="session")
def prefect_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrefectServer]:
    home = tmp_path_factory.mktemp("prefect-server")
    port = free_port()
    api_url = f"http://127.0.0.1:{port}/api"
    server = PrefectServer(api_url=api_url, home=home, log=home / "server.log")
    env = {**client_env(server, home), "PREFECT_UI_ENABLED": "false"}
    env.pop("PREFECT_API_URL")  # the server itself needs none
    args = [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port", str(port)]
    with started(args, cwd=home, env=env, log=server.log) as proc:
        deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
        while True:
            with suppress(httpx.HTTPError):
                if httpx.get(f"{api_url}/health", timeout=2).status_code == 200:
                    break
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"Prefect server did not start on {api_url}:\n{server.log.read_text()[-3000:]}")
            time.sleep(0.5)
        yield server


@pytest.fixture
def use_prefect_api(prefect_server: PrefectServer) -> Iterator[PrefectServer]:
    """Flows called in this process report to the test server."""
    from prefect.logging.handlers import APILogHandler
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings({PREFECT_API_URL: prefect_server.api_url}):
        yield prefect_server
        APILogHandler().flush()  # send the test's run logs now, while the server is surely still there


@pytest.fixture(scope="session")
def s3_storage(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """A real S3 API (moto's standalone server) on loopback for the session, stopped at its end."""
    with s3_server(tmp_path_factory.mktemp("s3-server")) as server:
        yield server
