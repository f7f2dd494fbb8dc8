"""One DAG: the flow plans dvc.yaml's stages in DVC's order and runs them through DVC, leaving what `dvc repro` leaves.

The drift tests read the real dvc.yaml; the run tests use a toy git + DVC repo, under a real Prefect test server.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import psutil
import pytest
import yaml
from prefect.artifacts import Artifact
from prefect.testing.utilities import prefect_test_harness

from flows.pipeline import main, training_pipeline
from tabml.core.dag import stage_order
from tabml.core.params import ParamsError
from tabml.orchestration.dvc_stages import StageFailedError, StageOutcome
from tabml.orchestration.flow_hooks import SUMMARY_KEY
from tabml.orchestration.flow_params import load_flow_params
from tests.tabml.orchestration.test_dvc_stages import (
    TOY_ORDER,
    TOY_STAGES,
    build_toy_template,
    copy_repo,
    dvc,
    write_dvc_yaml,
)
from tests.workspace import EXAMPLE_PARAMS, example_orchestration

PROJECT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def prefect_server() -> Iterator[None]:
    """One temporary Prefect server (SQLite, 127.0.0.1) for the module: starting one takes seconds."""
    with prefect_test_harness(server_startup_timeout=120):  # a loaded 2-core box needs more than 30 s
        yield


@pytest.fixture(scope="module")
def toy_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_toy_template(tmp_path_factory.mktemp("toy-template"))


@pytest.fixture
def toy(toy_template: Path, tmp_path: Path) -> Path:
    return copy_repo(toy_template, tmp_path / "toy")


def run_flow(root: Path) -> tuple[list[StageOutcome], str]:
    state = training_pipeline(root=str(root), return_state=True)
    return state.result(), str(state.state_details.flow_run_id)


def statuses(outcomes: list[StageOutcome]) -> dict[str, str]:
    return {o.name: o.status for o in outcomes}


def summary() -> str:
    artifact = cast(Any, Artifact.get(SUMMARY_KEY))  # sync-compatible API: typed as maybe-a-coroutine
    assert artifact is not None, f"no '{SUMMARY_KEY}' artifact"
    return str(artifact.data)


# --- drift: the real dvc.yaml -------------------------------------------------------------------------


def dependency_pairs(root: Path) -> set[tuple[str, str]]:
    """(stage, a stage it depends on), from DVC's own graph of `root`'s pipeline."""
    from dvc.repo import Repo

    with Repo(str(root), uninitialized=True) as repo:
        return {(stage.name, upstream.name) for stage, upstream in repo.index.graph.edges}


def test_flow_plans_exactly_the_stages_of_dvc_yaml_each_after_its_dependencies() -> None:
    declared = list(yaml.safe_load((PROJECT / "dvc.yaml").read_text())["stages"])
    planned = stage_order(PROJECT)  # what training_pipeline iterates over
    assert sorted(planned) == sorted(declared) and len(planned) == len(set(planned))
    pairs = dependency_pairs(PROJECT)
    assert pairs, "DVC sees no dependencies between the stages: check deps/outs in dvc.yaml"
    for stage, upstream in pairs:
        assert planned.index(upstream) < planned.index(stage), f"{stage} is planned before {upstream}"


def test_a_stage_added_to_dvc_yaml_is_planned_after_what_it_depends_on(tmp_path: Path) -> None:
    spec = yaml.safe_load((PROJECT / "dvc.yaml").read_text())
    new_stage = {"cmd": "python -m tasks.report", "deps": ["${evaluate.metrics}"], "outs": ["reports/report.md"]}
    spec["stages"] = {"report": new_stage, **spec["stages"]}  # declared first, must still run after evaluate
    (tmp_path / "dvc.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    (tmp_path / "params.yaml").write_text((EXAMPLE_PARAMS).read_text())
    planned = stage_order(tmp_path)
    assert "report" in planned and planned.index("report") > planned.index("evaluate")
    assert sorted(planned) == sorted(spec["stages"])


# --- the flow's params ---------------------------------------------------------------------------------


def test_flow_params_read_policies_and_report_paths_from_the_project_file() -> None:
    params = load_flow_params(EXAMPLE_PARAMS)
    assert params.validation_report == EXAMPLE_PARAMS.parent / "reports/validation.json"
    assert params.metrics is not None and params.registration_record is not None
    assert params.orchestration.policy("no-such-stage").retries == 0


def test_flow_params_tolerate_missing_sections(tmp_path: Path) -> None:
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump({"orchestration": example_orchestration({"first": {"retries": 2}})}))
    params = load_flow_params(path)
    assert params.orchestration.policy("first").retries == 2
    assert (params.validation_report, params.metrics, params.registration_record) == (None, None, None)


def test_flow_params_reject_an_unknown_policy_key_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump({"orchestration": example_orchestration({"train": {"retry": 2}})}))
    with pytest.raises(ParamsError, match=r"orchestration\.stages\.train\.retry"):
        load_flow_params(path)
    with pytest.raises(ParamsError, match="file not found"):
        load_flow_params(tmp_path / "absent.yaml")


# --- runs on the toy repo --------------------------------------------------------------------------------


@pytest.mark.slow
def test_flow_runs_then_skips_and_leaves_exactly_what_dvc_repro_leaves(
    prefect_server: None, toy_template: Path, tmp_path: Path
) -> None:
    flow_repo, twin = copy_repo(toy_template, tmp_path / "flow"), copy_repo(toy_template, tmp_path / "twin")

    outcomes, flow_run_id = run_flow(flow_repo)
    assert [o.name for o in outcomes] == TOY_ORDER  # dvc.yaml declares them out of order
    assert statuses(outcomes) == dict.fromkeys(TOY_ORDER, "ran")
    assert (flow_repo / "seen" / "first.txt").read_text() == flow_run_id  # TABML_FLOW_RUN_ID reached the stage
    assert "| 3 | third | ran |" in summary()

    outcomes, _ = run_flow(flow_repo)
    assert statuses(outcomes) == dict.fromkeys(TOY_ORDER, "skipped")
    assert "| 1 | first | skipped (unchanged) |" in summary()

    assert "Data and pipelines are up to date." in dvc("status", cwd=flow_repo).stdout
    repro = dvc("repro", cwd=flow_repo).stdout
    assert "Running stage" not in repro and "Data and pipelines are up to date." in repro

    dvc("repro", cwd=twin)
    assert (flow_repo / "dvc.lock").read_bytes() == (twin / "dvc.lock").read_bytes()
    for out in ("first.txt", "second.txt", "third.txt"):
        assert (flow_repo / out).read_bytes() == (twin / out).read_bytes()


def test_flow_reruns_only_the_changed_stage_and_downstream_unless_forced(prefect_server: None, toy: Path) -> None:
    run_flow(toy)
    (toy / "extra.txt").write_text("extra, edited\n")
    outcomes, _ = run_flow(toy)
    assert statuses(outcomes) == {"first": "skipped", "second": "ran", "third": "ran"}
    forced = training_pipeline(root=str(toy), force=True)
    assert statuses(forced) == dict.fromkeys(TOY_ORDER, "ran")


def break_second(root: Path) -> None:
    broken = dict(TOY_STAGES["second"], cmd="python -c \"raise SystemExit('second is broken on purpose')\"")
    write_dvc_yaml(root, dict(TOY_STAGES, second=broken))


def test_failing_stage_stops_the_flow_naming_the_stage_and_its_error(prefect_server: None, toy: Path) -> None:
    break_second(toy)
    with pytest.raises(StageFailedError, match="stage 'second' failed") as caught:
        training_pipeline(root=str(toy))
    assert caught.value.stage == "second"
    assert "second is broken on purpose" in str(caught.value)
    assert not (toy / "third.txt").exists()
    assert list(yaml.safe_load((toy / "dvc.lock").read_text())["stages"]) == ["first"]
    text = summary()
    assert "FAILED at `second`" in text and "| 3 | third | not run | |" in text
    assert "second is broken on purpose" in text


def test_main_exits_non_zero_and_says_which_stage_failed(
    prefect_server: None, toy: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    break_second(toy)
    assert main(["--root", str(toy)]) == 1
    assert "pipeline FAILED: stage 'second' failed" in capsys.readouterr().err


def test_timeout_fails_the_stage_and_stops_its_command(prefect_server: None, toy: Path) -> None:
    nap = "import os, time; open('nap.pid', 'w').write(str(os.getpid())); time.sleep(60)"
    write_dvc_yaml(toy, {"nap": {"cmd": f'python -c "{nap}"', "outs": ["nap.txt"]}})
    (toy / "params.yaml").write_text(
        yaml.safe_dump({"orchestration": example_orchestration({"nap": {"timeout_seconds": 1}})})
    )
    with pytest.raises(StageFailedError, match=r"stage 'nap' failed: timed out after 1\.0s .*timeout_seconds"):
        training_pipeline(root=str(toy))
    pid = int((toy / "nap.pid").read_text())
    assert not psutil.pid_exists(pid), "the timed-out stage command is still running"


def task_run_states(flow_run_id: str, expected: int) -> dict[str, tuple[str, str]]:
    """{task run name: (state type, state name)} of a flow run, read back from the server's API.

    Prefect records task runs from the events a run emits, a moment after the run ends: wait for them.
    """
    import time

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    deadline = time.monotonic() + 30
    with get_client(sync_client=True) as client:
        while True:
            runs = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])))
            states = {run.name: (run.state_type.value if run.state_type else "", run.state_name or "") for run in runs}
            done = all(kind in {"COMPLETED", "FAILED", "CANCELLED"} for kind, _ in states.values())
            if (len(states) >= expected and done) or time.monotonic() > deadline:
                return states
            time.sleep(0.2)


def test_every_stage_is_a_task_run_named_after_it_and_skipped_ones_say_so(prefect_server: None, toy: Path) -> None:
    _, first_run = run_flow(toy)
    assert task_run_states(first_run, len(TOY_ORDER)) == dict.fromkeys(TOY_ORDER, ("COMPLETED", "Completed"))
    (toy / "extra.txt").write_text("extra, edited\n")  # second and third change; first is up to date
    outcomes, second_run = run_flow(toy)
    assert statuses(outcomes) == {"first": "skipped", "second": "ran", "third": "ran"}
    assert task_run_states(second_run, len(TOY_ORDER)) == {
        "first": ("COMPLETED", "Skipped"),
        "second": ("COMPLETED", "Completed"),
        "third": ("COMPLETED", "Completed"),
    }
    _, third_run = run_flow(toy)
    assert task_run_states(third_run, len(TOY_ORDER)) == dict.fromkeys(TOY_ORDER, ("COMPLETED", "Skipped"))


def flow_run_artifacts(flow_run_id: str) -> dict[str | None, Any]:
    """{key: artifact} of one flow run, from the server (unkeyed ones under None)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    with get_client(sync_client=True) as client:
        found = client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id]))
        )
    return {artifact.key: artifact for artifact in found}


def test_a_run_leaves_only_its_named_artifacts_no_result_storage_json(prefect_server: None, toy: Path) -> None:
    _, ok_run = run_flow(toy)
    assert set(flow_run_artifacts(ok_run)) == {SUMMARY_KEY}
    break_second(toy)
    state = training_pipeline(root=str(toy), return_state=True)
    assert state.is_failed()
    assert set(flow_run_artifacts(str(state.state_details.flow_run_id))) == {SUMMARY_KEY}


def test_a_failed_run_has_a_task_run_for_every_stage_the_ones_after_the_failure_not_run(
    prefect_server: None, toy: Path
) -> None:
    break_second(toy)
    state = training_pipeline(root=str(toy), return_state=True)
    assert state.is_failed()
    assert task_run_states(str(state.state_details.flow_run_id), len(TOY_ORDER)) == {
        "first": ("COMPLETED", "Completed"),
        "second": ("FAILED", "Failed"),
        "third": ("CANCELLED", "NotRun"),
    }
