"""The comparison as one self-contained HTML page: inline CSS, inline SVG charts, a few lines of inline JS.

Nothing is fetched: no CDN, no fonts, no images by URL, so the page works offline, from a file or an email.
Pure: a Comparison and the resolved links in, the page text out.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from html import escape
from typing import Any

import numpy as np

from tabml.report.compare import MISSING, Comparison, gate_sentence, show
from tabml.report.runs import Run
from tabml.report.svg import Series, color, dash, line_chart

GRID = np.linspace(0.0, 1.0, 101)


@dataclass(frozen=True)
class Link:
    text: str
    href: str | None = None  # None: shown as text (the target is not here)

    def html(self) -> str:
        if self.href is None:
            return f'<span class="muted">{escape(self.text)}</span>'
        return f'<a href="{escape(self.href)}">{escape(self.text)}</a>'


@dataclass(frozen=True)
class RunLinks:
    model: Link | None = None  # the registry version this run produced
    data_docs: Link | None = None  # the validation report as HTML (Great Expectations Data Docs)
    wandb: Link | None = None


CSS = """
:root { color-scheme: light; --fg: #1f2328; --muted: #656d76; --line: #d0d7de; --best: #dafbe1; --bad: #ffebe9; }
* { box-sizing: border-box; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif;
       color: var(--fg); margin: 0 auto; padding: 20px 28px 60px; max-width: 1400px; background: #fff; }
h1 { font-size: 22px; margin: 0 0 2px; }
h2 { font-size: 17px; margin: 28px 0 8px; border-bottom: 1px solid var(--line); }
.muted, .meta { color: var(--muted); } .meta { margin-bottom: 14px; }
.verdict { border: 1px solid #1a7f37; background: #f0fff4; border-radius: 6px; padding: 10px 16px; }
.verdict p { margin: 4px 0; } .verdict p:first-child { font-size: 16px; font-weight: 600; }
.warning { border: 1px solid #d4a72c; background: #fff8c5; border-radius: 6px; padding: 6px 14px; margin-top: 8px; }
table { border-collapse: collapse; margin: 6px 0; font-variant-numeric: tabular-nums; font-size: 13px; }
.scroll { overflow-x: auto; } td.name { white-space: nowrap; } td.gate { max-width: 240px; }
th, td { border: 1px solid var(--line); padding: 4px 8px; text-align: left; vertical-align: top; }
th { background: #f6f8fa; font-weight: 600; } td.num { text-align: right; }
td.best { background: var(--best); font-weight: 600; } td.changed { background: #fff8c5; }
td.refused { background: var(--bad); } tr.failed td { color: var(--muted); }
.chip { display: inline-block; width: 22px; height: 0; border-top: 3px solid; vertical-align: middle;
        margin-right: 6px; }
.legend { display: flex; flex-wrap: wrap; gap: 4px 16px; margin: 6px 0 10px; }
.legend span, tr[data-run] { cursor: pointer; }
.charts { display: flex; flex-wrap: wrap; gap: 12px; }
.chart { border: 1px solid var(--line); border-radius: 6px; background: #fff; }
.chart text { font-size: 11px; fill: var(--fg); } .chart .chart-title { font-size: 13px; font-weight: 600; }
.chart .grid { stroke: #eaeef2; } .chart .frame { fill: none; stroke: var(--line); }
.chart .diagonal { stroke: #8c959f; stroke-dasharray: 4 4; } .chart .muted { fill: var(--muted); }
.dim .series:not(.focus) { opacity: 0.15; } tr.focus td { outline: 2px solid #0969da; }
ul.reasons { margin: 0; padding-left: 18px; } details { margin: 6px 0; } code { font-size: 12px; }
"""

# Hover a run (legend, table row, line) to bring its lines forward in every chart; works without it too.
JS = """
document.querySelectorAll('[data-run]').forEach(function (el) {
  el.addEventListener('mouseenter', function () { focus(el.getAttribute('data-run')); });
  el.addEventListener('mouseleave', function () { focus(null); });
});
function focus(run) {
  document.body.classList.toggle('dim', run !== null);
  document.querySelectorAll('[data-run]').forEach(function (el) {
    el.classList.toggle('focus', run !== null && el.getAttribute('data-run') === run);
  });
}
"""


def _num(value: object) -> str:
    return f"{value:.4f}" if isinstance(value, float) else escape(str(value))


def macro_curve(rows: Sequence[Mapping[str, Any]], x: str, y: str) -> list[tuple[float, float]]:
    """One curve from the rows: as is, or for one-vs-rest rows (a `class` column) their average over classes."""
    by_class: dict[str, list[tuple[float, float]]] = {}
    for row in rows:
        if isinstance(row.get(x), int | float) and isinstance(row.get(y), int | float):
            by_class.setdefault(str(row.get("class", "")), []).append((float(row[x]), float(row[y])))
    if len(by_class) <= 1:
        points = next(iter(by_class.values()), [])
        return sorted(points, key=lambda p: (p[0], p[1] if x == "fpr" else -p[1]))
    curves = []
    for points in by_class.values():
        points.sort()
        curves.append(np.interp(GRID, [p[0] for p in points], [p[1] for p in points]))
    mean = np.mean(curves, axis=0)
    return [(float(a), float(b)) for a, b in zip(GRID, mean, strict=True)]


def _charts(comparison: Comparison, styles: Mapping[str, int]) -> list[str]:
    runs = [r for r in comparison.runs if not r.failed]
    charts = []
    history_columns = {c for r in runs for row in r.history for c in row}
    for column, label in (
        ("val_loss", "validation loss"),
        ("train_loss", "training loss"),
        (f"val_{comparison.primary}", f"validation {comparison.primary}"),
    ):
        if column not in history_columns:
            continue
        series = [
            Series(
                r.name,
                r.name,
                [(row["epoch"], row[column]) for row in r.history if column in row and "epoch" in row],
                styles[r.name],
            )
            for r in runs
        ]
        charts.append(line_chart(series, title=f"Training: {label}", x_label="epoch", y_label=label, markers=True))
    multiclass = any(r.task == "multiclass" for r in runs)
    suffix = " (macro average over classes)" if multiclass else ""
    for file, x, y, title, diagonal in (
        ("roc.json", "fpr", "tpr", "ROC (test)", True),
        ("precision_recall.json", "recall", "precision", "Precision-recall (test)", False),
    ):
        series = [
            Series(r.name, r.name, macro_curve(r.curves[file], x, y), styles[r.name]) for r in runs if file in r.curves
        ]
        if series:
            charts.append(
                line_chart(
                    series,
                    title=title + suffix,
                    x_label="false positive rate" if x == "fpr" else "recall",
                    y_label="true positive rate" if y == "tpr" else "precision",
                    x_range=(0, 1),
                    y_range=(0, 1),
                    diagonal=diagonal,
                )
            )
    return charts


def _metrics_table(comparison: Comparison, links: Mapping[str, RunLinks], styles: Mapping[str, int]) -> str:
    head = ["#", "run", "created"] + comparison.metric_names + ["gate", "model version", "validation", "W&B run"]
    rows = ["<tr>" + "".join(f"<th>{escape(h)}</th>" for h in head) + "</tr>"]
    for position, run in enumerate(comparison.runs, start=1):
        link = links.get(run.name, RunLinks())
        cells = [
            f'<td class="num">{position}</td>',
            f'<td class="name"><span class="chip" style="border-color:{color(styles[run.name])}"></span>'
            f'{escape(run.name)}<br><span class="muted">{escape(run.source)}</span></td>',
            f"<td>{escape((run.created or '')[:16].replace('T', ' '))}</td>",
        ]
        for metric in comparison.metric_names:
            value = run.test.get(metric)
            best = comparison.best_by_metric.get(metric) == run.name
            cells.append(f'<td class="num{" best" if best else ""}">{"" if value is None else f"{value:.4f}"}</td>')
        refused = bool(run.registration and run.registration.get("passed") is False)
        cells.append(f'<td class="gate{" refused" if refused else ""}">{escape(gate_sentence(run))}</td>')
        cells.append(f"<td>{link.model.html() if link.model else ''}</td>")
        cells.append(f"<td>{_validation_cell(run, link)}</td>")
        cells.append(f"<td>{link.wandb.html() if link.wandb else ''}</td>")
        failed = ' class="failed"' if run.failed else ""
        rows.append(f'<tr data-run="{escape(run.name)}"{failed}>' + "".join(cells) + "</tr>")
    return '<div class="scroll"><table>' + "".join(rows) + "</table></div>"


def _validation_cell(run: Run, link: RunLinks) -> str:
    report = run.validation
    if not report:
        return ""
    success = report.get("success")
    text = "passed" if success is True else "FAILED" if success is False else "?"
    counts = [f"{len(v)} {k}" for k in ("errors", "warnings") if isinstance(v := report.get(k), list) and v]
    text += f" ({', '.join(counts)})" if counts else ""
    return escape(text) + (f"<br>{link.data_docs.html()}" if link.data_docs else "")


def _params_table(comparison: Comparison) -> str:
    runs = [r for r in comparison.runs if r.params]
    if not comparison.differing:
        return '<p class="muted">Every run has the same params.</p>'
    reference = comparison.reference
    head = "<tr><th>param</th>" + "".join(f"<th>{escape(r.name)}</th>" for r in runs) + "</tr>"
    rows = [head]
    for key in comparison.differing:
        cells = []
        for run in runs:
            value = run.params.get(key, MISSING)
            changed = (
                reference is not None
                and run is not reference
                and show(value) != show(reference.params.get(key, MISSING))
            )
            cells.append(f'<td class="{"changed" if changed else ""}">{escape(show(value))}</td>')
        rows.append(f"<tr><td><code>{escape(key)}</code></td>{''.join(cells)}</tr>")
    note = f' <span class="muted">(highlighted: differs from {escape(reference.name)})</span>' if reference else ""
    return f'<div class="scroll"><table>{"".join(rows)}</table></div>{note}'


def _gate_details(comparison: Comparison) -> str:
    parts = []
    for run in comparison.runs:
        record = run.registration or {}
        reasons = [str(r) for r in record.get("reasons") or []] + [
            f"held back: {h}" for h in record.get("held_back") or []
        ]
        items = "".join(f"<li>{escape(r)}</li>" for r in reasons) or "<li class='muted'>no checks recorded</li>"
        parts.append(f"<p><b>{escape(run.name)}</b>: {escape(gate_sentence(run))}</p><ul class='reasons'>{items}</ul>")
    return "".join(parts)


def render(comparison: Comparison, links: Mapping[str, RunLinks], *, title: str, subtitle: str) -> str:
    """The whole page."""
    styles = {run.name: i for i, run in enumerate(comparison.runs)}
    legend = "".join(
        f'<span data-run="{escape(r.name)}"><span class="chip" style="border-color:{color(styles[r.name])};'
        f'{"border-top-style:dashed;" if dash(styles[r.name]) else ""}"></span>{escape(r.name)}</span>'
        for r in comparison.runs
        if not r.failed
    )
    warnings = "".join(f'<div class="warning">{escape(w)}</div>' for w in comparison.warnings)
    constant = "".join(
        f"<tr><td><code>{escape(k)}</code></td><td>{escape(show(v))}</td></tr>" for k, v in comparison.constant.items()
    )
    notes = "".join(
        f"<li><b>{escape(r.name)}</b>: {escape('; '.join(r.notes))}</li>" for r in comparison.runs if r.notes
    )
    charts = _charts(comparison, styles)
    direction = f" (lower is better for {escape(comparison.primary)})" if comparison.lower_is_better else ""
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{escape(title)}</title><style>{CSS}</style></head>
<body>
<h1>{escape(title)}</h1>
<div class="meta">{escape(subtitle)}</div>
<div class="verdict">{"".join(f"<p>{escape(line)}</p>" for line in comparison.verdict)}</div>
{warnings}
<h2>Metrics (test split), best first by {escape(comparison.primary)}</h2>
{_metrics_table(comparison, links, styles)}
<p class="muted">Green: the best value of each metric{direction}.</p>
<h2>Params that differ</h2>
{_params_table(comparison)}
<details><summary>{len(comparison.constant)} params shared by every run</summary><table>{constant}</table></details>
<h2>Curves</h2>
<div class="legend">{legend}</div>
<div class="charts">{"".join(charts) or '<p class="muted">No training history or curves in these runs.</p>'}</div>
<h2>Gate decisions</h2>
{_gate_details(comparison)}
{f"<h2>Notes</h2><ul>{notes}</ul>" if notes else ""}
<script>{JS}</script>
</body></html>
"""
