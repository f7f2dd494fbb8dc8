"""The report in a real headless browser (Chromium from Debian: `apt-get install -y chromium`), offline."""

from __future__ import annotations

from pathlib import Path

import pytest

from tabml.report.compare import compare
from tabml.report.html import Link, RunLinks, render
from tabml.report.svg import PALETTE
from tests.browser import chromium, needs_chromium, rgb, screenshot
from tests.tabml.report.examples import grid

pytestmark = needs_chromium


@pytest.fixture
def page(tmp_path: Path) -> Path:
    links = {
        "wide": RunLinks(Link("credit v2 (production)", "registry/credit/versions/v2"), Link("Data Docs", "v.html"))
    }
    path = tmp_path / "compare.html"
    path.write_text(render(compare(grid()), links, title="credit: which run is best, and why", subtitle="3 runs"))
    return path


def test_the_page_renders_its_tables_and_charts_in_chromium(page: Path, tmp_path: Path) -> None:
    dom = chromium(tmp_path / "profile", "--dump-dom", page.as_uri()).stdout
    assert dom.count("<svg") == 5 and "Best: wide" in dom and dom.count("<polyline") == 15


def test_a_screenshot_of_the_page_shows_every_runs_lines(page: Path, tmp_path: Path) -> None:
    colours = screenshot(page, tmp_path / "compare.png", 1400, 1800)
    for hex_colour in PALETTE[:3]:
        assert rgb(hex_colour) in colours, f"no pixel of {hex_colour}: a run's lines are missing"
