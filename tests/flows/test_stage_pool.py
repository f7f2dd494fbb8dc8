"""Only the train stage on another work pool (`orchestration.stages.train.work_pool`): the pipeline flow runs on
`tabml-cpu`, hands train over through a git ref and the DVC remote (moto S3 on loopback) to a stage flow run on
`tabml-gpu`, takes its dvc.lock entry and model back, and goes on; plus the pure parts and the failure lines."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import yaml

from tabml.core.ops_params import OrchestrationParams
from tabml.orchestration import handover, stage_pool
from tabml.orchestration.stage_pool import StagePoolError, SubRun
from tests.conftest import edit_params, make_workspace
from tests.flows.conftest import PrefectServer, client_env, started
from tests.flows.test_remote_worker import (
    _run_logs,
    _wait_until_final,
    assert_pulls_up_to_date,
    bare_remote,
    clone_run_branch,
    git,
)
from tests.s3_server import S3Server, use_s3_remote
from tests.workspace import commit_all, example_orchestration, init_repo

CPU, GPU = "tabml-cpu", "tabml-gpu"


def orchestration(**train: object) -> OrchestrationParams:
    stages = {"train": {"retries": 1, "retry_delay_seconds": 10, "timeout_seconds": 600, **train}}
    return OrchestrationParams.model_validate(example_orchestration(stages=stages))


def test_the_routing_plan_comes_from_params_and_the_default_runs_everything_here() -> None:
    example = OrchestrationParams.model_validate(example_orchestration(stages=yaml.safe_load("train: {retries: 1}")))
    assert stage_pool.routes(example, ["ingest", "train", "evaluate"]) == {}
    assert example.stage_work_pools() == [] and example.work_pool("train") is None
    routed = orchestration(work_pool=GPU)
    assert stage_pool.routes(routed, ["ingest", "preprocess", "train", "evaluate"]) == {"train": GPU}
    assert routed.stage_work_pools() == [GPU]
    assert routed.policy("train").retries == 1 and "work_pool" not in routed.policy("train").model_dump()
    assert stage_pool.deployment_name(GPU) == "tabml-stage/tabml-gpu"
    with pytest.raises(ValueError, match="publishing runs where the flow runs"):
        OrchestrationParams.model_validate(example_orchestration(stages={"publish": {"work_pool": GPU}}))
    with pytest.raises(ValueError, match="work_pool"):
        orchestration(work_pool="gpu pool; rm -rf")


def test_hand_over_ref_names_and_parameters_hold_ids_only() -> None:
    ref = handover.handover_ref("0b7c-11", "train")
    assert ref == "refs/tabml/handover/0b7c-11/train" and not ref.startswith("refs/heads/")
    for bad in (("", "train"), ("0b7c", ""), ("a/b", "train")):
        with pytest.raises(ValueError):
            handover.handover_ref(*bad)
    parameters = stage_pool.stage_flow_parameters("train", ".", ref, "origin", "0b7c-11", False)
    assert parameters == {
        "stage": "train",
        "root": ".",
        "handover_ref": ref,
        "git_remote": "origin",
        "pipeline_run_id": "0b7c-11",
        "force": False,
    }


def test_the_wait_covers_every_try_and_the_error_lines_say_pool_run_and_what_to_do() -> None:
    policy = orchestration(work_pool=GPU).policy("train")
    assert stage_pool.wait_limit(policy, 900) == 600 * 2 + 10 + 900
    assert stage_pool.wait_limit(orchestration(timeout_seconds=None).stage_defaults, 900) is None
    run = SubRun(id="6f1e", name="brave-otter", pool=GPU)
    failed = stage_pool.ended_badly("train", run, "Failed", "stage 'train' failed: train.lr must be > 0\nmore")
    first, todo = str(failed).splitlines()
    assert first == (
        "stage 'train' failed: on work pool 'tabml-gpu', stage flow run 'brave-otter' (6f1e) ended Failed: "
        "stage 'train' failed: train.lr must be > 0"
    )
    assert todo.startswith("  what to do: read that flow run's logs")
    assert failed.stage == "train" and failed.retryable is False
    late = str(stage_pool.not_picked_up("train", run, 900))
    assert "no worker of work pool 'tabml-gpu' started stage flow run 'brave-otter' (6f1e) within 900s" in late
    assert "prefect worker start --pool tabml-gpu" in late and "pickup_timeout_seconds" in late
    assert "orchestration.stages.train.timeout_seconds" in str(stage_pool.did_not_finish("train", run, 5))
    assert "make deploy" in str(stage_pool.no_deployment("train", GPU))
    assert "publish.git_remote" in str(stage_pool.needs_git_remote("train", GPU))


def test_the_hand_over_round_trip_through_a_bare_git_remote(tmp_path: Path) -> None:
    main = tmp_path / "main"
    main.mkdir()
    (main / "params.yaml").write_text("a: 1\n")
    init_repo(main, tmp_path / "dvc-remote")
    origin = bare_remote(main, tmp_path / "origin.git")
    git(main, "push", "-q", "origin", "main")
    base = git(main, "rev-parse", "HEAD")
    (main / "params.yaml").write_text("a: 2\n")  # an override the run applied
    (main / "dvc.lock").write_text("schema: '2.0'\nstages: {}\n")
    ref = handover.handover_ref("run1", "train")
    handed = handover.commit_and_push(main, "origin", ref, "hand-over")
    assert git(origin, "rev-parse", ref) == handed and git(main, "rev-parse", "HEAD") == base  # HEAD untouched
    assert not git(origin, "for-each-ref", "refs/heads/runs/")

    other = tmp_path / "other"  # the stage's machine: a clone at the deployed commit
    git(tmp_path, "clone", "-q", str(origin), str(other))
    assert handover.check_out(other, "origin", ref) == handed
    assert (other / "params.yaml").read_text() == "a: 2\n"
    (other / "dvc.lock").write_text("schema: '2.0'\nstages: {train: {cmd: x}}\n")
    returned = handover.commit_and_push(other, "origin", ref, "stage train")
    assert git(origin, "rev-parse", f"{ref}^") == handed and git(origin, "rev-parse", ref) == returned

    assert handover.take_back(main, "origin", ref, handed) == ["dvc.lock"]
    assert (main / "dvc.lock").read_text() == "schema: '2.0'\nstages: {train: {cmd: x}}\n"
    assert handover.delete_ref(main, "origin", ref) is None
    assert subprocess.run(["git", "rev-parse", "--verify", ref], cwd=origin, capture_output=True).returncode != 0
    with pytest.raises(handover.HandoverError, match=r"(?s)checking out hand-over ref .* what to do: check"):
        handover.check_out(other, "origin", ref)


def test_a_stage_flow_nobody_picks_up_is_cancelled_with_one_line(use_prefect_api: PrefectServer) -> None:
    api = httpx.Client(base_url=use_prefect_api.api_url, timeout=30)
    flow_id = api.post("/flows/", json={"name": "tabml-stage"}).json()["id"]
    deployment = {"name": "tabml-nobody", "flow_id": flow_id, "work_pool_name": None, "parameters": {}}
    assert api.post("/deployments/", json=deployment).status_code in (200, 201)
    settings = example_orchestration(stages={"train": {"work_pool": "tabml-nobody"}})
    settings["stage_pools"] = {**settings["stage_pools"], "pickup_timeout_seconds": 2}
    params = OrchestrationParams.model_validate(settings)
    run = stage_pool._start("train", "tabml-nobody", {"stage": "train"})
    with pytest.raises(StagePoolError) as refused:
        stage_pool._wait("train", run, params)
    assert str(refused.value).splitlines()[0] == (
        f"stage 'train' failed: no worker of work pool 'tabml-nobody' started stage flow run '{run.name}' "
        f"({run.id}) within 2s; it was cancelled"
    )
    assert api.get(f"/flow_runs/{run.id}").json()["state"]["type"] == "CANCELLED"
    with pytest.raises(StagePoolError, match="no deployment 'tabml-stage/tabml-elsewhere'"):
        stage_pool._start("train", "tabml-elsewhere", {})


@pytest.mark.slow
def test_only_train_runs_on_the_gpu_pool_and_a_third_clone_finds_the_run_up_to_date(
    prefect_server: PrefectServer, s3_storage: S3Server, tmp_path: Path
) -> None:
    bucket = s3_storage.create_bucket("tabml-stage-pool")
    ws = make_workspace(tmp_path / "ws")
    origin = bare_remote(ws, tmp_path / "origin.git")
    use_s3_remote(ws, s3_storage, bucket)
    shared_registry = tmp_path / "shared" / "registry"
    current = yaml.safe_load((ws / "params.yaml").read_text())["orchestration"]
    stages = {**current["stages"], "train": {**current["stages"]["train"], "work_pool": GPU}}
    deployment = {**current["deployment"], "name": "cpu", "work_pool": CPU, "source": "git", "cron": None}
    edit_params(
        ws,
        register={"registry_dir": str(shared_registry)},
        orchestration={
            "stages": stages,
            "deployment": deployment,
            "publish": {**current["publish"], "git_remote": "origin"},
        },
    )
    commit_all(ws, "train on the GPU pool")
    git(ws, "push", "-q", "origin", "main")

    deployer = client_env(prefect_server, tmp_path / "deployer-home")
    done = subprocess.run(
        [sys.executable, "-m", "flows.deploy", "--root", str(ws), "deploy"],
        env=deployer,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"deployment tabml-stage/{GPU}" in done.stdout
    api = httpx.Client(base_url=prefect_server.api_url, timeout=30)
    stage_dep = api.get(f"/deployments/name/tabml-stage/{GPU}").json()
    assert [next(iter(step)) for step in stage_dep["pull_steps"]] == ["prefect.deployments.steps.git_clone"]
    main_dep = api.get("/deployments/name/training-pipeline/cpu").json()

    def worker(pool: str) -> tuple[list[str], dict[str, str], Path]:
        folder = tmp_path / pool  # each worker: its own PREFECT_HOME and working folder, nothing of the checkout
        (folder / "tmp").mkdir(parents=True)
        env = {
            **client_env(prefect_server, folder / "prefect-home"),
            **s3_storage.credentials_env(),
            "TMPDIR": str(folder / "tmp"),
            "WANDB_MODE": "offline",
        }
        return [sys.executable, "-m", "prefect", "worker", "start", "--pool", pool, "--type", "process"], env, folder

    cpu_cmd, cpu_env, cpu_dir = worker(CPU)
    gpu_cmd, gpu_env, gpu_dir = worker(GPU)
    with (
        started(cpu_cmd, cwd=cpu_dir, env=cpu_env, log=tmp_path / "cpu.log"),
        started(gpu_cmd, cwd=gpu_dir, env=gpu_env, log=tmp_path / "gpu.log"),
    ):
        flow_run = api.post(f"/deployments/{main_dep['id']}/create_flow_run", json={}).json()
        state = _wait_until_final(api, flow_run["id"])
        # the stage fails on the GPU pool (a launcher that is not installed there): the main run fails, saying where
        failing = {"parameters": {"params_overrides": ["train.launcher.kind=srun"]}}
        failed_run = api.post(f"/deployments/{main_dep['id']}/create_flow_run", json=failing).json()
        failed = _wait_until_final(api, failed_run["id"])
    logs = (tmp_path / "cpu.log").read_text() + (tmp_path / "gpu.log").read_text()
    assert state["type"] == "COMPLETED", f"{state}\n{logs[-8000:]}"
    _check_where_each_stage_ran(api, flow_run, stage_dep["id"])
    assert failed["type"] == "FAILED", failed
    line = failed["message"].splitlines()[0]
    assert f"stage 'train' failed: on work pool '{GPU}', stage flow run '" in line, failed["message"]
    assert "ended Failed: stage 'train' failed: " in line and "srun" in line, line
    assert not git(origin, "for-each-ref", f"refs/tabml/handover/{flow_run['id']}/")  # gone once taken back
    assert git(origin, "for-each-ref", f"refs/tabml/handover/{failed_run['id']}/")  # a failed one stays for a look

    (branch,) = [r.split()[1] for r in git(origin, "show-ref").splitlines() if "refs/heads/runs/" in r]
    third = clone_run_branch(tmp_path, origin, branch)
    lock = yaml.safe_load((third / "dvc.lock").read_text())["stages"]
    assert {"ingest", "preprocess", "train", "evaluate", "register"} <= set(lock)
    processed = next(o for o in lock["preprocess"]["outs"] if o["path"] == "data/processed")
    assert next(d for d in lock["train"]["deps"] if d["path"] == "data/processed")["md5"] == processed["md5"]
    assert_pulls_up_to_date(third, s3_storage)
    everything = logs + str(main_dep) + str(stage_dep) + _run_logs(api, flow_run["id"])
    assert s3_storage.secret_key not in everything and s3_storage.access_key not in everything


def _check_where_each_stage_ran(api: httpx.Client, flow_run: dict, stage_deployment_id: str) -> None:
    """The main run ran on tabml-cpu with every stage a task run of its own; train's child flow run on tabml-gpu."""
    main = api.get(f"/flow_runs/{flow_run['id']}").json()
    assert main["work_pool_name"] == CPU
    tasks = api.post("/task_runs/filter", json={"flow_runs": {"id": {"any_": [flow_run["id"]]}}}).json()
    by_name = {t["name"]: t for t in tasks}
    assert {"ingest", "validate", "preprocess", "train", "evaluate", "register", "publish"} <= set(by_name)
    train = by_name["train"]
    assert (
        train["state"]["type"] == "COMPLETED" and f"on work pool '{GPU}' as stage flow run" in train["state"]["message"]
    )
    children = api.post("/flow_runs/filter", json={"flow_runs": {"parent_task_run_id": {"any_": [train["id"]]}}}).json()
    (child,) = children
    assert child["work_pool_name"] == GPU and child["deployment_id"] == stage_deployment_id
    assert child["parameters"]["stage"] == "train" and child["state"]["type"] == "COMPLETED"
    assert child["id"] in train["state"]["message"]
    child_tasks = api.post("/task_runs/filter", json={"flow_runs": {"id": {"any_": [child["id"]]}}}).json()
    assert [t["name"] for t in child_tasks] == ["train"]  # nothing else ran on the GPU pool
    on_gpu = api.post("/flow_runs/filter", json={"work_pools": {"name": {"any_": [GPU]}}}).json()
    assert child["id"] in {r["id"] for r in on_gpu}
    assert {r["deployment_id"] for r in on_gpu} == {stage_deployment_id}  # only stage flow runs went there
    logs = _run_logs(api, flow_run["id"])
    assert "handed over on refs/tabml/handover/" in logs and "[4/6] train: ran" in logs
