"""Failure notices: the message (stage, why, what to do, link), the log file, and a real webhook on 127.0.0.1."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest

from tabml.orchestration.dvc_stages import StageFailedError
from tabml.orchestration.notify import CRASH_TODO, FailureNotice, deliver, explain, payload, post_webhook, render
from tabml.orchestration.workspace_lock import WorkspaceLockTimeout

SECRET_URL_PART = "token=s3cr3t-do-not-log"


@dataclass
class Webhook:
    url: str
    received: list[dict] = field(default_factory=list)
    paths: list[str] = field(default_factory=list)


@contextmanager
def recording_webhook(status: int = 200) -> Iterator[Webhook]:
    """A local HTTP endpoint that records each JSON body POSTed to it and answers `status`."""
    hook = Webhook(url="")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's naming
            body = self.rfile.read(int(self.headers["Content-Length"]))
            hook.received.append(json.loads(body))
            hook.paths.append(self.path)
            self.send_response(status)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    hook.url = f"http://127.0.0.1:{server.server_port}/hooks/pipeline?{SECRET_URL_PART}"
    try:
        yield hook
    finally:
        server.shutdown()
        server.server_close()


def notice(**changes: object) -> FailureNotice:
    fields: dict = {
        "flow": "training-pipeline",
        "run_name": "brave-fox",
        "run_id": "0b0e7c9a-1111-2222-3333-444455556666",
        "state": "Failed",
        "at": "2025-01-01T03:00:00+00:00",
        "stage": "validate",
        "why": "stage 'validate' failed: exited with 1",
        "todo": "fix the data",
        "run_url": "http://127.0.0.1:4200/runs/flow-run/0b0e7c9a-1111-2222-3333-444455556666",
        "deployment": "training-pipeline/scheduled",
    }
    return FailureNotice(**{**fields, **changes})


def test_a_reported_data_error_keeps_the_stages_own_advice() -> None:
    tail = "[validate] FAILED: data/snapshot/table.parquet: 3 checks failed\n  what to do: review the new rows"
    exc = StageFailedError("validate", "failed to run: python -m tasks.validate, exited with 1", tail, retryable=False)
    stage, why, todo = explain(exc)
    assert stage == "validate"
    assert "exited with 1" in why and "3 checks failed" in why
    assert todo == "review the new rows"


def test_a_crash_says_it_was_a_crash_and_what_to_check() -> None:
    exc = StageFailedError("train", "failed to run: python -m tasks.train, exited with -9", "Killed", retryable=True)
    stage, why, todo = explain(exc)
    assert stage == "train" and "exited with -9" in why and "Killed" in why
    assert todo == CRASH_TODO


def test_other_failures_are_explained_with_their_own_advice(tmp_path: Path) -> None:
    stage, why, todo = explain(WorkspaceLockTimeout(tmp_path / "lock", 5, "flow run x"))
    assert stage is None and why.startswith("WorkspaceLockTimeout:") and "lock_timeout_seconds" in todo
    assert explain(None)[0] is None and "killed" in explain(None)[1]


def test_message_names_the_run_stage_reason_advice_and_link() -> None:
    text = render(notice())
    first, *rest = text.splitlines()
    assert (
        first == "training-pipeline run 'brave-fox' (deployment training-pipeline/scheduled) FAILED at stage 'validate'"
    )
    assert "  why: stage 'validate' failed: exited with 1" in rest
    assert "  what to do: fix the data" in rest
    assert "  run: http://127.0.0.1:4200/runs/flow-run/0b0e7c9a-1111-2222-3333-444455556666" in rest


def test_credentials_in_the_reason_are_redacted_everywhere() -> None:
    leaky = notice(why="dvc push to s3://AKIA:abc/def@bucket failed; see https://x.io/?api_key=123")
    for text in (render(leaky), json.dumps(payload(leaky))):
        assert "abc/def" not in text and "api_key=123" not in text and "***" in text


def test_notice_goes_to_the_log_file_and_the_webhook(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    log = tmp_path / "logs" / "failures.log"
    warnings: list[str] = []
    with recording_webhook() as hook:
        monkeypatch.setenv("MY_HOOK_URL", hook.url)
        delivered = deliver(notice(), log, "MY_HOOK_URL", timeout=5, warn=warnings.append)
    assert delivered == [str(log), "webhook ($MY_HOOK_URL)"] and warnings == []
    assert "FAILED at stage 'validate'" in log.read_text()
    (body,) = hook.received
    assert body["stage"] == "validate" and body["run_id"] == notice().run_id
    assert body["text"] == render(notice())
    assert SECRET_URL_PART in hook.paths[0]  # the query string arrived, so the URL was used as given
    assert SECRET_URL_PART not in log.read_text()


def test_webhook_refusal_is_a_warning_without_the_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    warnings: list[str] = []
    with recording_webhook(status=500) as hook:
        monkeypatch.setenv("MY_HOOK_URL", hook.url)
        delivered = deliver(notice(), tmp_path / "failures.log", "MY_HOOK_URL", timeout=5, warn=warnings.append)
        with pytest.raises(Exception, match="HTTP 500") as caught:
            post_webhook(hook.url, payload(notice()), timeout=5)
    assert delivered == [str(tmp_path / "failures.log")]
    assert len(warnings) == 1 and "HTTP 500" in warnings[0]
    assert SECRET_URL_PART not in warnings[0] and "127.0.0.1" not in str(caught.value)


def test_unreachable_webhook_and_unwritable_log_never_raise(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with recording_webhook() as hook:
        url = hook.url  # the server is gone once the block ends: nothing listens there any more
    monkeypatch.setenv("MY_HOOK_URL", url)
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    warnings: list[str] = []
    delivered = deliver(notice(), blocker / "failures.log", "MY_HOOK_URL", timeout=2, warn=warnings.append)
    assert delivered == []
    assert len(warnings) == 2 and "could not be reached (URLError)" in warnings[1]
    assert all(SECRET_URL_PART not in w and "127.0.0.1:" not in w for w in warnings)


def test_no_webhook_variable_means_log_file_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MY_HOOK_URL", raising=False)
    assert deliver(notice(), tmp_path / "f.log", "MY_HOOK_URL", timeout=1, warn=print) == [str(tmp_path / "f.log")]
