"""The monitor's findings as one summary (JSON-able), an offline HTML page (no network needed) and Markdown for the
Prefect artifact."""

from __future__ import annotations

import html
from dataclasses import asdict
from pathlib import Path
from typing import Any

from tabml.monitor.assess import LivePerformance
from tabml.monitor.trigger import Decision
from tabml.validation.drift import ColumnDrift


def summary(
    name: str,
    version: int,
    rows: int,
    features: list[ColumnDrift],
    prediction: ColumnDrift | None,
    live: LivePerformance | None,
    decision: Decision,
    triggered: str | None,
) -> dict[str, Any]:
    """Pure: what one monitor run found and did."""
    return {
        "model": name,
        "version": version,
        "rows": rows,
        "features": [{"column": d.column, "psi": d.psi, "drifted": d.drifted, "note": d.note} for d in features],
        "prediction": None if prediction is None else {"column": prediction.column, "psi": prediction.psi},
        "live": None if live is None else asdict(live),
        "reasons": decision.reasons,
        "held_back": decision.held_back,
        "retrain": decision.retrain,
        "triggered_flow_run": triggered,
    }


def _psi(value: float | None) -> str:
    return "not assessed" if value is None else f"{value:.4f}"


def markdown(s: dict[str, Any]) -> str:
    lines = [f"# Monitor: {s['model']} v{s['version']}, {s['rows']} logged rows", ""]
    verdict = "retraining triggered" if s["retrain"] else s["held_back"] or "nothing crossed a threshold"
    lines += [f"**{verdict}**", "", *[f"- {r}" for r in s["reasons"]], ""]
    lines += ["| feature | PSI | drifted |", "|---|---|---|"]
    lines += [f"| {f['column']} | {_psi(f['psi'])} | {'yes' if f['drifted'] else ''} |" for f in s["features"]]
    if s["prediction"]:
        lines += ["", f"Prediction drift ({s['prediction']['column']}): PSI {_psi(s['prediction']['psi'])}"]
    if s["live"]:
        live = s["live"]
        lines += [
            "",
            f"Live {live['metric']}: {live['value']:.4f} ({live['confidence']:.0%} interval {live['low']:.4f}-"
            f"{live['high']:.4f}, {live['rows']} labelled rows; registered {live['registered']})",
        ]
    return "\n".join(lines) + "\n"


def write_html(s: dict[str, Any], path: Path) -> Path:
    """A self-contained page of the same content as the artifact."""
    rows = "".join(
        f"<tr class={'drift' if f['drifted'] else 'ok'}><td>{html.escape(f['column'])}</td><td>{_psi(f['psi'])}</td>"
        f"<td>{html.escape(f['note'])}</td></tr>"
        for f in s["features"]
    )
    verdict = "retraining triggered" if s["retrain"] else s["held_back"] or "nothing crossed a threshold"
    reasons = "".join(f"<li>{html.escape(r)}</li>" for r in s["reasons"])
    extra = ""
    if s["prediction"]:
        extra += f"<p>Prediction drift ({html.escape(s['prediction']['column'])}): {_psi(s['prediction']['psi'])}</p>"
    if s["live"]:
        live = s["live"]
        extra += (
            f"<p>Live {live['metric']}: {live['value']:.4f} [{live['low']:.4f}, {live['high']:.4f}] on "
            f"{live['rows']} labelled rows (registered {live['registered']})</p>"
        )
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>Monitor {html.escape(s["model"])}</title>
<style>body{{font-family:sans-serif;margin:2em}} td,th{{padding:4px 10px;border-bottom:1px solid #ddd}}
tr.drift td{{background:#fde2e2}}</style></head><body>
<h1>{html.escape(s["model"])} v{s["version"]}: {s["rows"]} logged rows</h1>
<p><b>{html.escape(verdict)}</b></p><ul>{reasons}</ul>{extra}
<table><tr><th>feature</th><th>PSI</th><th>note</th></tr>{rows}</table></body></html>
"""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(page)
    tmp.replace(path)  # a browser never shows half a page
    return path
