"""`make server`: the Prefect server (API + UI) on loopback in a child process, and the reports server beside it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from tabml.core.ops_params import ReportsServerParams

STOP_GRACE_SECONDS = 10  # after Ctrl-C, the Prefect server gets this long before it is terminated


class LocalServerError(RuntimeError):
    """The local servers cannot start (a port in use); the message says what to do."""


def serve(root: Path, port: int, reports: ReportsServerParams) -> int:
    """The Prefect server (API + UI) in a child process, the reports server in a thread; both end on Ctrl-C."""
    from tabml.orchestration.reports_server import start_reports_server, stop_reports_server

    httpd = None
    if reports.port is not None:
        try:
            httpd = start_reports_server(root, reports.host, reports.port)
        except OSError as exc:
            raise LocalServerError(
                f"cannot serve the reports on {reports.host}:{reports.port}: {exc.strerror or exc}.\n"
                "  what to do: stop what holds that port, or set orchestration.reports_server.port in params.yaml "
                "(null: not served) or pass --reports-port."
            ) from None
        shown = f"[{reports.host}]" if ":" in reports.host else reports.host
        print(
            f"reports: http://{shown}:{reports.port}/ serves reports/ and dvc_plots/ of {root}, read-only", flush=True
        )
    prefect = [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port", str(port)]
    # The UI asks the API at PREFECT_UI_API_URL, which would otherwise default to port 4200 whatever --port says.
    env = {"PREFECT_UI_API_URL": f"http://127.0.0.1:{port}/api", **os.environ}
    child = subprocess.Popen(prefect, env=env)  # same process group: a terminal's Ctrl-C reaches it directly
    signal.signal(signal.SIGTERM, lambda *_: child.send_signal(signal.SIGTERM))  # `kill` of this process: pass it on
    try:
        return child.wait()
    except KeyboardInterrupt:  # SIGTERM as well: a lone SIGINT to this process did not reach the child, and a
        child.send_signal(signal.SIGTERM)  # second SIGINT would make uvicorn skip Prefect's shutdown
        try:
            return child.wait(timeout=STOP_GRACE_SECONDS)
        except subprocess.TimeoutExpired:
            child.kill()
            return child.wait()
    finally:
        if httpd is not None:
            stop_reports_server(httpd)


def load_reports_params(root: Path, port: int | None) -> ReportsServerParams:
    from tabml.orchestration.flow_params import load_flow_params

    reports = load_flow_params(root / "params.yaml").orchestration.reports_server
    return reports if port is None else reports.model_copy(update={"port": port})
