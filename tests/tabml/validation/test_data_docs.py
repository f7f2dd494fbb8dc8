"""Data Docs: one self-contained HTML page per validation, checked in a real headless Chromium."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from tabml.validation.data_docs import render, write_data_docs
from tests.browser import needs_chromium, screenshot

FAILED_RED, PASSED_GREEN, NOW_BLUE = (180, 35, 24), (6, 118, 71), (21, 112, 239)


def report(**overrides: Any) -> dict[str, Any]:
    """A failing report shaped like tasks.validate's (its own tests check the stage writes this shape)."""
    drift = {
        "column": "income",
        "psi": 0.9,
        "threshold": 0.25,
        "action": "block",
        "drifted": True,
        "bins": ["< 10", "[10, 20)", ">= 20"],
        "reference": [0.3, 0.4, 0.3],
        "current": [0.05, 0.25, 0.7],
        "note": "",
    }
    check = {"name": "range", "column": "age", "severity": "error", "success": False, "expected": {"min": 0, "max": 9}}
    return {
        "success": False,
        "dataset": "credit",
        "snapshot": "data/snapshot/table.parquet",
        "accepted_snapshot": "data/snapshot/accepted.parquet",
        "rows": 4454,
        "columns": 14,
        "reference": "references/credit/expectations.json",
        "quarantine": "quarantine/credit/20260301T123005Z",
        "validated_at": "2026-03-01T12:30:05+00:00",
        "seconds": 0.8,
        "errors": ["column 'age': 1 value(s) outside [0, 9], e.g. [500]", "column 'city': e.g. '<script>x</script>'"],
        "warnings": ["column 'branch' is not in the reference (a new column); it is not checked"],
        "drift": [drift, {**drift, "column": "city", "psi": None, "drifted": False, "note": "not assessed: 3 values"}],
        "checks": [
            {**check, "observed": {"max": 500}, "message": "column 'age': 1 value(s) outside [0, 9], e.g. [500]"},
            {**check, "column": "income", "success": True, "observed": None, "message": "ok"},
        ],
        **overrides,
    }


def test_page_is_self_contained_and_escapes_what_the_data_holds() -> None:
    html = render(report())
    assert "<script>x</script>" not in html and "&lt;script&gt;x&lt;/script&gt;" in html
    assert not re.search(r"(?i)(https?:|//[a-z]|<script|<link|@import|url\(|src=)", html)  # nothing to fetch
    assert "Content-Security-Policy" in html and "default-src 'none'" in html  # and the browser may fetch nothing
    for text in ("validation failed", "quarantine/credit/20260301T123005Z", "Errors (2)", "Warnings (1)", "PSI"):
        assert text in html
    assert "4,454 rows × 14 columns" in html and "drift (block)" in html and "not assessed" in html


def test_a_minimal_or_passing_report_renders(tmp_path: Path) -> None:
    path = write_data_docs({"success": True, "dataset": "credit"}, tmp_path / "docs/validation.html")
    html = path.read_text()
    assert "validation passed" in html and "Errors" not in html and "Drift" not in html
    assert "All checks (0)" in html


@needs_chromium
def test_page_renders_styled_in_a_real_headless_browser(tmp_path: Path) -> None:
    failed = screenshot(write_data_docs(report(), tmp_path / "failed.html"), tmp_path / "failed.png", 1280, 1200)
    pixels = sum(failed.values())
    assert failed[FAILED_RED] > 0.03 * pixels  # the red banner and pills: the inline CSS applied
    assert failed[NOW_BLUE] > 200  # the drift bars were drawn
    assert failed[(255, 255, 255)] < 0.9 * pixels  # not a blank page
    passed = screenshot(
        write_data_docs(report(success=True, errors=[], quarantine=None), tmp_path / "passed.html"),
        tmp_path / "passed.png",
        1280,
        1200,
    )
    assert passed[PASSED_GREEN] > 0.03 * sum(passed.values()) and passed[FAILED_RED] < failed[FAILED_RED]


def test_every_histogram_bin_is_labelled_on_the_page() -> None:
    html = render(report())
    labels = re.findall(r'<span class="lab">([^<]*)</span>', html)
    assert labels[:3] == ["&lt; 10", "[10, 20)", "&gt;= 20"]  # under each bar, not only in a tooltip
