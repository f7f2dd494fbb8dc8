"""The project's report pages over HTTP, read-only, so the run summary's links open from the Prefect UI.

`make server` (flows/deploy.py) runs `start_reports_server` next to the Prefect server: `reports/` is served at
`/` (`/validation.html`, `/compare.html`) and `dvc_plots/` at `/dvc_plots/`. Only files inside those folders
are served (a `..`, an encoded one or a symlink out of them is refused with 403), directories are not listed, and
only GET and HEAD are answered. The summary's links come from `page_url` (pure).
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from functools import partial
from http import HTTPStatus
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, urlsplit

from tabml.core.ops_params import ReportsServerParams

REPORTS_URL_ENV = "TABML_REPORTS_URL"  # the links' base URL, e.g. behind a proxy; wins over params
REPORTS_DIR = "reports"  # served at /
PLOTS_DIR = "dvc_plots"  # `dvc plots show`'s output folder, served at /dvc_plots/
WILDCARD_HOSTS = {"0.0.0.0", "::", ""}
COMPARE_PAGE = f"{REPORTS_DIR}/compare.html"  # `make report` (tabml.report's default --out)
PLOTS_PAGE = f"{PLOTS_DIR}/index.html"  # `make plots`


@dataclass(frozen=True)
class Page:
    """A page the run summary points at: a link artifact under `key` when served, else its path in the note."""

    key: str  # the link artifact's key
    title: str
    path: str  # as the user finds it in the workspace, relative to its root
    made_by: str  # what wrote it, so nobody mistakes an old page for this run's
    url: str | None  # None: not served over HTTP


def report_pages(root: Path, data_docs: str | None, base_url: str | None) -> list[Page]:
    """The pages that exist in `root`: this run's Data Docs, the last compare page and plots; with URLs if served."""
    found = [("data-docs", "Data Docs", data_docs, "validate")] if data_docs else []
    found += [("compare-page", "compare page", COMPARE_PAGE, "the last `make report`")]
    found += [("dvc-plots", "plots", PLOTS_PAGE, "the last `make plots`")]
    pages = []
    for key, title, page, made_by in found:
        path = Path(page) if Path(page).is_absolute() else root / page
        if path.is_file():
            shown = path.relative_to(root).as_posix() if path.is_relative_to(root) else str(path)
            url = page_url(root, path, base_url) if base_url else None
            pages.append(Page(key=key, title=title, path=shown, made_by=made_by, url=url))
    return pages


def served_folders(root: Path) -> dict[str, Path]:
    """URL prefix -> folder: `reports/` at the root of the URL space, `dvc_plots/` under its own name."""
    return {"": root / REPORTS_DIR, PLOTS_DIR: root / PLOTS_DIR}


def reports_base_url(settings: ReportsServerParams, environ: Mapping[str, str]) -> str | None:
    """The base URL of the summary's links: $TABML_REPORTS_URL, else the configured server, else None (not served)."""
    configured = environ.get(REPORTS_URL_ENV, "").strip()
    if configured:
        return configured.rstrip("/")
    if settings.port is None:
        return None
    host = socket.getfqdn() if settings.host in WILDCARD_HOSTS else settings.host
    return f"http://{f'[{host}]' if ':' in host else host}:{settings.port}"


def page_url(root: Path, page: str | Path, base_url: str) -> str | None:
    """The http URL of a page of the workspace `root` (absolute or relative to it); None outside the served folders."""
    path = Path(page) if Path(page).is_absolute() else root / page
    for prefix, folder in served_folders(root).items():
        try:
            relative = path.resolve().relative_to(folder.resolve())
        except ValueError:
            continue
        parts = [prefix, *relative.parts] if prefix else list(relative.parts)
        return f"{base_url}/{quote('/'.join(parts))}"
    return None


def resolve_request(folders: Mapping[str, Path], url_path: str) -> Path | None:
    """The file a request path names inside `folders`, or None when it would leave them (`..`, symlinks)."""
    segments = unquote(urlsplit(url_path).path).split("/")  # decoded first: %2e%2e and %2f are caught too
    if any(s in {".", ".."} or "\\" in s or "\x00" in s for s in segments):
        return None
    parts = [s for s in segments if s]
    prefix = parts[0] if parts and parts[0] in folders and parts[0] else ""
    folder = folders[prefix].resolve()
    target = folder.joinpath(*parts[1:] if prefix else parts).resolve()
    return target if target == folder or target.is_relative_to(folder) else None


class ReportsHandler(SimpleHTTPRequestHandler):
    """SimpleHTTPRequestHandler confined to the served folders, without directory listings."""

    folders: Mapping[str, Path] = {}  # set on the subclass `start_reports_server` makes
    quiet = False  # no access log line per request

    def do_GET(self) -> None:
        if not self._refused():
            super().do_GET()

    def do_HEAD(self) -> None:
        if not self._refused():
            super().do_HEAD()

    def translate_path(self, path: str) -> str:
        target = resolve_request(self.folders, path)  # never None here: `_refused` answered those requests
        return "" if target is None else str(target)  # "": no such file, a 404

    def list_directory(self, path: Any) -> None:
        self.send_error(HTTPStatus.NOT_FOUND, "No directory listing here: ask for a page, e.g. /validation.html")

    def end_headers(self) -> None:
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Cache-Control", "no-store")  # a report is rewritten by every run
        super().end_headers()

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's signature
        if not self.quiet:
            super().log_message(format, *args)

    def _refused(self) -> bool:
        if resolve_request(self.folders, self.path) is not None:
            return False
        self.send_error(HTTPStatus.FORBIDDEN, "Outside the served folders (reports/, dvc_plots/)")
        return True


class ReportsServer(ThreadingHTTPServer):
    daemon_threads = True  # a slow client never holds up the stop


class ReportsServer6(ReportsServer):
    address_family = socket.AF_INET6


def start_reports_server(root: Path, host: str, port: int, quiet: bool = False) -> ReportsServer:
    """Serve `root`'s report folders on host:port from a background thread; `stop_reports_server` ends it."""
    folders = served_folders(root.resolve())
    handler = type("BoundReportsHandler", (ReportsHandler,), {"folders": folders, "quiet": quiet})
    server_class = ReportsServer6 if ":" in host else ReportsServer
    server = server_class((host, port), partial(handler, directory=str(folders[""])))
    threading.Thread(target=server.serve_forever, name="reports-server", daemon=True).start()
    return server


def stop_reports_server(server: ReportsServer) -> None:
    server.shutdown()
    server.server_close()
