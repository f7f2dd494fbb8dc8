"""The pipeline run's summary as Markdown: stage table, validation, evaluation and registration.

Pure: the reports are plain dicts read by the caller (through their artifacts' modules), so any field may be
missing.
"""

from __future__ import annotations

import json
import textwrap
from collections.abc import Mapping, Sequence
from typing import Any

from tabml.orchestration.dvc_stages import StageOutcome
from tabml.orchestration.reports_server import REPORTS_URL_ENV, Page

Report = Mapping[str, Any]
MAX_LISTED = 10  # validation messages listed before "... and N more"
WRAP = 96  # characters per line of the failure reason: the UI's code block does not wrap, it cuts
STATUS_TEXT = {"ran": "ran", "skipped": "skipped (unchanged)"}


def status_line(position: int, total: int, outcome: StageOutcome) -> str:
    """`[3/6] preprocess: skipped (unchanged) 0.2s`"""
    return f"[{position}/{total}] {outcome.name}: {STATUS_TEXT[outcome.status]} {outcome.seconds:.1f}s"


def summary_markdown(
    outcomes: Sequence[StageOutcome],
    *,
    failed_stage: str | None = None,
    error: str | None = None,
    not_run: Sequence[str] = (),
    validation: Report | None = None,
    metrics: Report | None = None,
    registration: Report | None = None,
    published: Report | None = None,
    pages: Sequence[Page] = (),
    served_at: str | None = None,
) -> str:
    """Markdown for the `pipeline-summary` artifact: what this run did; sections whose report is None are left out.

    `pages` are linked when they have a URL (served at `served_at` by `make server`), else named by their path.
    A report of a stage this run skipped is from an earlier run and says so; registration is shown only when this
    run's `register` ran (a skipped one registered nothing, whatever the last record says).
    """
    title = f"# Training pipeline: FAILED at `{failed_stage}`" if failed_stage else "# Training pipeline: succeeded"
    parts = [title, _stage_table(outcomes, failed_stage, not_run)]
    if failed_stage:
        parts.append(f"**Error in `{failed_stage}`:**\n\n```\n{wrapped(error or 'no message')}\n```")
    skipped = {o.name for o in outcomes if o.status == "skipped"}
    if validation is not None:
        parts.append(_validation_section(validation) + _earlier("validate", skipped))
    if metrics is not None:
        parts.append(_metrics_section(metrics) + _earlier("evaluate", skipped))
    if "register" in skipped:
        parts.append("## Registration\n\nnothing registered: `register` was up to date, so this run made no version")
    elif registration is not None:
        parts.append(_registration_section(registration))
    if published is not None:
        parts.append(_published_section(published))
    if pages:
        parts.append(_pages_section(pages, served_at))
    return "\n\n".join(parts) + "\n"


def wrapped(text: str, width: int = WRAP) -> str:
    """`text` with every line folded at `width` (continuations indented), so nothing is cut at the right edge."""
    lines: list[str] = []
    for line in text.strip().splitlines():
        indent = line[: len(line) - len(line.lstrip())]
        folded = textwrap.wrap(line, width, subsequent_indent=indent + "  ", break_on_hyphens=False)
        lines += folded or [""]
    return "\n".join(lines)


def _earlier(stage: str, skipped: set[str]) -> str:
    return f"\n\n_`{stage}` was up to date in this run: this report is from the run that last ran it._" * (
        stage in skipped
    )


def metrics_table(report: Report) -> list[dict[str, str]]:
    """Rows of the `evaluation-metrics` table artifact: each test metric, then the decision threshold."""
    test = report.get("test")
    rows = [{"metric": str(k), "value": _cell(v)} for k, v in test.items()] if isinstance(test, Mapping) else []
    if report.get("threshold") is not None:
        rows.append({"metric": "decision threshold", "value": _cell(report["threshold"])})
    return rows


def validation_table(report: Report) -> list[dict[str, str]]:
    """Rows of the `validation-checks` table artifact: one per check, failed ones first."""
    checks = [c for c in report.get("checks") or [] if isinstance(c, Mapping)]
    checks.sort(key=lambda c: (c.get("success") is True, str(c.get("severity")) != "error"))
    keys = ("name", "column", "severity", "expected", "observed")
    return [
        {
            "result": "passed" if c.get("success") is True else "FAILED",
            **{k: "" if c.get(k) is None else _cell(c[k]) for k in keys},
        }
        for c in checks
    ]


def _stage_table(outcomes: Sequence[StageOutcome], failed_stage: str | None, not_run: Sequence[str]) -> str:
    rows = ["| # | stage | status | seconds |", "|---|---|---|---|"]
    rows += [f"| {i} | {o.name} | {STATUS_TEXT[o.status]} | {o.seconds:.1f} |" for i, o in enumerate(outcomes, 1)]
    position = len(outcomes)
    if failed_stage:
        position += 1
        rows.append(f"| {position} | {failed_stage} | **failed** | |")
    rows += [f"| {position + i} | {name} | not run | |" for i, name in enumerate(not_run, 1)]
    return "\n".join(rows)


def _validation_section(report: Report) -> str:
    success = report.get("success")
    verdict = "passed" if success is True else "**failed**" if success is False else "unknown"
    facts = [f"result: {verdict}"]
    if "rows" in report:
        facts.append(f"rows: {_cell(report['rows'])}")
    lines = ["## Validation", "", ", ".join(facts)]
    for label, value in (("errors", report.get("errors")), ("warnings", report.get("warnings"))):
        lines += _messages(label, value)
    if report.get("quarantine"):
        lines += ["", f"quarantined: `{report['quarantine']}` (accepted snapshot and registered model untouched)"]
    return "\n".join(lines)


def _messages(label: str, value: object) -> list[str]:
    # A report may hold a count or the messages themselves.
    if value is None:
        return []
    if not isinstance(value, list):
        return ["", f"{label}: {_cell(value)}"]
    lines = ["", f"{label}: {len(value)}"]
    lines += [f"- {_one_line(item)}" for item in value[:MAX_LISTED]]
    if len(value) > MAX_LISTED:
        lines.append(f"- ... and {len(value) - MAX_LISTED} more")
    return lines


def _metrics_section(report: Report) -> str:
    facts = [f"{key}: {_cell(report[key])}" for key in ("task", "n_test", "threshold") if key in report]
    lines = ["## Evaluation (test split)"]
    if facts:
        lines += ["", ", ".join(facts)]
    test = report.get("test")
    if isinstance(test, Mapping) and test:
        lines += ["", "| metric | value |", "|---|---|"]
        lines += [f"| {_cell(name)} | {_cell(value)} |" for name, value in test.items()]
    else:
        lines += ["", "no test metrics in the report"]
    return "\n".join(lines)


def _registration_section(record: Report) -> str:
    passed = record.get("passed")
    verdict = "registered" if passed is True else "**not registered** (gate failed)" if passed is False else "unknown"
    facts = [f"gate: {verdict}"]
    facts += [f"{key}: {_cell(record[key])}" for key in ("version", "stage") if record.get(key) is not None]
    return "\n".join(["## Registration", "", ", ".join(facts)])


def _pages_section(pages: Sequence[Page], served_at: str | None) -> str:
    lines = ["## Pages", ""]
    for page in pages:
        where = f"[{page.url}]({page.url})" if page.url else f"`{page.path}`"
        lines.append(f"- {page.title}: {where} (written by {page.made_by})")
    if served_at and any(page.url for page in pages):
        lines += ["", f"_Served read-only by `make server` at {served_at}: start it if a link does not open._"]
    if not all(page.url for page in pages):
        lines += [
            "",
            "_A path is not served over HTTP (orchestration.reports_server.port is null, "
            f"{REPORTS_URL_ENV} is unset, or the file is outside reports/ and dvc_plots/): open it on the machine "
            "that ran the flow, or set the port and run `make server`._",
        ]
    return "\n".join(lines)


def _published_section(published: Report) -> str:
    facts = [f"dvc push: {_cell(published.get('pushed_files', 0))} files sent to the remote"]
    branch, commit = published.get("branch"), published.get("commit")
    if branch and commit:
        again = "" if published.get("new_branch", True) else ", unchanged since that run"
        facts.append(f"run branch: `{_one_line(branch)}` ({_one_line(commit)[:10]}{again})")
    else:
        facts.append("run branch: none (the workspace equals HEAD)")
    return "\n".join(["## Published", "", "; ".join(facts)])


def _cell(value: object) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return f"{value:.4g}"
    return _one_line(value).replace("|", "\\|")


def _one_line(value: object) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return " ".join(text.split())
