"""The run's artifacts: `pipeline-summary` in every run, complete on its own; the link and table artifacts only from
the run that produced their content (tabml.orchestration.flow_hooks.publish_summary), under a real Prefect server.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tabml.orchestration.dvc_stages import StageOutcome
from tabml.orchestration.flow_hooks import SUMMARY_KEY
from tests.flows.conftest import PrefectServer
from tests.flows.test_pipeline_dag import flow_run_artifacts
from tests.workspace import example_orchestration


def summary_workspace(tmp_path: Path) -> Any:
    """A workspace's reports (Data Docs, validation, metrics, a registration record) and the flow's params for it."""
    import json

    from tabml.core.ops_params import OrchestrationParams
    from tabml.orchestration.flow_params import FlowParams

    (tmp_path / "reports").mkdir()
    (tmp_path / "reports/docs.html").write_text("<html>docs</html>")
    check = {"name": "type", "column": "Age", "severity": "error", "success": True, "expected": "integer"}
    validation = {"success": True, "data_docs": "reports/docs.html", "checks": [check]}
    (tmp_path / "reports/validation.json").write_text(json.dumps(validation))
    (tmp_path / "reports/metrics.json").write_text(json.dumps({"test": {"auroc": 0.8}, "threshold": 0.4}))
    (tmp_path / "reports/registration.json").write_text(json.dumps({"passed": True, "version": 4}))
    return FlowParams(
        OrchestrationParams.model_validate(example_orchestration()),
        validation_report=tmp_path / "reports/validation.json",
        metrics=tmp_path / "reports/metrics.json",
        registration_record=tmp_path / "reports/registration.json",
        root=tmp_path,
    )


def published_artifacts(params: Any, outcomes: list[StageOutcome]) -> dict[str | None, Any]:
    """The artifacts `publish_summary` leaves in a flow run of its own, by key."""
    from prefect import flow

    from tabml.orchestration.flow_hooks import publish_summary

    @flow(name="summary-only", persist_result=False)
    def summary_only() -> None:
        publish_summary(params, outcomes)

    state = summary_only(return_state=True)
    return flow_run_artifacts(str(state.state_details.flow_run_id))


DOCS_URL = "http://127.0.0.1:4201/docs.html"  # where `make server` serves reports/ (orchestration.reports_server)


def test_the_summary_links_data_docs_over_http_and_tables_metrics_and_checks(
    use_prefect_api: PrefectServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tabml.orchestration.flow_hooks import DATA_DOCS_KEY, METRICS_KEY, VALIDATION_KEY
    from tabml.orchestration.reports_server import REPORTS_URL_ENV

    monkeypatch.delenv(REPORTS_URL_ENV, raising=False)  # the links' base then comes from params
    outcomes = [StageOutcome("validate", "ran", 1.0), StageOutcome("evaluate", "ran", 1.0)]
    artifacts = published_artifacts(summary_workspace(tmp_path), [*outcomes, StageOutcome("register", "skipped", 0)])
    assert set(artifacts) == {SUMMARY_KEY, DATA_DOCS_KEY, VALIDATION_KEY, METRICS_KEY}
    assert f"({DOCS_URL})" in str(artifacts[DATA_DOCS_KEY].data)  # a link artifact: Prefect stores it as Markdown
    assert f"]({DOCS_URL})" in str(artifacts[SUMMARY_KEY].data)
    assert "version: 4" not in str(artifacts[SUMMARY_KEY].data)  # register was skipped: this run registered nothing
    assert "auroc" in str(artifacts[METRICS_KEY].data) and "decision threshold" in str(artifacts[METRICS_KEY].data)
    assert artifacts[METRICS_KEY].type == artifacts[VALIDATION_KEY].type == "table"
    assert "Age" in str(artifacts[VALIDATION_KEY].data)


def test_a_run_publishes_only_the_artifacts_of_what_it_ran_and_a_complete_summary(
    use_prefect_api: PrefectServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tabml.orchestration.flow_hooks import DATA_DOCS_KEY, METRICS_KEY
    from tabml.orchestration.reports_server import REPORTS_URL_ENV

    monkeypatch.delenv(REPORTS_URL_ENV, raising=False)
    params = summary_workspace(tmp_path)
    stages = ("validate", "evaluate", "register")
    nothing_ran = published_artifacts(params, [StageOutcome(name, "skipped", 0.1) for name in stages])
    assert set(nothing_ran) == {SUMMARY_KEY}  # no report or page changed: no new version of their artifacts
    summary = str(nothing_ran[SUMMARY_KEY].data)
    for shown in ("## Validation", "## Evaluation (test split)", "auroc", f"]({DOCS_URL})", "nothing registered"):
        assert shown in summary, shown  # the summary alone still shows every section and every link
    assert summary.count("from the run that last ran it") == 2  # and says the reports are from an earlier run
    only_evaluate = [StageOutcome("validate", "skipped", 0.1), StageOutcome("evaluate", "ran", 1.0)]
    assert set(published_artifacts(params, only_evaluate)) == {SUMMARY_KEY, DATA_DOCS_KEY, METRICS_KEY}
