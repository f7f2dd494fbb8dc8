"""The reports server: a real server on 127.0.0.1 and a real HTTP client (http.client sends paths as written, so a
`..` reaches the server undecoded), and the URLs the run summary links to."""

from __future__ import annotations

import http.client
from collections.abc import Iterator
from pathlib import Path

import pytest

from tabml.core.ops_params import ReportsServerParams
from tabml.orchestration.reports_server import (
    REPORTS_URL_ENV,
    ReportsServer,
    page_url,
    report_pages,
    reports_base_url,
    start_reports_server,
    stop_reports_server,
)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    root = tmp_path / "project"
    (root / "reports").mkdir(parents=True)
    (root / "dvc_plots").mkdir()
    (root / "reports/validation.html").write_text("<html>data docs</html>")
    (root / "reports/metrics.json").write_text('{"test": {"auroc": 0.8}}')
    (root / "dvc_plots/index.html").write_text("<html>plots</html>")
    (root / "params.yaml").write_text("secret: outside the served folders\n")
    (root / "reports/escape").symlink_to(root / "params.yaml")
    return root


@pytest.fixture
def server(project: Path) -> Iterator[ReportsServer]:
    httpd = start_reports_server(project, "127.0.0.1", 0, quiet=True)
    yield httpd
    stop_reports_server(httpd)


def get(server: ReportsServer, path: str, method: str = "GET") -> tuple[int, bytes, http.client.HTTPMessage]:
    connection = http.client.HTTPConnection("127.0.0.1", server.server_address[1], timeout=10)
    try:
        connection.request(method, path)
        response = connection.getresponse()
        return response.status, response.read(), response.headers  # case-insensitive names
    finally:
        connection.close()


def test_serves_the_report_pages_and_the_plots_with_their_types(server: ReportsServer) -> None:
    status, body, headers = get(server, "/validation.html")
    assert (status, body) == (200, b"<html>data docs</html>") and headers["Content-Type"] == "text/html"
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert get(server, "/metrics.json")[2]["Content-Type"] == "application/json"
    assert get(server, "/dvc_plots/index.html")[:2] == (200, b"<html>plots</html>")
    assert get(server, "/dvc_plots/")[:2] == (200, b"<html>plots</html>")  # a folder's index.html
    assert get(server, "/validation.html", "HEAD")[:2] == (200, b"")


@pytest.mark.parametrize(
    "path",
    ["/../params.yaml", "/%2e%2e/params.yaml", "/dvc_plots/../../params.yaml", "/dvc_plots/..%2f..%2fparams.yaml"],
)
def test_a_path_out_of_the_served_folders_is_refused(server: ReportsServer, path: str) -> None:
    status, body, _ = get(server, path)
    assert status == 403 and b"secret" not in body and b"Outside the served folders" in body


def test_a_symlink_out_of_the_folder_is_refused_and_nothing_is_listed_or_written(server: ReportsServer) -> None:
    assert get(server, "/escape")[0] == 403
    status, body, _ = get(server, "/")
    assert status == 404 and b"metrics.json" not in body and b"No directory listing" in body
    assert get(server, "/no-such-page.html")[0] == 404
    assert get(server, "/validation.html", "POST")[0] == 501  # GET and HEAD only
    assert get(server, "/validation.html", "PUT")[0] == 501


def test_a_stopped_server_answers_nothing(project: Path) -> None:
    httpd = start_reports_server(project, "127.0.0.1", 0, quiet=True)
    assert get(httpd, "/validation.html")[0] == 200
    stop_reports_server(httpd)
    with pytest.raises(ConnectionRefusedError):
        get(httpd, "/validation.html")


def test_a_busy_port_fails_with_the_os_error(server: ReportsServer, project: Path) -> None:
    with pytest.raises(OSError, match="in use"):
        start_reports_server(project, "127.0.0.1", server.server_address[1])


def test_the_links_base_url_is_the_env_then_the_configured_server_else_none() -> None:
    settings = ReportsServerParams(host="127.0.0.1", port=4201)
    assert reports_base_url(settings, {}) == "http://127.0.0.1:4201"
    assert reports_base_url(settings, {REPORTS_URL_ENV: "https://reports.example.com/tabml/"}) == (
        "https://reports.example.com/tabml"
    )
    assert reports_base_url(ReportsServerParams(host="127.0.0.1", port=None), {}) is None
    assert reports_base_url(ReportsServerParams(host="::1", port=4201), {}) == "http://[::1]:4201"
    wildcard = reports_base_url(ReportsServerParams(host="0.0.0.0", port=4201), {})
    assert wildcard is not None and "0.0.0.0" not in wildcard  # a link needs a name others can reach


def test_page_urls_map_reports_to_the_root_and_plots_to_their_prefix(project: Path) -> None:
    base = "http://127.0.0.1:4201"
    assert page_url(project, "reports/validation.html", base) == f"{base}/validation.html"
    assert page_url(project, project / "dvc_plots/index.html", base) == f"{base}/dvc_plots/index.html"
    assert page_url(project, "reports/a page.html", base) == f"{base}/a%20page.html"
    assert page_url(project, "quarantine/credit/validation.html", base) is None  # not served: no link


def test_report_pages_lists_the_pages_that_exist(project: Path) -> None:
    pages = report_pages(project, "reports/validation.html", "http://h:1")
    assert [(p.key, p.path, p.url) for p in pages] == [
        ("data-docs", "reports/validation.html", "http://h:1/validation.html"),
        ("dvc-plots", "dvc_plots/index.html", "http://h:1/dvc_plots/index.html"),  # no compare.html here
    ]
    assert [p.url for p in report_pages(project, None, None)] == [None]  # the plots, by path only
