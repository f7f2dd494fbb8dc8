"""A worker that is not the deploying checkout: `orchestration.deployment.source: git` makes the deployment's pull
steps clone the git remote at the deployed commit into the worker's own folder and `dvc pull` from S3 (moto on
loopback); after the run the data and the run branch go back, and a third clone rebuilds the run from them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import yaml

from flows.deploy import deployment_parameters
from tabml.core.files import sha256_file
from tabml.core.ops_params import DeploymentParams
from tabml.orchestration.code_source import DVC_PULL, FETCH_TAGS, CodeSourceError, git_source, pull_steps
from tabml.registry.package import load_scorer
from tabml.registry.store import load_package
from tests.conftest import edit_params, make_workspace
from tests.flows.conftest import PrefectServer, client_env, started
from tests.s3_server import S3Server, use_s3_remote
from tests.workspace import commit_all, example_orchestration

RUN_TIMEOUT_SECONDS = 600
POOL = "tabml-remote"


def git(root: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, check=True).stdout.strip()


def bare_remote(ws: Path, path: Path) -> Path:
    git(path.parent, "init", "-q", "--bare", str(path))
    git(ws, "remote", "add", "origin", str(path))
    return path


def test_pull_steps_clone_the_deployed_commit_then_pull_the_data_there() -> None:
    clone, tags, pull = pull_steps("git@example.org:team/tabml.git", "0123abcd")
    assert clone == {
        "prefect.deployments.steps.git_clone": {
            "id": "clone",
            "repository": "git@example.org:team/tabml.git",
            "commit_sha": "0123abcd",
        }
    }
    assert tags["prefect.deployments.steps.run_shell_script"]["script"] == FETCH_TAGS
    shell = pull["prefect.deployments.steps.run_shell_script"]
    assert shell["script"] == DVC_PULL and shell["directory"] == "{{ clone.directory }}"
    d = DeploymentParams.model_validate({**example_orchestration()["deployment"], "source": "git"})
    assert deployment_parameters(Path("/srv/tabml"), d)["root"] == "."  # the clone the pull steps leave it in


def test_the_pull_steps_bring_the_registry_tags_of_earlier_runs_into_the_worker_clone(
    use_prefect_api: PrefectServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import asyncio

    from prefect.deployments.steps.core import run_steps

    ws = tmp_path / "ws"
    ws.mkdir()
    git(ws, "init", "-q", "-b", "main")
    (ws / "a.txt").write_text("a\n")
    commit_all(ws, "first")
    git(ws, "tag", "-a", "credit@v1.0.0", "-m", "an earlier run's registration")  # what GTO writes
    git(ws, "tag", "-a", "credit#production#1", "-m", "its promotion")
    (ws / "a.txt").write_text("b\n")
    commit_all(ws, "second")
    origin = bare_remote(ws, tmp_path / "origin.git")
    git(ws, "push", "-q", "--follow-tags", "origin", "main")
    worker = tmp_path / "worker"
    worker.mkdir()
    monkeypatch.chdir(worker)
    steps = pull_steps(str(origin), git(ws, "rev-parse", "HEAD"))
    steps[-1]["prefect.deployments.steps.run_shell_script"]["script"] = "git status --short"  # no DVC repo here
    outputs = asyncio.run(run_steps(steps))
    clone = Path(outputs["directory"])
    assert git(clone, "rev-parse", "HEAD") == git(ws, "rev-parse", "HEAD")
    assert git(clone, "tag", "--list").split() == ["credit#production#1", "credit@v1.0.0"]
    assert git(clone, "rev-parse", "credit@v1.0.0^{commit}") == git(ws, "rev-parse", "HEAD^")


def test_a_commit_not_on_the_git_remote_or_a_url_with_credentials_is_refused(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    ws.mkdir()
    git(ws, "init", "-q", "-b", "main")
    (ws / "a.txt").write_text("a\n")
    commit_all(ws, "first")
    origin = bare_remote(ws, tmp_path / "origin.git")
    with pytest.raises(CodeSourceError, match=r"(?s)is not on git remote 'origin'.*git push origin HEAD"):
        git_source(ws, "origin")
    git(ws, "push", "-q", "origin", "main")
    assert git_source(ws, "origin") == (str(origin), git(ws, "rev-parse", "HEAD"))
    with pytest.raises(CodeSourceError, match="git remote 'upstream'"):
        git_source(ws, "upstream")
    git(ws, "remote", "set-url", "origin", "https://bot:s3cret@git.example.org/tabml.git")
    with pytest.raises(CodeSourceError, match="credentials in its URL") as refused:
        git_source(ws, "origin")
    assert "s3cret" not in str(refused.value)


@pytest.mark.slow
def test_a_worker_in_its_own_folder_clones_pulls_runs_and_pushes_back(
    prefect_server: PrefectServer, s3_storage: S3Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bucket = s3_storage.create_bucket("tabml-remote-worker")
    ws = make_workspace(tmp_path / "ws")
    origin = bare_remote(ws, tmp_path / "origin.git")
    use_s3_remote(ws, s3_storage, bucket)
    shared_registry = f"s3://{bucket}/registry"  # the registry of record in the bucket every machine reaches
    orchestration = yaml.safe_load((ws / "params.yaml").read_text())["orchestration"]
    deployment = {**orchestration["deployment"], "name": "remote", "work_pool": POOL, "source": "git", "cron": None}
    edit_params(
        ws,
        register={"registry_dir": str(shared_registry)},
        orchestration={"deployment": deployment, "publish": {**orchestration["publish"], "git_remote": "origin"}},
    )
    commit_all(ws, "S3 remote, git-sourced deployment")
    git(ws, "push", "-q", "origin", "main")
    deployed_commit = git(ws, "rev-parse", "HEAD")

    deployer = client_env(prefect_server, tmp_path / "deployer-home")
    deploy = [sys.executable, "-m", "flows.deploy", "--root", str(ws), "deploy"]
    done = subprocess.run(deploy, env=deployer, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    api = httpx.Client(base_url=prefect_server.api_url, timeout=30)
    dep = api.get("/deployments/name/training-pipeline/remote").json()
    assert dep["pull_steps"] == pull_steps(str(origin), deployed_commit)
    assert dep["parameters"]["root"] == "."

    worker_dir = tmp_path / "worker"  # nothing of the checkout: its own PREFECT_HOME and temp folder
    (worker_dir / "tmp").mkdir(parents=True)
    worker_env = {
        **client_env(prefect_server, worker_dir / "prefect-home"),
        **s3_storage.credentials_env(),
        "TMPDIR": str(worker_dir / "tmp"),  # the process worker runs each flow run in a fresh folder under it
        "AWS_ENDPOINT_URL_S3": s3_storage.endpoint,  # the registry's bucket (DVC has its endpointurl in .dvc/config)
        "TABML_REGISTRY_CACHE": str(worker_dir / "registry-cache"),
        "WANDB_MODE": "offline",
    }
    worker = [sys.executable, "-m", "prefect", "worker", "start", "--pool", POOL, "--type", "process"]
    log = tmp_path / "worker.log"
    with started(worker, cwd=worker_dir, env=worker_env, log=log):
        flow_run = api.post(f"/deployments/{dep['id']}/create_flow_run", json={}).json()
        state = _wait_until_final(api, flow_run["id"])
    worker_log = log.read_text()
    assert state["type"] == "COMPLETED", f"{state}\n{worker_log[-8000:]}"
    assert "Running 3 deployment pull step(s)" in _run_logs(api, flow_run["id"])

    # the deploying checkout did not run anything; the run branch is on the git remote
    assert not (ws / "models" / "train").exists() and not (ws / "dvc.lock").exists()
    assert not git(ws, "for-each-ref", "refs/heads/runs/")
    (branch,) = [
        line.split()[1].removeprefix("refs/heads/")
        for line in git(origin, "show-ref").splitlines()
        if "refs/heads/runs/" in line
    ]
    assert git(origin, "rev-parse", f"{branch}^") == deployed_commit

    # a third clone: fetch the run branch, pull the data, nothing to rerun, the registered model loads
    third = clone_run_branch(tmp_path, origin, branch)
    assert_pulls_up_to_date(third, s3_storage)
    # the GTO tags the worker's clone made are on the git remote: the third clone has them, GTO agrees
    tags = git(third, "ls-remote", "--tags", "origin")
    assert "refs/tags/credit@v1.0.0" in tags and "refs/tags/credit#production#1" in tags
    git(third, "fetch", "-q", "origin", "--tags")
    from gto import api

    assert [v.version for v in api.find_versions_in_stage(str(third), "credit", "production") or []] == ["v1.0.0"]
    for key, value in {**s3_storage.credentials_env(), "AWS_ENDPOINT_URL_S3": s3_storage.endpoint}.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("TABML_REGISTRY_CACHE", str(tmp_path / "third-registry-cache"))
    assert any(k.startswith("registry/credit/versions/v1/") for k in s3_storage.keys(bucket, "registry/"))
    package = load_package(shared_registry, "credit")
    assert package.document("lineage.json")["run"]["prefect_flow_run_id"] == flow_run["id"]
    assert package.document("lineage.json")["git"]["rev"] == deployed_commit
    load_scorer(package)
    pulled = third / "models" / "train" / "model.safetensors"
    assert sha256_file(pulled) == package.sha256["model.safetensors"]
    everything = worker_log + json.dumps(dep) + json.dumps(flow_run) + package.path.joinpath("lineage.json").read_text()
    assert s3_storage.secret_key not in everything and s3_storage.access_key not in everything


def clone_run_branch(tmp_path: Path, origin: Path, branch: str) -> Path:
    """A third clone of the git remote, checked out at the run branch."""
    third = tmp_path / "third"
    git(tmp_path, "clone", "-q", str(origin), str(third))
    git(third, "fetch", "-q", "origin", branch)
    git(third, "checkout", "-q", "FETCH_HEAD")
    return third


def assert_pulls_up_to_date(clone: Path, s3_storage: S3Server) -> None:
    """`dvc pull` from the bucket, then `dvc status`: nothing to rerun."""
    creds = {**os.environ, **s3_storage.credentials_env()}
    for args in (["pull"], ["status"]):
        proc = subprocess.run(
            [sys.executable, "-m", "dvc", *args], cwd=clone, env=creds, capture_output=True, text=True
        )
        assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Data and pipelines are up to date." in proc.stdout


def _wait_until_final(api: httpx.Client, flow_run_id: str) -> dict:
    deadline, state = time.monotonic() + RUN_TIMEOUT_SECONDS, None
    while time.monotonic() < deadline:
        try:
            state = api.get(f"/flow_runs/{flow_run_id}").json()["state"]
        except httpx.TimeoutException:  # a busy server (SQLite, two workers writing) may answer late: ask again
            continue
        if state["type"] in {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}:
            return state
        time.sleep(1)
    raise AssertionError(f"flow run {flow_run_id} not finished after {RUN_TIMEOUT_SECONDS}s: {state}")


def _run_logs(api: httpx.Client, flow_run_id: str) -> str:
    logs = api.post("/logs/filter", json={"logs": {"flow_run_id": {"any_": [flow_run_id]}}, "limit": 200}).json()
    return "\n".join(entry["message"] for entry in logs)
