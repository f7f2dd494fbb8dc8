"""The DVC remote in S3-compatible object storage, switched by configuration only, against a real S3 API server
(moto, standalone, on loopback): a flow run pushes to the bucket, a second clone with its own cache pulls and finds
everything up to date, and the credentials (environment only) appear nowhere the run writes."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
import yaml

from tabml.orchestration.publish_run import PublishError, publish_run
from tests.conftest import dvc, make_workspace
from tests.flows.conftest import PrefectServer, client_env
from tests.s3_server import S3Server, use_s3_remote
from tests.workspace import commit_all

PREFIX = "dvcstore"


def git(root: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, check=True).stdout


def with_credentials(env: dict[str, str], s3: S3Server) -> dict[str, str]:
    return {**env, **s3.credentials_env()}


def cache_key(md5: str) -> str:
    """Where DVC 3 keeps an object in a remote: files/md5/<2>/<rest> (a directory's listing ends in .dir)."""
    return f"{PREFIX}/files/md5/{md5[:2]}/{md5[2:]}"


def lock_outs(lock_text: str) -> dict[str, str]:
    lock = yaml.safe_load(lock_text)
    return {o["path"]: o["md5"] for s in lock["stages"].values() for o in s.get("outs", []) if "md5" in o}


def assert_secret_absent(s3: S3Server, where: dict[str, str]) -> None:
    for name, text in where.items():
        for secret in (s3.secret_key, s3.access_key):
            assert secret not in text, f"a credential leaked into {name}"


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.slow
def test_a_run_pushes_to_s3_and_a_second_clone_pulls_everything_up_to_date(
    prefect_server: PrefectServer, s3_storage: S3Server, tmp_path: Path
) -> None:
    bucket = s3_storage.create_bucket("tabml-s3-run")
    ws = make_workspace(tmp_path / "ws")
    url = use_s3_remote(ws, s3_storage, bucket, PREFIX)  # the whole switch: two `dvc remote` commands
    commit_all(ws, "DVC remote in S3")
    config = (ws / ".dvc" / "config").read_text()
    assert url in config and s3_storage.endpoint in config
    assert not (ws / ".dvc" / "config.local").exists()

    env = with_credentials(client_env(prefect_server, tmp_path / "client-home"), s3_storage)
    flow = [sys.executable, "-m", "flows.pipeline", "--root", str(ws), "--publish"]
    ran = subprocess.run(flow, cwd=ws, env=env, capture_output=True, text=True)
    output = ran.stdout + ran.stderr
    assert ran.returncode == 0, output[-6000:]
    assert "files pushed to the DVC remote" in output

    # every cached output of dvc.lock is an object in the bucket
    (branch,) = git(ws, "for-each-ref", "--format=%(refname:short)", "refs/heads/runs/").split()
    branch_lock = git(ws, "show", f"{branch}:dvc.lock")
    in_git = set(git(ws, "ls-tree", "-r", "--name-only", branch).split())
    outs = {path: md5 for path, md5 in lock_outs(branch_lock).items() if path not in in_git}  # `cache: false` ones
    keys = s3_storage.keys(bucket, PREFIX)
    assert {"models/train", "data/processed", "data/snapshot/accepted.parquet"} <= set(outs)
    missing = {path: md5 for path, md5 in outs.items() if cache_key(md5) not in keys}
    assert not missing, f"in dvc.lock but not in the bucket: {missing}"

    # the registry package records the very model folder that is in the bucket
    (lineage_file,) = (ws / "registry" / "credit").rglob("lineage.json")
    lineage = json.loads(lineage_file.read_text())
    assert lineage["dvc_lock"]["train"]["outs"]["models/train"] == outs["models/train"]
    manifest = json.loads((lineage_file.parent / "MANIFEST.json").read_text())["sha256"]

    # a second clone, its own cache, the run branch: pull, and nothing is left to run
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", "--branch", branch, str(ws), str(clone)], check=True)
    assert not (clone / "models" / "train").exists()  # nothing but git yet
    pulled = subprocess.run([sys.executable, "-m", "dvc", "pull"], cwd=clone, env=env, capture_output=True, text=True)
    assert pulled.returncode == 0, pulled.stdout + pulled.stderr
    assert (clone / ".dvc" / "cache").is_dir() and not (clone / ".dvc" / "cache").is_symlink()
    status = subprocess.run([sys.executable, "-m", "dvc", "status"], cwd=clone, env=env, capture_output=True, text=True)
    assert "Data and pipelines are up to date." in status.stdout, status.stdout + status.stderr
    repro = subprocess.run([sys.executable, "-m", "dvc", "repro"], cwd=clone, env=env, capture_output=True, text=True)
    assert repro.returncode == 0 and "Running stage" not in repro.stdout, repro.stdout + repro.stderr
    assert sha256(clone / "models" / "train" / "model.safetensors") == manifest["model.safetensors"]

    # the credentials: in the environment only, nowhere the run or the clone wrote
    api = httpx.Client(base_url=prefect_server.api_url, timeout=30)
    runs = api.post("/flow_runs/filter", json={"sort": "START_TIME_DESC", "limit": 20}).json()  # ours is the last
    ours = [r for r in runs if r["parameters"].get("root") == str(ws)]
    assert len(ours) == 1
    logs = api.post("/logs/filter", json={"logs": {"flow_run_id": {"any_": [ours[0]["id"]]}}}).json()
    assert logs
    assert_secret_absent(
        s3_storage,
        {
            "git history (workspace)": git(ws, "log", "--all", "-p"),
            "git history (clone)": git(clone, "log", "--all", "-p"),
            "git config": (ws / ".git" / "config").read_text() + (clone / ".git" / "config").read_text(),
            "DVC config": config,
            "the run's output": output,
            "Prefect logs": json.dumps(logs),
            "Prefect parameters": json.dumps(ours[0]["parameters"]),
            "lineage and registry": "".join(p.read_text() for p in lineage_file.parent.glob("*.json")),
            "reports": "".join(p.read_text() for p in (ws / "reports").rglob("*.json")),
        },
    )


def test_a_push_to_a_missing_bucket_fails_in_one_clear_line_without_the_secret(
    s3_storage: S3Server, tmp_path: Path
) -> None:
    ws = make_workspace(tmp_path / "ws")
    use_s3_remote(ws, s3_storage, "no-such-bucket", PREFIX)
    (ws / "blob.txt").write_text("payload\n")
    dvc("add", "blob.txt", cwd=ws)
    commit_all(ws, "a tracked file")
    with pytest.MonkeyPatch.context() as mp:
        for key, value in s3_storage.credentials_env().items():
            mp.setenv(key, value)
        with pytest.raises(PublishError) as failed:
            started = datetime.now(UTC)
            publish_run(ws, flow_run_id="1234ab", started=started, remote=None, branch_prefix="runs/", git_remote=None)
    message = str(failed.value)
    assert message.startswith("dvc push to the default remote failed:") and "what to do:" in message
    assert failed.value.retryable
    assert s3_storage.secret_key not in message and s3_storage.access_key not in message
    assert not git(ws, "for-each-ref", "refs/heads/runs/").strip()  # no run branch without its data
