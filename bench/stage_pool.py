"""What sending only the train stage to another work pool adds to a run: routed vs in place, side by side.

The example pipeline with 2 epochs (gate: beat the majority class). One Prefect server, moto's S3 server and a bare
git remote on loopback, two process workers (`bench-cpu` runs the pipeline, `bench-gpu` the stage flow; train stays
on the CPU). Two git-sourced deployments of the same pipeline on `bench-cpu`, from two commits that differ only in
`orchestration.stages.train.work_pool` (null vs `bench-gpu`), are triggered alternately, `--repeats` times each,
each run in a fresh clone. Reported: medians of the whole run (the flow run's start to end) and of the train task
run (in place: the stage; routed: dvc push of its inputs, the hand-over commit, the stage flow's pickup, clone,
checkout and `dvc pull`, the stage, its push, the take-back), and whether the routed runs trained the same model
(model.safetensors' md5 in each run's dvc.lock entry, read from the bucket's .dir manifests) with the same train
deps and params.

Run: `python -m bench.stage_pool [--repeats 2]` (a few minutes: each run is a full pipeline in a fresh clone).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import yaml

from bench.orchestration_overhead import prefect_server
from tests.s3_server import S3Server, s3_server, use_s3_remote
from tests.workspace import commit_all, copy_pipeline, init_repo, run

PROJECT = Path(__file__).resolve().parents[1]
RUN_TIMEOUT_SECONDS = 900
POOLS = ("bench-cpu", "bench-gpu")


def workspace(tmp: Path, s3: S3Server, bucket: str) -> Path:
    """The example pipeline (2 epochs), git-sourced deployments on bench-cpu, the S3 remote, pushed to origin."""
    root = copy_pipeline(PROJECT, tmp / "ws")
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["train"].update({"max_epochs": 2, "patience": 1})
    params["register"].update({"registry_dir": str(tmp / "shared-registry"), "baselines": {"majority": 0.0}})
    orchestration = params["orchestration"]
    orchestration["deployment"].update({"source": "git", "cron": None, "work_pool": POOLS[0]})
    orchestration["publish"]["git_remote"] = "origin"
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    init_repo(root, tmp / "local-remote-unused")
    use_s3_remote(root, s3, bucket)
    run("git", "init", "-q", "--bare", str(tmp / "origin.git"), cwd=tmp)
    run("git", "remote", "add", "origin", str(tmp / "origin.git"), cwd=root)
    commit_all(root, "bench workspace")
    return root


def deploy(root: Path, env: dict[str, str], name: str, work_pool: str | None) -> None:
    """A deployment `name` of the pipeline at a commit whose train stage runs on `work_pool` (None: in place)."""
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["orchestration"]["deployment"]["name"] = name
    params["orchestration"]["stages"]["train"]["work_pool"] = work_pool
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    commit_all(root, f"deployment {name}")
    run("git", "push", "-q", "origin", "HEAD:main", cwd=root)
    proc = subprocess.run(
        [sys.executable, "-m", "flows.deploy", "--root", str(root), "deploy"], env=env, capture_output=True, text=True
    )
    if proc.returncode != 0:
        raise RuntimeError(f"deploy {name} failed:\n{proc.stdout}\n{proc.stderr}")


def one_run(api: httpx.Client, deployment: str) -> dict[str, Any]:
    """Trigger, wait; seconds of the run and of its train task run, and its run branch."""
    dep = api.get(f"/deployments/name/training-pipeline/{deployment}").json()
    flow_run = api.post(f"/deployments/{dep['id']}/create_flow_run", json={}).json()
    deadline = time.monotonic() + RUN_TIMEOUT_SECONDS
    while (state := api.get(f"/flow_runs/{flow_run['id']}").json())["state"]["type"] not in (
        "COMPLETED",
        "FAILED",
        "CRASHED",
        "CANCELLED",
    ):
        if time.monotonic() > deadline:
            raise RuntimeError(f"run of {deployment} not finished after {RUN_TIMEOUT_SECONDS}s")
        time.sleep(1)
    if state["state"]["type"] != "COMPLETED":
        raise RuntimeError(f"run of {deployment} ended {state['state']}")
    tasks = api.post("/task_runs/filter", json={"flow_runs": {"id": {"any_": [flow_run["id"]]}}}).json()
    train = next(t for t in tasks if t["name"] == "train")
    return {"run": _seconds(state), "train": _seconds(train), "id": flow_run["id"]}


def _seconds(run: dict[str, Any]) -> float:
    return (datetime.fromisoformat(run["end_time"]) - datetime.fromisoformat(run["start_time"])).total_seconds()


def train_entry(tmp: Path, flow_run_id: str) -> dict[str, Any]:
    """The train entry of dvc.lock on the run branch of `flow_run_id`."""
    origin = tmp / "origin.git"
    refs = run("git", "for-each-ref", "--format=%(refname)", "refs/heads/runs/", cwd=origin).stdout.split()
    (ref,) = [r for r in refs if r.endswith(flow_run_id.replace("-", "")[:8])]
    lock = yaml.safe_load(run("git", "show", f"{ref}:dvc.lock", cwd=origin).stdout)
    return dict(lock["stages"]["train"])


def model_md5(s3: S3Server, bucket: str, entry: dict[str, Any]) -> str:
    """model.safetensors' md5 from the .dir manifest of the entry's models/train output, in the bucket."""
    md5 = next(o["md5"] for o in entry["outs"] if o["path"] == "models/train")
    body = s3.client().get_object(Bucket=bucket, Key=f"dvcstore/files/md5/{md5[:2]}/{md5[2:]}")["Body"].read()
    return str(next(f["md5"] for f in json.loads(body) if f["relpath"] == "model.safetensors"))


def measure(tmp: Path, s3: S3Server, bucket: str, repeats: int) -> dict[str, list[dict[str, Any]]]:
    from tests.flows.conftest import PrefectServer, client_env, started

    root = workspace(tmp, s3, bucket)
    (tmp / "server").mkdir()
    with prefect_server(tmp / "server") as api_url:
        server = PrefectServer(api_url=api_url, home=tmp / "server", log=tmp / "server" / "server.log")
        deployer = client_env(server, tmp / "deployer-home")
        deploy(root, deployer, "inplace", None)
        deploy(root, deployer, "routed", POOLS[1])
        api = httpx.Client(base_url=api_url, timeout=30)
        workers = []
        for pool in POOLS:
            folder = tmp / pool
            (folder / "tmp").mkdir(parents=True)
            env = {**client_env(server, folder / "home"), **s3.credentials_env(), "TMPDIR": str(folder / "tmp")}
            cmd = [sys.executable, "-m", "prefect", "worker", "start", "--pool", pool, "--type", "process"]
            workers.append(started(cmd, cwd=folder, env=env, log=tmp / f"{pool}.log"))
        results: dict[str, list[dict[str, Any]]] = {"inplace": [], "routed": []}
        with workers[0], workers[1]:
            for _ in range(repeats):
                for kind in ("inplace", "routed"):
                    results[kind].append(one_run(api, kind))
    for kind in results:
        for result in results[kind]:
            result["entry"] = train_entry(tmp, result["id"])
            result["model_md5"] = model_md5(s3, bucket, result["entry"])
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.stage_pool", description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args(argv)
    os.environ.update({"DVC_NO_ANALYTICS": "1", "DO_NOT_TRACK": "1", "PREFECT_SERVER_ANALYTICS_ENABLED": "false"})
    os.environ["WANDB_MODE"] = "offline"
    with tempfile.TemporaryDirectory(prefix="tabml-bench-stage-pool-") as name, s3_server(Path(name)) as s3:
        bucket = s3.create_bucket("bench-stage-pool")
        results = measure(Path(name), s3, bucket, args.repeats)
    med = {k: {m: statistics.median(r[m] for r in rs) for m in ("run", "train")} for k, rs in results.items()}
    print(f"medians of {args.repeats} runs each, alternating; every run in a fresh worker clone")
    print(f"{'':22} {'in place':>9} {'routed':>9} {'extra':>8} {'ratio':>6}")
    for metric, label in (("run", "whole run"), ("train", "train task run")):
        here, there = med["inplace"][metric], med["routed"][metric]
        print(f"{label:22} {here:8.1f}s {there:8.1f}s {there - here:7.1f}s {there / here:5.2f}x")
    md5s = {k: {r["model_md5"] for r in rs} for k, rs in results.items()}
    same_model = md5s["inplace"] == md5s["routed"] and len(md5s["inplace"]) == 1
    strip = [{k: v for k, v in r["entry"].items() if k != "outs"} for rs in results.values() for r in rs]
    same_inputs = all(entry == strip[0] for entry in strip)
    print(f"same model.safetensors in every run: {same_model} ({md5s}); same train cmd/deps/params: {same_inputs}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
