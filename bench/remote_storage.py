"""DVC remote in S3 vs a local folder, and how long a fresh worker folder takes from trigger to its first stage.

Side by side, on the example's artifacts (snapshot, processed splits, model, evaluation; the example's train
params with 2 epochs, since the artifacts' size does not depend on the epochs):
  - `dvc push` of the whole cache to an empty remote, and `dvc pull` into a fresh clone with an empty cache, to a
    local-folder remote and to a bucket on moto's S3 server on 127.0.0.1 (tests/s3_server.py); medians of
    `--repeats` runs and the S3/local ratio;
  - a git-sourced deployment (orchestration.deployment.source: git) on a Prefect server on loopback, a process
    worker in an empty folder: seconds from the trigger (REST API) until the first stage's task is running, i.e.
    the worker's pickup, the clone at the deployed commit and `dvc pull` of what dvc.lock names, and the flow's
    start. The worker is stopped as soon as the first stage runs.

  - the model registry (register.registry_dir) in a local folder vs `s3://...` on the same server: `publish` of a
    package shaped like the example's (20 files, 1 MB: weights, JSON documents, PNG figures) and `load_package` of
    production with every sha256 verified, cold (empty read-through cache) and warm; in-process, medians.

Run: `python -m bench.remote_storage [--repeats 3] [--registry-only]`. Setup (a cold `dvc repro` up to evaluate, a
server start) takes a few minutes. Loopback figures: a real bucket adds network latency and bandwidth limits.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from bench.orchestration_overhead import prefect_server
from tests.s3_server import S3Server, s3_server, use_s3_remote
from tests.workspace import commit_all, copy_pipeline, init_repo, run

PROJECT = Path(__file__).resolve().parents[1]
DVC = (sys.executable, "-m", "dvc")
FIRST_STAGE_TIMEOUT_SECONDS = 300


def artifact_workspace(tmp: Path) -> Path:
    """The example pipeline run up to evaluate in a fresh git + DVC repo, dvc.lock committed."""
    root = copy_pipeline(PROJECT, tmp / "ws")
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["train"].update({"max_epochs": 2, "patience": 1})
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    init_repo(root, tmp / "local-remote-unused")
    run(*DVC, "repro", "evaluate", cwd=root)
    commit_all(root, "artifacts")
    return root


def timed(*args: str, cwd: Path, env: dict[str, str]) -> float:
    start = time.perf_counter()
    proc = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}")
    return seconds


def push_pull(root: Path, tmp: Path, s3: S3Server, repeats: int) -> dict[str, dict[str, float]]:
    """Median seconds of push and pull per remote kind, each run against an empty remote and an empty cache."""
    env = {**os.environ, **s3.credentials_env()}
    bucket = s3.create_bucket("bench-remote-storage")
    times: dict[str, dict[str, list[float]]] = {"local": {"push": [], "pull": []}, "s3": {"push": [], "pull": []}}
    for i in range(repeats):
        for kind in ("local", "s3"):
            name = f"{kind}{i}"
            if kind == "local":
                run(*DVC, "remote", "add", "-f", name, str(tmp / f"folder-remote-{i}"), cwd=root)
            else:
                run(*DVC, "remote", "add", "-f", name, f"s3://{bucket}/run{i}", cwd=root)
                run(*DVC, "remote", "modify", name, "endpointurl", s3.endpoint, cwd=root)
            times[kind]["push"].append(timed(*DVC, "push", "-r", name, cwd=root, env=env))
            clone = tmp / f"clone-{name}"
            shutil.rmtree(clone, ignore_errors=True)
            run("git", "clone", "-q", str(root), str(clone), cwd=tmp)
            shutil.copy(root / ".dvc" / "config", clone / ".dvc" / "config")  # the bench's remotes, uncommitted
            times[kind]["pull"].append(timed(*DVC, "pull", "-r", name, cwd=clone, env=env))
            shutil.rmtree(clone)
    return {k: {op: statistics.median(v) for op, v in ops.items()} for k, ops in times.items()}


def trigger_to_first_stage(root: Path, tmp: Path, s3: S3Server) -> dict[str, float]:
    """Seconds from the trigger until the flow runs and until its first stage's task runs, on a fresh worker folder.

    The deployed commit has dvc.lock up to evaluate, so the worker's `dvc pull` fetches every artifact and the first
    stage to run is the first one not up to date."""
    from tests.flows.conftest import PrefectServer, client_env

    origin = tmp / "origin.git"
    run("git", "init", "-q", "--bare", str(origin), cwd=tmp)
    run("git", "remote", "add", "origin", str(origin), cwd=root)
    use_s3_remote(root, s3, s3.create_bucket("bench-worker"))
    params = yaml.safe_load((root / "params.yaml").read_text())
    deployment = params["orchestration"]["deployment"]
    deployment.update({"source": "git", "cron": None, "name": "bench", "work_pool": "bench-pool"})
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    commit_all(root, "git-sourced deployment")
    run("git", "push", "-q", "origin", "HEAD:main", cwd=root)
    timed(*DVC, "push", cwd=root, env={**os.environ, **s3.credentials_env()})
    (tmp / "server").mkdir()
    with prefect_server(tmp / "server") as api_url:
        server = PrefectServer(api_url=api_url, home=tmp / "server", log=tmp / "server" / "server.log")
        deployer = client_env(server, tmp / "deployer-home")
        timed(sys.executable, "-m", "flows.deploy", "--root", str(root), "deploy", cwd=root, env=deployer)
        folder = tmp / "fresh-worker"
        (folder / "tmp").mkdir(parents=True)
        env = {**client_env(server, folder / "prefect-home"), **s3.credentials_env(), "TMPDIR": str(folder / "tmp")}
        return _time_first_stage(api_url, folder, env, tmp / "worker.log")


def _time_first_stage(api_url: str, folder: Path, env: dict[str, str], log: Path) -> dict[str, float]:
    import httpx

    from tests.flows.conftest import started

    api = httpx.Client(base_url=api_url, timeout=30)
    dep = api.get("/deployments/name/training-pipeline/bench").json()
    worker = [sys.executable, "-m", "prefect", "worker", "start", "--pool", "bench-pool", "--type", "process"]
    with started(worker, cwd=folder, env=env, log=log):  # stopped, with its flow run, on the way out
        start = time.perf_counter()
        flow_run = api.post(f"/deployments/{dep['id']}/create_flow_run", json={}).json()
        marks: dict[str, float] = {}
        query = {"flow_runs": {"id": {"any_": [flow_run["id"]]}}}
        while time.perf_counter() - start < FIRST_STAGE_TIMEOUT_SECONDS:
            state = api.get(f"/flow_runs/{flow_run['id']}").json()["state"]["type"]
            if state == "RUNNING":
                marks.setdefault("flow_run_running", time.perf_counter() - start)
            tasks = api.post("/task_runs/filter", json=query).json()
            if any(t["state"]["type"] in ("RUNNING", "COMPLETED") for t in tasks):
                marks["first_stage_running"] = time.perf_counter() - start
                return marks
            if state in ("FAILED", "CRASHED", "COMPLETED"):
                break
            time.sleep(0.2)
    raise RuntimeError(f"no stage started; worker log:\n{log.read_text()[-3000:]}")


def package_files(folder: Path) -> dict[str, Path]:
    """Files the size of the example's package: weights 0.6 MB, 14 JSON documents, 5 PNG figures of 80 kB."""
    folder.mkdir(parents=True, exist_ok=True)
    sizes = {"model.safetensors": 600_000, **{f"doc{i}.json": 2_000 for i in range(14)}}
    sizes |= {f"figure{i}.png": 80_000 for i in range(5)}
    for file_name, size in sizes.items():
        (folder / file_name).write_bytes(os.urandom(size))
    return {file_name: folder / file_name for file_name in sizes}


def registry_times(tmp: Path, s3: S3Server, repeats: int) -> dict[str, dict[str, float]]:
    """Median seconds of register (publish), cold load and warm load, for a folder and for the bucket."""
    from tabml.registry.store import load_package, publish

    os.environ.update({**s3.credentials_env(), "AWS_ENDPOINT_URL_S3": s3.endpoint})
    s3.create_bucket("bench-registry")
    out: dict[str, dict[str, float]] = {}
    for kind, registry in (("local", str(tmp / "registry")), ("s3", "s3://bench-registry/models")):
        marks: dict[str, list[float]] = {"register": [], "load cold": [], "load warm": []}
        for n in range(repeats):
            files = package_files(tmp / f"package-{kind}-{n}")
            os.environ["TABML_REGISTRY_CACHE"] = str(tmp / f"registry-cache-{kind}-{n}")
            start = time.perf_counter()
            publish(registry, "credit", files, lambda v: {"lineage.json": {"v": v}}, {}, stage="production",
                    lock_timeout=60)  # fmt: skip
            marks["register"].append(time.perf_counter() - start)
            os.environ["TABML_REGISTRY_CACHE"] = str(tmp / f"registry-reader-{kind}-{n}")  # a fresh reader
            for which in ("load cold", "load warm"):
                start = time.perf_counter()
                load_package(registry, "credit")
                marks[which].append(time.perf_counter() - start)
        out[kind] = {op: statistics.median(values) for op, values in marks.items()}
    return out


def print_registry(tmp: Path, s3: S3Server, repeats: int) -> None:
    times = registry_times(tmp, s3, repeats)
    print(f"registry (package of 20 files, 1.0 MB; medians of {repeats}):")
    for op in ("register", "load cold", "load warm"):
        local, remote = times["local"][op], times["s3"][op]
        print(f"{op:10} {local:8.3f}s {remote:8.3f}s {remote / local:7.1f}x")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.remote_storage", description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--registry-only", action="store_true", help="only the registry: folder vs bucket")
    args = parser.parse_args(argv)
    os.environ.update({"DVC_NO_ANALYTICS": "1", "DO_NOT_TRACK": "1", "PREFECT_SERVER_ANALYTICS_ENABLED": "false"})
    os.environ["WANDB_MODE"] = "offline"
    with tempfile.TemporaryDirectory(prefix="tabml-bench-remote-") as name, s3_server(Path(name)) as s3:
        tmp = Path(name)
        print_registry(tmp, s3, args.repeats)
        if args.registry_only:
            return 0
        root = artifact_workspace(tmp)
        cache_mb = sum(p.stat().st_size for p in (root / ".dvc" / "cache").rglob("*") if p.is_file()) / 1e6
        medians = push_pull(root, tmp, s3, args.repeats)
        print(f"artifacts: {cache_mb:.1f} MB in the DVC cache; medians of {args.repeats} runs")
        print(f"{'':6} {'local folder':>13} {'S3 (moto)':>10} {'ratio':>6}")
        for op in ("push", "pull"):
            local, s3_seconds = medians["local"][op], medians["s3"][op]
            print(f"{op:6} {local:12.2f}s {s3_seconds:9.2f}s {s3_seconds / local:5.2f}x")
        marks = trigger_to_first_stage(root, tmp, s3)
        print(
            f"fresh worker folder, trigger -> flow running: {marks.get('flow_run_running', float('nan')):.1f}s, "
            f"-> first stage running: {marks['first_stage_running']:.1f}s (clone + dvc pull + flow start)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
