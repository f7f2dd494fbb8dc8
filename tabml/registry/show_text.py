"""`registry show` for a person: one screen with the stage, metrics, gate, lineage and verified files.

Pure: it renders the dict `registry show --json` prints (tabml.registry.cli.show); any part may be missing.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

MAX_FILES = 12  # files listed before "... and N more"


def show_text(shown: Mapping[str, Any]) -> str:
    """The readable summary of one registered version."""
    lines = [
        f"{shown.get('name', '?')} v{shown.get('version', '?')}: {shown.get('stage') or 'no stage'}"
        f"  (registered {shown.get('created_at', '?')})",
        f"  package: {shown.get('dir', '?')}",
    ]
    history = [f"{s.get('stage')} ({s.get('action')}, {s.get('at')})" for s in shown.get("stages") or []]
    if history:
        lines.append(f"  stages:  {' -> '.join(history)}")
    metrics = shown.get("metrics") or {}
    if metrics:
        lines += ["", "test metrics:", *(f"  {k:<18} {_number(v)}" for k, v in metrics.items())]
    lines += _gate(shown.get("gate_report"))
    lines += _lineage(shown.get("lineage"))
    files = list(shown.get("files") or [])
    verified = "verified against MANIFEST.json" if shown.get("verified") else "NOT verified"
    lines += ["", f"files ({len(files)}, {verified}):"]
    lines += [f"  {name}" for name in files[:MAX_FILES]]
    if len(files) > MAX_FILES:
        lines.append(f"  ... and {len(files) - MAX_FILES} more")
    lines += ["", "raw record: add --json"]
    return "\n".join(lines)


def _gate(report: Any) -> list[str]:
    if not isinstance(report, Mapping):
        return []
    verdict = "passed" if report.get("registered") else "refused"
    head = f"gate: {verdict} on {report.get('primary_metric', '?')}={_number(report.get('value'))}"
    if report.get("champion_version") is not None:
        head += f" (champion v{report['champion_version']})"
    lines = ["", head]
    for check in report.get("checks") or []:
        if isinstance(check, Mapping):
            mark = "ok  " if check.get("passed") else "FAIL"
            lines.append(f"  {mark} [{check.get('tier', '?')}] {check.get('reason', check.get('name', ''))}")
    return lines


def _lineage(lineage: Any) -> list[str]:
    if not isinstance(lineage, Mapping):
        return []
    git = lineage.get("git") or {}
    run = lineage.get("run") or {}
    snapshot = (lineage.get("data_profile") or {}).get("snapshot") or {}
    dirty = " (uncommitted changes)" if git.get("dirty") else ""
    lines = ["", "lineage:", f"  git commit   {git.get('rev', '?')}{dirty}"]
    if snapshot:
        profile = str(snapshot.get("profile_sha256", "?"))[:12]
        lines.append(f"  data         {snapshot.get('path', '?')}: {snapshot.get('rows', '?')} rows, profile {profile}")
    lines.append(f"  dvc.lock     stages {', '.join(lineage.get('dvc_lock') or {}) or '?'}")
    runs = [f"{k}={v}" for k, v in run.items() if v is not None]
    if runs:
        lines.append(f"  run          {' '.join(runs)}")
    return lines


def _number(value: Any) -> str:
    return f"{value:.4f}" if isinstance(value, float) else str(value)
