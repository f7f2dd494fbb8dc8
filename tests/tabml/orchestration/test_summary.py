"""The run summary's Markdown, built from tiny inline reports; every report field may be missing."""

from __future__ import annotations

from tabml.orchestration.dvc_stages import StageOutcome
from tabml.orchestration.reports_server import Page
from tabml.orchestration.summary import WRAP, metrics_table, status_line, summary_markdown, validation_table

RAN = StageOutcome("ingest", "ran", 3.24)
SKIPPED = StageOutcome("validate", "skipped", 0.21)


def test_status_line_counts_names_and_times_the_stage() -> None:
    assert status_line(3, 6, StageOutcome("preprocess", "skipped", 0.2)) == "[3/6] preprocess: skipped (unchanged) 0.2s"
    assert status_line(1, 6, RAN) == "[1/6] ingest: ran 3.2s"


def test_successful_run_lists_every_stage_and_only_the_reports_given() -> None:
    text = summary_markdown([RAN, SKIPPED])
    assert text.startswith("# Training pipeline: succeeded\n")
    assert "| 1 | ingest | ran | 3.2 |" in text
    assert "| 2 | validate | skipped (unchanged) | 0.2 |" in text
    assert "## Validation" not in text and "## Evaluation" not in text and "## Registration" not in text


def test_failed_run_marks_the_stage_shows_its_error_and_what_did_not_run() -> None:
    error = "stage 'validate' failed: 3 errors"
    text = summary_markdown([RAN], failed_stage="validate", error=error, not_run=["train"])
    assert text.startswith("# Training pipeline: FAILED at `validate`")
    assert "| 2 | validate | **failed** | |" in text
    assert "| 3 | train | not run | |" in text
    assert "```\nstage 'validate' failed: 3 errors\n```" in text


def test_validation_lists_messages_and_cuts_long_lists() -> None:
    errors = [f"column c{i}: nulls above reference" for i in range(12)]
    text = summary_markdown([], validation={"success": False, "rows": 980, "errors": errors, "warnings": 2})
    assert "result: **failed**, rows: 980" in text
    assert "errors: 12" in text and "- column c9: nulls above reference" in text
    assert "- column c10" not in text and "- ... and 2 more" in text
    assert "warnings: 2" in text


def test_reports_missing_every_field_still_render() -> None:
    text = summary_markdown([], validation={}, metrics={}, registration={})
    assert "## Validation\n\nresult: unknown" in text
    assert "no test metrics in the report" in text
    assert "gate: unknown" in text


def test_metrics_table_rounds_floats_and_escapes_cell_text() -> None:
    metrics = {"task": "binary", "n_test": 200, "threshold": 0.5, "test": {"auroc": 0.812345678, "f1|macro": 0.7}}
    text = summary_markdown([], metrics=metrics)
    assert "task: binary, n_test: 200, threshold: 0.5" in text
    assert "| auroc | 0.8123 |" in text
    assert "| f1\\|macro | 0.7 |" in text


def test_registration_shows_gate_version_and_stage() -> None:
    assert "gate: registered, version: 3, stage: production" in summary_markdown(
        [], registration={"passed": True, "version": 3, "stage": "production"}
    )
    refused = summary_markdown([], registration={"passed": False, "version": None})
    assert "gate: **not registered** (gate failed)" in refused and "version" not in refused


def test_a_truthy_non_bool_is_not_taken_for_success() -> None:
    assert "result: unknown" in summary_markdown([], validation={"success": 1})


def test_validation_section_names_the_quarantine() -> None:
    markdown = summary_markdown(
        [], validation={"success": False, "rows": 10, "quarantine": "quarantine/credit/20261122T000000Z"}
    )
    assert "quarantine/credit/20261122T000000Z" in markdown and "## Pages" not in markdown


def test_pages_are_http_links_when_served_and_paths_with_the_reason_when_not() -> None:
    docs = Page(
        "data-docs", "Data Docs", "reports/validation.html", "validate", "http://127.0.0.1:4201/validation.html"
    )
    plots = Page("dvc-plots", "plots", "dvc_plots/index.html", "the last `make plots`", None)
    served = summary_markdown([], pages=[docs], served_at="http://127.0.0.1:4201")
    assert "- Data Docs: [http://127.0.0.1:4201/validation.html](http://127.0.0.1:4201/validation.html)" in served
    assert "by `make server` at http://127.0.0.1:4201" in served and "not served" not in served
    mixed = summary_markdown([], pages=[docs, plots], served_at="http://127.0.0.1:4201")
    assert "- plots: `dvc_plots/index.html` (written by the last `make plots`)" in mixed
    assert "orchestration.reports_server.port is null" in mixed and "TABML_REPORTS_URL" in mixed
    unserved = summary_markdown([], pages=[plots])
    assert "](" not in unserved and "`make server` at" not in unserved


def test_a_skipped_register_says_nothing_was_registered_whatever_the_last_record_says() -> None:
    skipped = [StageOutcome("evaluate", "skipped", 0.1), StageOutcome("register", "skipped", 0.1)]
    text = summary_markdown(skipped, metrics={"test": {"auroc": 0.8}}, registration={"passed": True, "version": 4})
    assert "nothing registered" in text and "version: 4" not in text and "registered, " not in text
    assert "`evaluate` was up to date in this run" in text  # the metrics are from an earlier run, and it says so


def test_a_long_failure_reason_is_folded_not_cut() -> None:
    reason = "stage 'register' failed: " + " ".join(f"word{i}" for i in range(60)) + " " + "x" * 150
    text = summary_markdown([], failed_stage="register", error=reason)
    block = text.split("```")[1].strip("\n").splitlines()
    assert all(len(line) <= WRAP for line in block)
    assert " ".join(block).replace("  ", " ").count("word59") == 1 and "x" * 90 in "".join(block)


def test_metrics_and_validation_tables_hold_every_metric_and_failed_checks_first() -> None:
    rows = metrics_table({"test": {"auroc": 0.812345, "f1": 0.5}, "threshold": 0.33, "n_test": 9})
    assert rows == [
        {"metric": "auroc", "value": "0.8123"},
        {"metric": "f1", "value": "0.5"},
        {"metric": "decision threshold", "value": "0.33"},
    ]
    checks = [
        {"name": "type", "column": "Age", "severity": "error", "success": True, "expected": "integer"},
        {"name": "row_count", "column": None, "severity": "warning", "success": False, "observed": 3},
    ]
    table = validation_table({"checks": checks})
    assert [(r["name"], r["result"], r["column"]) for r in table] == [
        ("row_count", "FAILED", ""),
        ("type", "passed", "Age"),
    ]
