"""The page: self-contained, and it shows the ranking, params diff, curves, gate decisions and links."""

from __future__ import annotations

import re
from dataclasses import replace
from xml.etree import ElementTree

import pytest

from tabml.report.compare import compare
from tabml.report.html import Link, RunLinks, macro_curve, render
from tabml.report.svg import line_chart, nice_ticks
from tests.tabml.report.examples import grid

LINKS = {
    "wide": RunLinks(
        Link("credit v2 (production)", "../registry/credit/versions/v2"),
        Link("Data Docs", "validation.html"),
        Link("id-wide"),
    ),
    "main": RunLinks(Link("credit v1: not in registry (registered in another workspace)")),
}


def page() -> str:
    return render(compare(grid()), LINKS, title="credit: which run is best", subtitle="3 runs")


def test_the_page_fetches_nothing() -> None:
    html = page()
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", html), "a resource by URL"
    assert "<link" not in html and "@import" not in html and "url(" not in html
    assert "<script src" not in html
    assert html.count("<svg") == 5  # val loss, train loss, val auroc, ROC, PR


def test_the_page_answers_which_run_is_best_first() -> None:
    html = page()
    verdict = html.index('class="verdict"')
    assert html.index("Best: wide", verdict) < html.index("<h2>Metrics")
    rows = re.findall(r'<tr data-run="([^"]+)"', html)
    assert rows == ["wide", "fast-lr", "main"]
    assert '<td class="num best">0.8610</td>' in html  # best auroc highlighted
    assert '<td class="num best">0.4300</td>' in html  # log_loss: lowest is best


def test_params_diff_and_links_are_shown() -> None:
    html = page()
    assert "<code>train.lr</code>" in html and "<code>train.hidden_sizes</code>" in html
    assert '<td class="changed">0.003</td>' in html  # differs from the baseline
    assert '<a href="../registry/credit/versions/v2">credit v2 (production)</a>' in html
    assert '<a href="validation.html">Data Docs</a>' in html
    assert "registered in another workspace" in html
    assert '<span class="muted">id-wide</span>' in html  # the W&B run id, as text


def test_text_from_runs_is_escaped() -> None:
    runs = grid()
    runs[1] = replace(runs[1], name="<script>alert(1)</script>")
    html = render(compare(runs), {}, title="t", subtitle="s")
    assert "<script>alert(1)" not in html and "&lt;script&gt;alert(1)" in html


def test_every_chart_is_well_formed_svg() -> None:
    html = page()
    for svg in re.findall(r"<svg.*?</svg>", html, flags=re.S):
        ElementTree.fromstring(svg)  # raises on malformed markup


def test_a_chart_without_points_says_so() -> None:
    assert "no data" in line_chart([], title="ROC", x_label="x", y_label="y")


@pytest.mark.parametrize(("low", "high"), [(0.0, 1.0), (0.41, 0.47), (3.0, 3.0), (-2.0, 250.0)])
def test_ticks_are_round_and_cover_the_range(low: float, high: float) -> None:
    ticks = nice_ticks(low, high)
    assert ticks[0] <= low and ticks[-1] >= high and 2 <= len(ticks) <= 12
    steps = {round(b - a, 9) for a, b in zip(ticks, ticks[1:], strict=False)}
    assert len(steps) == 1


def test_one_vs_rest_curves_are_averaged_over_classes() -> None:
    rows = [
        {"class": c, "fpr": x, "tpr": y}
        for c, ys in (("a", (0, 1, 1)), ("b", (0, 0, 1)))
        for x, y in zip((0, 0.5, 1), ys, strict=True)
    ]
    curve = dict(macro_curve(rows, "fpr", "tpr"))
    assert curve[0.0] == 0.0 and curve[1.0] == 1.0 and curve[0.5] == pytest.approx(0.5)


def test_regression_runs_get_no_roc_or_pr_charts() -> None:
    runs = [
        replace(r, metrics={"task": "regression", "test": {"rmse": 1.0 + i}}, curves={}) for i, r in enumerate(grid())
    ]
    html = render(compare(runs), {}, title="t", subtitle="s")
    assert "ROC" not in html and "Training: validation loss" in html
    assert compare(runs).primary == "rmse"
