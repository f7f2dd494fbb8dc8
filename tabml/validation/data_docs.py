"""Data Docs: the validation report as one self-contained HTML page (inline CSS, no script, no network).

GX's own Data Docs load their styles and scripts from CDNs and show unstyled or blank offline; this page is
rendered from `reports/validation.json` alone, and its Content-Security-Policy forbids any fetch.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from html import escape
from pathlib import Path
from typing import Any

from tabml.core.files import write_text_atomic

Report = Mapping[str, Any]
MAX_CELL = 240  # characters of expected/observed shown per cell
CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"

CSS = """
:root { --pass: #067647; --fail: #b42318; --warn: #b54708; --ink: #101828; --muted: #475467; --line: #eaecf0;
  --ref: #98a2b3; --now: #1570ef; }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif;
  color: var(--ink); background: #f9fafb; }
header { padding: 20px 32px; color: #fff; }
header.passed { background: var(--pass); } header.failed { background: var(--fail); }
header .verdict { font-size: 13px; font-weight: 700; letter-spacing: .08em; text-transform: uppercase; opacity: .9; }
header h1 { margin: 2px 0 6px; font-size: 24px; }
header p { margin: 0; opacity: .92; }
main { padding: 20px 32px 40px; max-width: 1400px; }
.cards { display: flex; gap: 12px; flex-wrap: wrap; margin-bottom: 16px; }
.card { background: #fff; border: 1px solid var(--line); border-radius: 8px; padding: 10px 16px; min-width: 150px; }
.card b { display: block; font-size: 22px; } .card span { color: var(--muted); font-size: 12px; }
.card.bad b { color: var(--fail); } .card.warn b { color: var(--warn); } .card.good b { color: var(--pass); }
.notice { border-left: 4px solid var(--fail); background: #fef3f2; padding: 10px 14px; margin: 0 0 16px; }
section { background: #fff; border: 1px solid var(--line); border-radius: 8px; padding: 4px 16px 12px;
  margin-bottom: 16px; }
h2 { font-size: 16px; margin: 12px 0 8px; }
ul.messages { margin: 0; padding-left: 18px; } ul.messages li { margin: 4px 0; }
ul.errors li::marker { color: var(--fail); } ul.warnings li::marker { color: var(--warn); }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; vertical-align: top; padding: 6px 8px; border-bottom: 1px solid var(--line); }
th { font-size: 12px; color: var(--muted); text-transform: uppercase; letter-spacing: .04em; }
td.num { font-variant-numeric: tabular-nums; white-space: nowrap; }
code { font: 12px/1.4 ui-monospace, "DejaVu Sans Mono", monospace; word-break: break-word; }
.pill { display: inline-block; padding: 1px 8px; border-radius: 10px; font-size: 12px; font-weight: 600;
  color: #fff; white-space: nowrap; }
.pill.ok { background: var(--pass); } .pill.error { background: var(--fail); }
.pill.warning { background: var(--warn); } .pill.skip { background: var(--ref); }
.bars { display: flex; align-items: flex-start; gap: 3px; }
.col { display: flex; flex-direction: column; align-items: center; }
.bin { display: flex; align-items: flex-end; gap: 1px; height: 44px; }
.lab { font-size: 9px; color: #555; writing-mode: vertical-rl; transform: rotate(180deg); max-height: 90px;
  overflow: hidden; white-space: nowrap; margin-top: 2px; }
.bin i { display: block; width: 6px; min-height: 1px; }
i.ref { background: var(--ref); } i.now { background: var(--now); }
.legend { color: var(--muted); font-size: 12px; }
.legend i { display: inline-block; width: 10px; height: 10px; margin: 0 4px 0 10px; }
footer { color: var(--muted); font-size: 12px; padding: 0 32px 24px; }
"""


def _e(value: object) -> str:
    return escape(str(value), quote=True)


def _json(value: object) -> str:
    if value is None:
        return ""
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text if len(text) <= MAX_CELL else text[: MAX_CELL - 1] + "…"


def _card(value: object, label: str, tone: str = "") -> str:
    return f'<div class="card {tone}"><b>{_e(value)}</b><span>{_e(label)}</span></div>'


def _messages(title: str, items: Sequence[str], kind: str) -> str:
    if not items:
        return ""
    lines = "".join(f"<li>{_e(m)}</li>" for m in items)
    return f'<section><h2>{_e(title)} ({len(items)})</h2><ul class="messages {kind}">{lines}</ul></section>'


def _bars(drift: Mapping[str, Any]) -> str:
    pairs = list(zip(drift.get("bins", []), drift.get("reference", []), drift.get("current", []), strict=False))
    top = max([max(r, c) for _, r, c in pairs] + [1e-9])
    cells = "".join(  # each bin labelled under its bars (the bin's range or value), the shares in its tooltip
        f'<span class="col" title="{_e(b)}: reference {r:.1%}, now {c:.1%}"><span class="bin">'
        f'<i class="ref" style="height:{100 * r / top:.1f}%"></i><i class="now" style="height:{100 * c / top:.1f}%">'
        f'</i></span><span class="lab">{_e(b)}</span></span>'
        for b, r, c in pairs
    )
    return f'<div class="bars">{cells}</div>'


def _drift_section(drift: Sequence[Mapping[str, Any]]) -> str:
    if not drift:
        return ""
    rows = []
    for d in sorted(drift, key=lambda d: not d.get("drifted")):  # drifted columns first, otherwise file order
        psi = d.get("psi")
        if psi is None:
            status = '<span class="pill skip">not assessed</span>'
        elif d.get("drifted"):
            tone = "error" if d.get("action") == "block" else "warning"
            status = f'<span class="pill {tone}">drift ({_e(d.get("action"))})</span>'
        else:
            status = '<span class="pill ok">stable</span>'
        shown = "–" if psi is None else f"{psi:.3f}"
        rows.append(
            f"<tr><td>{status}</td><td>{_e(d.get('column'))}</td><td class=num>{shown}</td>"
            f"<td class=num>{_e(d.get('threshold'))}</td><td>{_bars(d)}</td><td>{_e(d.get('note', ''))}</td></tr>"
        )
    legend = '<span class="legend"><i class="ref"></i>reference <i class="now"></i>this snapshot</span>'
    head = "<tr><th>status</th><th>column</th><th>PSI</th><th>threshold</th><th>distribution</th><th>note</th></tr>"
    return (
        f"<section><h2>Drift: population stability index per column {legend}</h2>"
        f"<table>{head}{''.join(rows)}</table></section>"
    )


def _checks_section(checks: Sequence[Mapping[str, Any]]) -> str:
    order = {"error": 0, "warning": 1}
    ranked = sorted(checks, key=lambda c: (bool(c.get("success")), order.get(str(c.get("severity")), 2)))
    rows = []
    for c in ranked:
        tone = "ok" if c.get("success") else _e(c.get("severity", "error"))
        verdict = "passed" if c.get("success") else str(c.get("severity", "error"))
        rows.append(
            f'<tr><td><span class="pill {tone}">{_e(verdict)}</span></td><td>{_e(c.get("name"))}</td>'
            f"<td>{_e(c.get('column') or '')}</td><td><code>{_e(_json(c.get('expected')))}</code></td>"
            f"<td><code>{_e(_json(c.get('observed')))}</code></td>"
            f"<td>{_e('' if c.get('success') else c.get('message', ''))}</td></tr>"
        )
    head = "<tr><th>result</th><th>check</th><th>column</th><th>expected</th><th>observed</th><th>message</th></tr>"
    return f"<section><h2>All checks ({len(checks)})</h2><table>{head}{''.join(rows)}</table></section>"


def render(report: Report) -> str:
    """The HTML page of one validation report."""
    passed = report.get("success") is True
    checks, drift = report.get("checks", []), report.get("drift", [])
    errors, warnings = report.get("errors", []), report.get("warnings", [])
    dataset = report.get("dataset", "?")
    rows = report.get("rows")
    facts = [
        f"snapshot {report.get('snapshot', '?')}",
        f"{rows:,} rows × {report.get('columns', '?')} columns" if isinstance(rows, int) else "",
        f"reference {report.get('reference', '?')}",
    ]
    assessed = [d for d in drift if d.get("psi") is not None]
    drifted = [d for d in assessed if d.get("drifted")]
    cards = "".join(
        [
            _card(f"{sum(1 for c in checks if c.get('success'))}/{len(checks)}", "checks passed", "good"),
            _card(len(errors), "errors", "bad" if errors else "good"),
            _card(len(warnings), "warnings", "warn" if warnings else "good"),
            _card(f"{len(drifted)}/{len(assessed)}", "columns drifted", "bad" if drifted else "good"),
        ]
    )
    notice = ""
    if report.get("quarantine"):
        kept = report.get("accepted_snapshot") or "none yet"
        notice = (
            f'<p class="notice">This snapshot was rejected and copied to <code>{_e(report["quarantine"])}</code> '
            f"with this report. The accepted snapshot (<code>{_e(kept)}</code>) and the registered model are "
            "untouched.</p>"
        )
    verdict = "passed" if passed else "failed"
    body = "".join(
        [
            f'<header class="{verdict}"><div class="verdict">validation {verdict}</div>',
            f"<h1>{_e(dataset)}</h1><p>{_e(' · '.join(f for f in facts if f))}</p></header>",
            f'<main><div class="cards">{cards}</div>{notice}',
            _messages("Errors", errors, "errors"),
            _messages("Warnings", warnings, "warnings"),
            _drift_section(drift),
            _checks_section(checks),
            "</main><footer>Written by the tabml validate stage from reports/validation.json. "
            "Self-contained: no script, no network.</footer>",
        ]
    )
    return (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>Validation {verdict}: {_e(dataset)}</title><style>{CSS}</style></head>"
        f"<body>{body}</body></html>\n"
    )


def write_data_docs(report: Report, path: Path) -> Path:
    """Render the report to `path` and return it."""
    return write_text_atomic(path, render(report))
