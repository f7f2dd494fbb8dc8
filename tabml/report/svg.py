"""Line charts as inline SVG strings: no JavaScript, no fonts or files to fetch, readable when printed."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from html import escape

# Tableau 10: distinct in colour and still apart in grey; beyond ten runs, dashes tell the series apart.
PALETTE = ("#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac")
DASHES = ("", "6 3", "2 3", "8 3 2 3")
WIDTH, HEIGHT = 420, 300
MARGIN = {"left": 56, "right": 14, "top": 30, "bottom": 42}


@dataclass(frozen=True)
class Series:
    """One run's line: `key` ties it to the run (for highlighting), `style` is its palette index."""

    key: str
    label: str
    points: Sequence[tuple[float, float]]
    style: int = 0


def color(style: int) -> str:
    return PALETTE[style % len(PALETTE)]


def dash(style: int) -> str:
    return DASHES[(style // len(PALETTE)) % len(DASHES)]


def nice_ticks(low: float, high: float, count: int = 5) -> list[float]:
    """About `count` round tick values covering [low, high] (steps of 1, 2, 2.5 or 5 times a power of ten)."""
    if not (math.isfinite(low) and math.isfinite(high)):
        return [0.0, 1.0]
    if high <= low:
        high = low + (abs(low) or 1.0)
    raw = (high - low) / max(count - 1, 1)
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    start = math.floor(low / step) * step
    ticks, value = [], start
    while value <= high + step * 1e-9:
        ticks.append(round(value, 12))
        value += step
    if ticks[-1] < high:
        ticks.append(round(value, 12))
    return ticks


def _label(value: float) -> str:
    return f"{value:.4g}" if abs(value) < 1e4 else f"{value:.2e}"


def _series_svg(s: Series, sx: Callable[[float], float], sy: Callable[[float], float], markers: bool) -> str:
    """One series as a polyline (and dots, for a single point or when asked), or nothing if it has no points."""
    kept = [(x, y) for x, y in s.points if math.isfinite(x) and math.isfinite(y)]
    if not kept:
        return ""
    path = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in kept)
    dashes = f' stroke-dasharray="{dash(s.style)}"' if dash(s.style) else ""
    parts = [
        f'<g class="series" data-run="{escape(s.key)}"><title>{escape(s.label)}</title>'
        f'<polyline points="{path}" fill="none" stroke="{color(s.style)}" stroke-width="2"{dashes}/>'
    ]
    if markers or len(kept) == 1:
        parts += [f'<circle cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="2.5" fill="{color(s.style)}"/>' for x, y in kept]
    return "".join([*parts, "</g>"])


def line_chart(
    series: Sequence[Series],
    *,
    title: str,
    x_label: str,
    y_label: str,
    x_range: tuple[float, float] | None = None,
    y_range: tuple[float, float] | None = None,
    diagonal: bool = False,
    markers: bool = False,
) -> str:
    """An SVG line chart of every series on shared axes; `diagonal` draws the y = x reference (ROC)."""
    points = [p for s in series for p in s.points if math.isfinite(p[0]) and math.isfinite(p[1])]
    if not points:
        return _empty(title, "no data")
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    x_ticks = nice_ticks(*(x_range or (min(xs), max(xs))))
    y_ticks = nice_ticks(*(y_range or (min(ys), max(ys))))
    x0, x1, y0, y1 = x_ticks[0], x_ticks[-1], y_ticks[0], y_ticks[-1]
    left, top = MARGIN["left"], MARGIN["top"]
    plot_w, plot_h = WIDTH - left - MARGIN["right"], HEIGHT - top - MARGIN["bottom"]

    def sx(x: float) -> float:
        return left + (x - x0) / ((x1 - x0) or 1) * plot_w

    def sy(y: float) -> float:
        return top + plot_h - (y - y0) / ((y1 - y0) or 1) * plot_h

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" width="{WIDTH}" height="{HEIGHT}" '
        f'role="img" aria-label="{escape(title)}" class="chart">',
        f"<title>{escape(title)}</title>",
        f'<text x="{WIDTH / 2}" y="18" text-anchor="middle" class="chart-title">{escape(title)}</text>',
    ]
    for x in x_ticks:
        parts.append(f'<line x1="{sx(x):.1f}" y1="{top}" x2="{sx(x):.1f}" y2="{top + plot_h}" class="grid"/>')
        parts.append(f'<text x="{sx(x):.1f}" y="{top + plot_h + 15}" text-anchor="middle">{_label(x)}</text>')
    for y in y_ticks:
        parts.append(f'<line x1="{left}" y1="{sy(y):.1f}" x2="{left + plot_w}" y2="{sy(y):.1f}" class="grid"/>')
        parts.append(f'<text x="{left - 6}" y="{sy(y) + 4:.1f}" text-anchor="end">{_label(y)}</text>')
    parts.append(f'<rect x="{left}" y="{top}" width="{plot_w}" height="{plot_h}" class="frame"/>')
    if diagonal:
        lo, hi = max(x0, y0), min(x1, y1)
        parts.append(
            f'<line x1="{sx(lo):.1f}" y1="{sy(lo):.1f}" x2="{sx(hi):.1f}" y2="{sy(hi):.1f}" class="diagonal"/>'
        )
    parts += [_series_svg(s, sx, sy, markers) for s in series]
    parts.append(f'<text x="{left + plot_w / 2}" y="{HEIGHT - 6}" text-anchor="middle">{escape(x_label)}</text>')
    parts.append(
        f'<text x="14" y="{top + plot_h / 2}" text-anchor="middle" '
        f'transform="rotate(-90 14 {top + plot_h / 2})">{escape(y_label)}</text>'
    )
    parts.append("</svg>")
    return "".join(parts)


def _empty(title: str, message: str) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" width="{WIDTH}" height="{HEIGHT}" '
        f'role="img" aria-label="{escape(title)}" class="chart">'
        f'<text x="{WIDTH / 2}" y="18" text-anchor="middle" class="chart-title">{escape(title)}</text>'
        f'<text x="{WIDTH / 2}" y="{HEIGHT / 2}" text-anchor="middle" class="muted">{escape(message)}</text></svg>'
    )
