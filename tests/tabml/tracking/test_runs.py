"""W&B tracking: one run per pipeline run, grouped by experiment, never failing a stage, uploaded once.

The uploads go to `tests.tabml.tracking.fake_wandb`, a stand-in server on 127.0.0.1 that answers the calls wandb 0.31's
`wandb sync` makes (including the resume status of a run it already holds), so the real wandb CLI runs end to end.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tabml.core.ops_params import TrackingParams
from tabml.core.params import Params, load_params
from tabml.tracking import runs as tracking
from tabml.tracking import stage_reports
from tabml.tracking.runs import experiment_group, init_run, resume_run_id, tracking_dir
from tabml.tracking.stage_reports import evaluation_summary, registration_summary, track_stage
from tabml.tracking.sync import find_offline_runs
from tabml.training.trained_model import recorded_run_id
from tasks.evaluate import charts_of
from tests.tabml.tracking.fake_wandb import fake_wandb_server
from tests.workspace import EXAMPLE_PARAMS

FAKE_KEY = "k" * 40  # wandb wants a 40-character key; the fake server accepts any


@pytest.fixture(autouse=True)
def plain_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (tracking.RUN_ID_ENV, tracking.EXPERIMENT_ENV, tracking.PROJECT_ROOT_ENV, tracking.INIT_TIMEOUT_ENV):
        monkeypatch.delenv(name, raising=False)


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---- run ids, groups, folders ------------------------------------------------------------------------------


def test_later_stages_join_the_flow_run_else_the_run_train_recorded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    info = tmp_path / "run_info.json"
    info.write_text(json.dumps({"wandb_run_id": "from-train"}))
    assert resume_run_id(recorded_run_id(tmp_path)) == "from-train"
    monkeypatch.setenv(tracking.RUN_ID_ENV, "from-flow")
    assert resume_run_id(recorded_run_id(tmp_path)) == "from-flow"


@pytest.mark.parametrize("content", [None, "not json", json.dumps({"wandb_run_id": None}), json.dumps([1])])
def test_without_a_recorded_id_a_later_stage_starts_a_fresh_run(tmp_path: Path, content: str | None) -> None:
    info = tmp_path / "run_info.json"
    if content is not None:
        info.write_text(content)
    first, second = resume_run_id(recorded_run_id(tmp_path)), resume_run_id(recorded_run_id(tmp_path))
    assert len(first) == 8 and first != second


def test_runs_are_grouped_by_the_dvc_experiment_else_the_dataset(monkeypatch: pytest.MonkeyPatch) -> None:
    assert experiment_group("credit") == "credit"
    monkeypatch.setenv(tracking.EXPERIMENT_ENV, "wide-lr")
    assert experiment_group("credit") == "wide-lr"


def test_a_queued_experiment_writes_its_runs_into_the_project_not_its_temp_copy(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    params = TrackingParams(project="p", mode="offline", dir=Path(".wandb"))
    assert tracking_dir(params) == Path(".wandb")
    monkeypatch.setenv(tracking.PROJECT_ROOT_ENV, "/projects/credit")
    assert tracking_dir(params) == Path("/projects/credit/.wandb")
    assert tracking_dir(params.model_copy(update={"dir": Path("/abs/wandb")})) == Path("/abs/wandb")


def test_init_timeout_comes_from_wandb_init_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    assert tracking.init_timeout() == tracking.INIT_TIMEOUT_SECONDS
    monkeypatch.setenv(tracking.INIT_TIMEOUT_ENV, "2.5")
    assert tracking.init_timeout() == 2.5
    monkeypatch.setenv(tracking.INIT_TIMEOUT_ENV, "soon")
    assert tracking.init_timeout() == tracking.INIT_TIMEOUT_SECONDS


# ---- what evaluate and register add ------------------------------------------------------------------------


def test_evaluation_summary_holds_test_metrics_threshold_and_validation() -> None:
    metrics = {"task": "binary", "n_test": 891, "test": {"auroc": 0.85, "f1": 0.6}, "threshold": 0.4}
    validation = {
        "success": True,
        "rows": 4454,
        "errors": [],
        "warnings": ["w"],
        "data_docs": "reports/validation.html",
    }
    assert evaluation_summary(metrics, validation) == {
        "test/auroc": 0.85,
        "test/f1": 0.6,
        "evaluate/threshold": 0.4,
        "evaluate/n_test": 891,
        "validation/success": True,
        "validation/rows": 4454,
        "validation/errors": 0,
        "validation/warnings": 1,
        "validation/data_docs": "reports/validation.html",
    }
    assert evaluation_summary({}, None) == {}


def test_registration_summary_holds_the_gate_decision() -> None:
    record = {
        "passed": True,
        "version": 3,
        "stage": "staging",
        "value": 0.85,
        "reasons": ["a: ok", "b: ok"],
        "gto": None,
    }
    assert registration_summary(record) == {
        "register/passed": True,
        "register/version": 3,
        "register/stage": "staging",
        "register/value": 0.85,
        "register/reasons": "a: ok; b: ok",
    }


def test_disabled_tracking_starts_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WANDB_MODE", "disabled")
    params = TrackingParams(project="p", mode="offline", dir=tmp_path / "wandb")
    assert init_run(params, "abc", "train") is None
    assert not (tmp_path / "wandb").exists()


def test_a_tracking_failure_never_fails_the_stage(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("wandb exploded")

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(stage_reports, "init_run", broken)
    with pytest.warns(UserWarning, match="the evaluate reports were not tracked .*wandb exploded"):
        track_stage(load_params(EXAMPLE_PARAMS).tracking, "evaluate", None, {"dataset": "credit"}, {"test/auroc": 0.8})


# ---- uploading offline runs --------------------------------------------------------------------------------


def write_stage_outputs(root: Path, run_id: str) -> None:
    """What train, validate, evaluate and register leave on disk, at params.yaml's default paths."""
    files = {
        "models/train/run_info.json": {"wandb_run_id": run_id},
        "reports/metrics.json": {"task": "binary", "n_test": 4, "test": {"auroc": 0.75}, "threshold": 0.5},
        "reports/validation.json": {"success": True, "rows": 10, "errors": [], "warnings": []},
        "reports/evaluate/plots/roc.json": [
            {"fpr": 0.0, "tpr": 0.0},
            {"fpr": 0.5, "tpr": 0.8},
            {"fpr": 1.0, "tpr": 1.0},
        ],
        "reports/evaluate/plots/confusion.json": [
            {"actual": "bad", "predicted": "bad"},
            {"actual": "good", "predicted": "bad"},
        ],
        "reports/registration.json": {"passed": True, "version": 1, "stage": "production", "reasons": ["auroc: ok"]},
    }
    for path, document in files.items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_text(json.dumps(document))
    (root / "models/train/model_config.json").write_text("{}")


def sync(root: Path, url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "WANDB_BASE_URL": url, "WANDB_API_KEY": FAKE_KEY}
    command = [sys.executable, "-m", "tabml.tracking.sync", "--params", str(EXAMPLE_PARAMS), *args]
    return subprocess.run(command, cwd=root, env=env, capture_output=True, text=True, timeout=300)


@pytest.mark.slow
def evaluate_and_register_track(params: Params, root: Path) -> None:
    """What tasks/evaluate.py and tasks/register.py send, from the outputs `write_stage_outputs` left."""

    def read(path: str) -> Any:
        return json.loads((root / path).read_text())

    run_id = recorded_run_id(root / "models/train")
    plots = {p.name: json.loads(p.read_text()) for p in (root / "reports/evaluate/plots").glob("*.json")}
    summary = evaluation_summary(read("reports/metrics.json"), read("reports/validation.json"))
    track_stage(params.tracking, "evaluate", run_id, {"dataset": "credit"}, summary, charts_of(plots))
    time.sleep(1.1)
    summary = registration_summary(read("reports/registration.json"))
    track_stage(params.tracking, "register", run_id, {"dataset": "credit"}, summary)


def test_one_pipeline_run_uploads_as_one_wandb_run_and_a_second_sync_uploads_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    params = load_params(EXAMPLE_PARAMS)
    run_id = "pipe0001"
    # train's part: curves and the model artifact (what tasks/train.py does through these functions)
    run = init_run(params.tracking, run_id, "train", {"dataset": "credit"})
    assert run is not None and run.group == "credit"
    for epoch in range(3):
        run.log({"val_loss": 0.6 - 0.1 * epoch, "epoch": epoch})
    write_stage_outputs(tmp_path, run_id)
    tracking.log_model_artifact(run, tmp_path / "models/train", "credit")
    tracking.finish_run(run)
    time.sleep(1.1)  # offline folders are named to the second: keep the parts' start order unambiguous
    evaluate_and_register_track(params, tmp_path)
    parts = find_offline_runs(tmp_path / ".wandb" / "wandb")
    assert [(p.run_id, p.synced) for p in parts] == [(run_id, False)] * 3

    with fake_wandb_server() as (url, received):
        dry = sync(tmp_path, url, "--dry-run")
        assert dry.returncode == 0 and "0 already uploaded (skipped), 3 to go" in dry.stdout
        assert received.total() == 0

        first = sync(tmp_path, url)
        assert first.returncode == 0, first.stdout + first.stderr
        assert set(received.upserted_runs()) == {run_id}  # one W&B run, whatever the number of parts
        steps = [row["_step"] for row in received.history_rows(run_id)]
        assert steps == sorted(steps) and len(set(steps)) == len(steps) == 4  # later parts append, never overwrite
        summary = received.summary(run_id)
        assert summary["test/auroc"] == 0.75 and summary["validation/success"] is True
        assert summary["register/version"] == 1 and "evaluate/roc_table" in summary
        assert any("model_config.json" in path for path in received.uploads)  # the model artifact
        assert all(p.synced for p in find_offline_runs(tmp_path / ".wandb" / "wandb"))

        sent = received.total()
        second = sync(tmp_path, url)
        assert second.returncode == 0 and "3 already uploaded (skipped), 0 to go" in second.stdout
        assert received.total() == sent  # not one request: nothing uploaded twice


@pytest.mark.slow
def test_an_unreachable_server_leaves_runs_pending_for_the_next_sync(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    run = init_run(load_params(EXAMPLE_PARAMS).tracking, "pending1", "train", {"dataset": "credit"})
    run.log({"val_loss": 0.5})
    tracking.finish_run(run)
    failed = sync(tmp_path, f"http://127.0.0.1:{closed_port()}", "--timeout", "8")
    assert failed.returncode == 1
    assert "not uploaded: run(s) pending1" in failed.stderr and "what to do" in failed.stderr
    assert not any(p.synced for p in find_offline_runs(tmp_path / ".wandb" / "wandb"))
    with fake_wandb_server() as (url, received):
        assert sync(tmp_path, url).returncode == 0
        assert received.upserted_runs() and set(received.upserted_runs()) == {"pending1"}


def test_an_unreachable_online_server_falls_back_to_an_offline_run_quickly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WANDB_MODE", "online")
    monkeypatch.setenv("WANDB_BASE_URL", f"http://127.0.0.1:{closed_port()}")
    monkeypatch.setenv("WANDB_API_KEY", FAKE_KEY)  # so wandb really tries the server instead of asking for a login
    monkeypatch.setenv(tracking.INIT_TIMEOUT_ENV, "2")
    params = TrackingParams(project="tabml", mode="offline", dir=tmp_path / ".wandb")
    started = time.perf_counter()
    with pytest.warns(UserWarning, match="W&B online run could not start"):
        run = init_run(params, "fallback1", "train", {"dataset": "credit"})
    seconds = time.perf_counter() - started
    assert run is not None and run.offline  # the failed online attempt did not keep the run id busy
    run.log({"val_loss": 0.5})
    tracking.finish_run(run)
    assert [p.run_id for p in find_offline_runs(tmp_path / ".wandb" / "wandb")] == ["fallback1"]
    # the default init timeout alone is 30 s: starting sooner shows WANDB_INIT_TIMEOUT was used
    assert seconds < tracking.INIT_TIMEOUT_SECONDS, f"init took {seconds:.1f}s"
