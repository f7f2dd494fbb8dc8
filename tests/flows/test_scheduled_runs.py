"""The deployment end to end on a real Prefect server on loopback: deploy, a worker (subprocess), a run triggered
through the REST API, and what the run leaves: dvc.lock, the registry, the DVC remote and a run branch."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path

import httpx
import pytest
import yaml

from flows.deploy import DeployError, deployment_parameters, main, require_server, trigger_parameters
from tabml.core.ops_params import DeploymentParams
from tabml.tracking.runs import wandb_run_id
from tabml.training.trained_model import read_run_info
from tests.conftest import dvc, make_workspace
from tests.flows.conftest import PrefectServer, client_env, started
from tests.workspace import EXAMPLE_PARAMS, example_orchestration

RUN_TIMEOUT_SECONDS = 300
STAGES = ["ingest", "validate", "preprocess", "train", "evaluate", "register"]


def git(root: Path, *args: str) -> str:
    proc = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, check=True)
    return proc.stdout.strip()


def wait_until_final(api: httpx.Client, flow_run_id: str, timeout: float) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = api.get(f"/flow_runs/{flow_run_id}").json()["state"]
        if state["type"] in {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}:
            return state
        time.sleep(1)
    raise AssertionError(f"flow run {flow_run_id} not finished after {timeout}s: {state}")


def scheduled_starts(api: httpx.Client, deployment_id: str, timeout: float = 90) -> list[datetime]:
    """Start times of the runs the server's scheduler created from the deployment's cron."""
    query = {
        "deployments": {"id": {"any_": [deployment_id]}},
        "flow_runs": {"state": {"type": {"any_": ["SCHEDULED"]}}},
    }
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        runs = api.post("/flow_runs/filter", json=query).json()
        if runs:
            return [datetime.fromisoformat(run["expected_start_time"]) for run in runs]
        time.sleep(1)
    return []


def test_deployment_parameters_point_the_run_at_the_project() -> None:
    d = DeploymentParams.model_validate(
        {
            **example_orchestration()["deployment"],
            "params_overrides": ["train.lr=0.003"],
            "data_path": "data/landing/new.csv",
        }
    )
    params = deployment_parameters(Path("/srv/tabml"), d)
    assert params == {
        "root": "/srv/tabml",
        "force": False,
        "params_overrides": ["train.lr=0.003"],
        "data_path": "data/landing/new.csv",
        "publish": None,
    }
    assert trigger_parameters(False, [], None) == {}  # a plain trigger keeps the deployment's parameters
    assert trigger_parameters(True, ["train.lr=1e-4"], "x.csv") == {
        "force": True,
        "params_overrides": ["train.lr=1e-4"],
        "data_path": "x.csv",
    }


def test_deploy_without_a_server_says_how_to_start_one(monkeypatch: pytest.MonkeyPatch) -> None:
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings(restore_defaults={PREFECT_API_URL}), pytest.raises(DeployError, match="make server"):
        require_server()


def test_triggering_a_deployment_that_does_not_exist_says_deploy_first(
    use_prefect_api: PrefectServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "project"
    root.mkdir()
    orchestration = example_orchestration(deployment={"name": "nope"})
    (root / "params.yaml").write_text(yaml.safe_dump({"orchestration": orchestration}))
    assert main(["--root", str(root), "trigger"]) == 1
    assert "no deployment 'training-pipeline/nope' on this server" in capsys.readouterr().err


def test_deploy_refuses_an_override_that_would_fail_every_run(
    use_prefect_api: PrefectServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:

    root = tmp_path / "project"
    root.mkdir()
    params = yaml.safe_load((EXAMPLE_PARAMS).read_text())
    params["orchestration"]["deployment"].update(name="bad-override", params_overrides=["train.lr=-1"])
    (root / "params.yaml").write_text(yaml.safe_dump(params))
    assert main(["--root", str(root), "deploy"]) == 1
    assert "train.lr: Input should be greater than 0" in capsys.readouterr().err
    assert httpx.get(f"{use_prefect_api.api_url}/deployments/name/training-pipeline/bad-override").status_code == 404


def test_deploy_then_trigger_from_the_command_line_passes_the_run_its_parameters(
    use_prefect_api: PrefectServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from tests.conftest import PROJECT

    root = tmp_path / "project"
    (root / "flows").mkdir(parents=True)
    shutil.copy(PROJECT / "flows" / "pipeline.py", root / "flows" / "pipeline.py")
    params = yaml.safe_load((EXAMPLE_PARAMS).read_text())
    params["orchestration"]["deployment"].update(name="cli", work_pool="tabml-cli", cron=None)
    (root / "params.yaml").write_text(yaml.safe_dump(params))
    assert main(["--root", str(root), "deploy"]) == 0
    assert "deployment training-pipeline/cli" in capsys.readouterr().out

    assert main(["--root", str(root), "trigger", "-S", "train.lr=0.01", "--data-path", "data/new.csv"]) == 0
    out = capsys.readouterr().out
    assert ": Scheduled" in out  # no worker for tabml-cli: it waits
    flow_run_id = out.split("(")[1].split(")")[0]
    run = httpx.get(f"{use_prefect_api.api_url}/flow_runs/{flow_run_id}").json()
    assert run["parameters"]["params_overrides"] == ["train.lr=0.01"]
    assert run["parameters"]["data_path"] == "data/new.csv" and run["parameters"]["root"] == str(root)
    deployment = httpx.get(f"{use_prefect_api.api_url}/deployments/name/training-pipeline/cli").json()
    assert deployment["schedules"] == []  # cron: null


@pytest.mark.slow
def test_a_triggered_deployment_run_trains_registers_pushes_and_commits_a_run_branch(
    prefect_server: PrefectServer, tmp_path: Path
) -> None:
    ws = make_workspace(tmp_path / "ws")
    main_head = git(ws, "rev-parse", "HEAD")
    env = client_env(prefect_server, tmp_path / "client-home")
    env["WANDB_MODE"] = "offline"

    deployed = subprocess.run(
        [sys.executable, "-m", "flows.deploy", "--root", str(ws), "deploy"], env=env, capture_output=True, text=True
    )
    assert deployed.returncode == 0, deployed.stdout + deployed.stderr
    assert "deployment training-pipeline/scheduled" in deployed.stdout

    api = httpx.Client(base_url=prefect_server.api_url, timeout=30)
    deployment = api.get("/deployments/name/training-pipeline/scheduled").json()
    assert deployment["work_pool_name"] == "tabml-process"
    assert deployment["global_concurrency_limit"]["limit"] == 1  # a second run waits in the queue
    assert deployment["concurrency_options"]["collision_strategy"] == "ENQUEUE"
    assert [s["schedule"]["cron"] for s in deployment["schedules"]] == ["0 3 * * *"]
    assert deployment["parameters"]["root"] == str(ws)
    assert api.get("/work_pools/tabml-process").json()["type"] == "process"
    starts = scheduled_starts(api, deployment["id"])  # sqlalchemy 2.1 silently broke this: pinned < 2.1
    assert starts and all((s.hour, s.minute, s.utcoffset()) == (3, 0, timedelta(0)) for s in starts), starts

    worker = [sys.executable, "-m", "flows.deploy", "--root", str(ws), "worker"]
    with started(worker, cwd=ws, env=env, log=tmp_path / "worker.log"):
        body = {"parameters": {"params_overrides": ["train.seed=7"]}}
        flow_run = api.post(f"/deployments/{deployment['id']}/create_flow_run", json=body).json()
        state = wait_until_final(api, flow_run["id"], RUN_TIMEOUT_SECONDS)
    log = (tmp_path / "worker.log").read_text()
    assert state["type"] == "COMPLETED", f"{state}\n{log[-6000:]}"
    run_id = flow_run["id"]

    # dvc.lock: every stage, with the override the trigger passed
    lock = yaml.safe_load((ws / "dvc.lock").read_text())
    assert sorted(lock["stages"]) == sorted(STAGES)
    assert lock["stages"]["train"]["params"]["params.yaml"]["train.seed"] == 7  # stages declare params key by key
    assert "Data and pipelines are up to date." in dvc("status", cwd=ws).stdout

    # the registry: version 1, traced to this flow run and its W&B run
    index = json.loads((ws / "registry" / "credit" / "index.json").read_text())
    assert [v["version"] for v in index["versions"]] == [1]
    (lineage_file,) = (ws / "registry" / "credit").rglob("lineage.json")
    lineage = json.loads(lineage_file.read_text())
    assert lineage["run"]["prefect_flow_run_id"] == run_id
    run_info = read_run_info(ws / "models" / "train")  # with its per-run facts (models/train.run.json)
    assert run_info["wandb_run_id"] == wandb_run_id(run_id)

    # published: the data in the remote, dvc.lock on runs/<time>-<run id[:8]>, the user's checkout untouched
    assert "in sync" in dvc("status", "--cloud", cwd=ws).stdout
    (branch,) = git(ws, "for-each-ref", "--format=%(refname:short)", "refs/heads/runs/").splitlines()
    assert branch.startswith("runs/") and branch.endswith(f"-{run_id.replace('-', '')[:8]}")
    assert git(ws, "show", f"{branch}:dvc.lock") == (ws / "dvc.lock").read_text().strip()
    assert yaml.safe_load(git(ws, "show", f"{branch}:params.yaml"))["train"]["seed"] == 7
    assert json.loads(git(ws, "show", f"{branch}:reports/registration.json"))["version"] == 1
    assert git(ws, "rev-parse", f"{branch}^") == main_head == git(ws, "rev-parse", "HEAD")
    assert git(ws, "branch", "--show-current") == "main"

    artifacts = api.post("/artifacts/filter", json={"artifacts": {"key": {"any_": ["pipeline-summary"]}}}).json()
    summary = next(a["data"] for a in artifacts if a["flow_run_id"] == run_id)
    assert "# Training pipeline: succeeded" in summary and f"`{branch}`" in summary
