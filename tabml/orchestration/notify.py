"""A failed pipeline run, told clearly: which stage, why, what to do, and a link to the run.

Written to a log file, and POSTed as JSON to a webhook when its URL is set in the environment
(`orchestration.notify.webhook_url_env` names the variable). The URL is a secret: it is never logged,
never written to a file, and a failed POST is reported by error class and HTTP status only.
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

from tabml.core.redact import redact_text
from tabml.orchestration.dvc_stages import StageFailedError

TODO_MARK = "what to do:"
DATA_ERROR_TODO = (
    "the stage's message above says what is wrong with the data or params.yaml: fix that, then trigger the "
    "deployment again (`make trigger`) or run `dvc repro {stage}`; it was not retried, a rerun fails the same way"
)
CRASH_TODO = (
    "the stage crashed rather than reporting a data error (its retries, if it has any, are spent): open the run "
    "for the stage's full log, check memory, disk and the machine, then trigger again (`make trigger`)"
)


class NotificationError(RuntimeError):
    """The webhook could not be reached or refused the message (the URL is never part of the message)."""


@dataclass(frozen=True)
class FailureNotice:
    flow: str
    run_name: str
    run_id: str
    state: str  # Failed | Crashed
    at: str
    stage: str | None
    why: str
    todo: str
    run_url: str | None = None
    deployment: str | None = None


def explain(exc: BaseException | None) -> tuple[str | None, str, str]:
    """(stage, why, what to do) of the exception a run failed with; pure."""
    if exc is None:
        return None, "the run ended without an exception (the process was killed or lost)", CRASH_TODO
    if isinstance(exc, StageFailedError):
        said = "\n".join(part for part in (exc.reason, exc.stderr_tail) if part)  # the stage's line, or its tail
        output, _, stage_todo = said.partition(TODO_MARK)
        why = f"stage '{exc.stage}' failed: {output.rstrip()}"
        default = (CRASH_TODO if exc.retryable else DATA_ERROR_TODO).format(stage=exc.stage)
        return exc.stage, why, stage_todo.strip() if stage_todo else default
    text = str(exc).strip() or type(exc).__name__
    why, _, todo = text.partition(TODO_MARK)
    stage = getattr(exc, "stage", None)
    default = "fix the cause above, then trigger the deployment again (`make trigger`)"
    return (stage if isinstance(stage, str) else None), f"{type(exc).__name__}: {why.strip()}", todo.strip() or default


def render(notice: FailureNotice) -> str:
    """The message people read, in the log file and in the webhook's `text`; secrets in URLs are redacted."""
    where = f" at stage '{notice.stage}'" if notice.stage else ""
    deployment = f" (deployment {notice.deployment})" if notice.deployment else ""
    lines = [
        f"{notice.flow} run '{notice.run_name}'{deployment} {notice.state.upper()}{where}",
        f"  when: {notice.at}",
        "  why: " + notice.why.replace("\n", "\n    "),
        f"  what to do: {notice.todo}",
        f"  run: {notice.run_url or notice.run_id}",
    ]
    return redact_text("\n".join(lines))


def payload(notice: FailureNotice) -> dict[str, object]:
    """JSON body for the webhook: `text` (Slack-style chat hooks show it) plus the fields for machines."""
    fields = {key: redact_text(value) if isinstance(value, str) else value for key, value in asdict(notice).items()}
    return {"text": render(notice), **fields}


def append_to_log(path: Path, message: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as fh:
        fh.write(message.rstrip() + "\n\n")


def post_webhook(url: str, body: Mapping[str, object], timeout: float) -> int:
    """POST `body` as JSON; the HTTP status, or NotificationError naming only the error class and status."""
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - URL from the operator
            return int(response.status)
    except urllib.error.HTTPError as exc:
        raise NotificationError(f"the webhook answered HTTP {exc.code}") from None
    except (OSError, ValueError) as exc:  # URLError, timeouts, refused connections, malformed URLs
        raise NotificationError(f"the webhook could not be reached ({type(exc).__name__})") from None


def deliver(
    notice: FailureNotice,
    log_file: Path,
    webhook_url_env: str,
    timeout: float,
    warn: Callable[[str], object],
) -> list[str]:
    """Append the notice to `log_file`, POST it if `$webhook_url_env` is set; never raises. Returns where it went."""
    message, delivered = render(notice), []
    try:
        append_to_log(log_file, message)
        delivered.append(str(log_file))
    except OSError as exc:
        warn(f"failure notice not written to {log_file}: {exc}")
    url = os.environ.get(webhook_url_env, "").strip()
    if url:
        try:
            post_webhook(url, payload(notice), timeout)
            delivered.append(f"webhook (${webhook_url_env})")
        except NotificationError as exc:
            warn(f"failure notice not sent to the webhook in ${webhook_url_env}: {exc}")
    return delivered
