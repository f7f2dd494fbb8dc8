"""What keeps unattended runs safe, on toy git + DVC repos under a real Prefect server (tests/flows/conftest.py):
retries only where they can help (with backoff, resuming from a checkpoint), one W&B run per pipeline run,
one run per workspace at a time, a clear failure notice to a log and a webhook, params overrides."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from flows.pipeline import run_stage, training_pipeline
from tabml.core.ops_params import OrchestrationParams, StagePolicy
from tabml.core.params import ParamsError
from tabml.orchestration.dvc_stages import StageFailedError
from tabml.orchestration.publish_run import should_publish
from tabml.orchestration.task_states import stage_task
from tabml.orchestration.workspace_lock import WorkspaceLockTimeout, workspace_lock
from tabml.tracking.runs import wandb_run_id
from tests.flows.conftest import PrefectServer, client_env
from tests.tabml.orchestration.test_dvc_stages import build_toy_template, copy_repo, write_dvc_yaml
from tests.tabml.orchestration.test_notify import SECRET_URL_PART, recording_webhook
from tests.workspace import EXAMPLE_PARAMS, example_orchestration

# One script for every toy stage: `python stage.py <name> <behaviour> [seconds]`. Each attempt appends a JSON
# line to attempts/<name>.log (outside DVC's outputs, like train's checkpoint dir) before doing anything else.
STAGE_PY = """\
import json, os, sys, time
from pathlib import Path
from tabml.core.errors import ExitCode
from tabml.core.stage import write_status  # the stage side of the exit-code contract, as stage_main does it
name, behaviour, *rest = sys.argv[1:]
write_status(name, None)
ckpt = Path("ckpt") / name / "last.ckpt"
Path("attempts").mkdir(exist_ok=True)
attempt = {"wandb": os.environ.get("TABML_WANDB_RUN_ID"), "flow_run": os.environ.get("TABML_FLOW_RUN_ID"),
           "resumed": ckpt.exists(), "start": time.time()}
with open(f"attempts/{name}.log", "a") as fh:
    fh.write(json.dumps(attempt) + "\\n")
if behaviour == "crash-once" and not ckpt.exists():
    ckpt.parent.mkdir(parents=True, exist_ok=True)
    ckpt.write_text("epoch 3")
    os._exit(3)  # dies after checkpointing, as a killed training run would
if behaviour == "hang-once" and not ckpt.exists():
    ckpt.parent.mkdir(parents=True, exist_ok=True)
    ckpt.write_text("epoch 1")
    time.sleep(60)
if behaviour == "data-error":
    message = "data/x.csv: 3 rows have no target\\n  what to do: fill the target or drop the rows"
    print(f"[{name}] FAILED: {message}", file=sys.stderr)
    write_status(name, ExitCode.BAD_INPUT, message)
    sys.exit(ExitCode.BAD_INPUT)
if behaviour == "crash":
    os._exit(3)
if behaviour == "sleep":
    time.sleep(float(rest[0]))
with open(f"attempts/{name}.log", "a") as fh:
    fh.write(json.dumps({"end": time.time()}) + "\\n")
Path(f"{name}.txt").write_text(ckpt.read_text() if ckpt.exists() else "fresh")
write_status(name, ExitCode.OK)
"""


@pytest.fixture(scope="module")
def toy_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = build_toy_template(tmp_path_factory.mktemp("safety-template"))
    (root / "stage.py").write_text(STAGE_PY)
    return root


def toy(template: Path, dest: Path, behaviour: str, *, name: str = "work", **policy: object) -> Path:
    """A one-stage toy pipeline whose stage does `behaviour`, with `policy` as its orchestration.stages entry."""
    root = copy_repo(template, dest)
    cmd = f"python stage.py {name} {behaviour}"
    write_dvc_yaml(root, {name: {"cmd": cmd, "deps": ["stage.py"], "outs": [f"{name}.txt"]}})
    orchestration = example_orchestration({name: policy}, notify={"log_file": "logs/failures.log"})
    (root / "params.yaml").write_text(yaml.safe_dump({"orchestration": orchestration}))
    return root


def attempts(root: Path, name: str = "work") -> list[dict]:
    lines = [json.loads(line) for line in (root / "attempts" / f"{name}.log").read_text().splitlines()]
    return [line for line in lines if "start" in line]


def test_retry_waits_grow_by_the_backoff_and_reach_prefect() -> None:
    policy = StagePolicy(retries=3, retry_delay_seconds=5, retry_backoff=3, timeout_seconds=None)
    assert policy.retry_delays() == [5, 15, 45]
    task = stage_task(run_stage, "train", policy)
    assert (task.name, task.retries, task.retry_delay_seconds) == ("train", 3, [5, 15, 45])
    none = StagePolicy(retries=0, retry_delay_seconds=5, retry_backoff=2, timeout_seconds=None)
    assert none.retry_delays() == [] and stage_task(run_stage, "x", none).retries == 0


def test_publishing_is_on_for_deployment_runs_off_for_manual_ones_unless_asked() -> None:
    orchestration = OrchestrationParams.model_validate(example_orchestration())
    assert should_publish(None, from_deployment=True, orchestration=orchestration)
    assert not should_publish(None, from_deployment=False, orchestration=orchestration)
    assert should_publish(True, from_deployment=False, orchestration=orchestration)
    assert not should_publish(False, from_deployment=True, orchestration=orchestration)


def test_crashed_stage_is_retried_resumes_from_its_checkpoint_and_joins_one_wandb_run(
    use_prefect_api: PrefectServer, toy_template: Path, tmp_path: Path
) -> None:
    root = toy(toy_template, tmp_path / "toy", "crash-once", retries=2, retry_delay_seconds=0.2)
    state = training_pipeline(root=str(root), return_state=True)
    assert state.is_completed(), state.message
    flow_run_id = str(state.state_details.flow_run_id)
    first, second = attempts(root)
    assert (first["resumed"], second["resumed"]) == (False, True)
    assert (root / "work.txt").read_text() == "epoch 3"  # the retry continued from what the first attempt saved
    assert first["wandb"] == second["wandb"] == wandb_run_id(flow_run_id)
    assert re.fullmatch(r"[0-9a-z]{8}", first["wandb"])  # a W&B run id (all digits is a valid one)
    assert first["flow_run"] == flow_run_id
    assert second["start"] - first["start"] >= 0.2


def test_timed_out_stage_is_stopped_and_retried(
    use_prefect_api: PrefectServer, toy_template: Path, tmp_path: Path
) -> None:
    # 10 s: the first attempt hangs for 60 s; a loaded machine must still start the retry's `dvc repro` within it
    root = toy(toy_template, tmp_path / "toy", "hang-once", retries=1, retry_delay_seconds=0, timeout_seconds=10)
    training_pipeline(root=str(root))
    assert [a["resumed"] for a in attempts(root)] == [False, True]
    assert (root / "work.txt").read_text() == "epoch 1"


def test_a_reported_data_error_is_never_retried_and_is_notified_to_log_and_webhook(
    use_prefect_api: PrefectServer, toy_template: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = toy(toy_template, tmp_path / "toy", "data-error", retries=3, retry_delay_seconds=0)
    with recording_webhook() as hook:
        monkeypatch.setenv("TABML_NOTIFY_WEBHOOK_URL", hook.url)
        with pytest.raises(StageFailedError, match="3 rows have no target") as caught:
            training_pipeline(root=str(root))
    assert not caught.value.retryable and len(attempts(root)) == 1

    notice = (root / "logs" / "failures.log").read_text()
    assert "training-pipeline run '" in notice and "FAILED at stage 'work'" in notice
    assert "3 rows have no target" in notice and "what to do: fill the target or drop the rows" in notice
    assert f"/runs/flow-run/{attempts(root)[0]['flow_run']}" in notice
    (body,) = hook.received
    assert body["stage"] == "work" and body["text"] == notice.strip()
    assert SECRET_URL_PART not in notice


def test_a_stage_whose_params_say_no_retries_is_not_retried_even_when_it_crashes(
    use_prefect_api: PrefectServer, toy_template: Path, tmp_path: Path
) -> None:
    root = toy(toy_template, tmp_path / "toy", "crash", name="validate", retries=0, retry_delay_seconds=0)
    with pytest.raises(StageFailedError, match="stage 'validate' failed"):
        training_pipeline(root=str(root))
    assert len(attempts(root, "validate")) == 1
    assert "FAILED at stage 'validate'" in (root / "logs" / "failures.log").read_text()


def test_a_run_waits_for_the_workspace_then_fails_naming_the_holder(
    use_prefect_api: PrefectServer, toy_template: Path, tmp_path: Path
) -> None:
    root = toy(toy_template, tmp_path / "toy", "ok")
    edited = yaml.safe_load((root / "params.yaml").read_text())
    edited["orchestration"]["lock_timeout_seconds"] = 1
    (root / "params.yaml").write_text(yaml.safe_dump(edited))
    with (
        workspace_lock(root, timeout=1, holder="flow run nightly-run"),
        pytest.raises(WorkspaceLockTimeout, match=r"still holds this workspace after 1s \(flow run nightly-run"),
    ):
        training_pipeline(root=str(root))
    assert not (root / "attempts").exists(), "a stage ran without the workspace"
    notice = (root / "logs" / "failures.log").read_text()
    assert "WorkspaceLockTimeout" in notice and "lock_timeout_seconds" in notice


@pytest.mark.slow
def test_two_runs_started_together_on_one_workspace_run_one_after_the_other(
    prefect_server: PrefectServer, toy_template: Path, tmp_path: Path
) -> None:
    root = toy(toy_template, tmp_path / "toy", "sleep 3")
    env = client_env(prefect_server, tmp_path / "client-home")
    command = [sys.executable, "-m", "flows.pipeline", "--root", str(root), "--force"]
    runs = [subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)]
    runs.append(subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    outputs = [run.communicate(timeout=150)[0] for run in runs]
    assert [run.returncode for run in runs] == [0, 0], "\n\n".join(outputs)

    lines = [json.loads(line) for line in (root / "attempts" / "work.log").read_text().splitlines()]
    starts = [line["start"] for line in lines if "start" in line]
    ends = [line["end"] for line in lines if "end" in line]
    assert len(starts) == len(ends) == 2
    assert min(ends) <= max(starts), f"the two runs' stages overlapped: started {starts}, ended {ends}"
    assert sum("waiting up to 3600s for the workspace: another run holds it (flow run" in out for out in outputs) == 1


def test_overrides_and_the_data_source_are_written_to_params_before_the_run(
    use_prefect_api: PrefectServer, tmp_path: Path
) -> None:

    (tmp_path / "toy").mkdir()
    root = build_toy_template(tmp_path / "toy")
    params = yaml.safe_load(EXAMPLE_PARAMS.read_text())
    params["orchestration"]["stages"] = {"echo": {"retries": 0}}  # the flow's steps are this dvc.yaml's
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    echo = "import yaml\np = yaml.safe_load(open('params.yaml'))\nprint(p['data']['path'], p['train']['lr'])\n"
    (root / "echo.py").write_text(echo)
    stage = {"cmd": "python echo.py > used.txt", "params": ["data.path", "train.lr"], "outs": ["used.txt"]}
    write_dvc_yaml(root, {"echo": stage})

    training_pipeline(root=str(root), params_overrides=["train.lr=0.0042"], data_path="data/landing/new, v2.csv")
    assert (root / "used.txt").read_text().split("\n")[0] == "data/landing/new, v2.csv 0.0042"
    lock = yaml.safe_load((root / "dvc.lock").read_text())
    recorded = lock["stages"]["echo"]["params"]["params.yaml"]
    assert recorded == {"data.path": "data/landing/new, v2.csv", "train.lr": 0.0042}

    before = (root / "params.yaml").read_text()
    with pytest.raises(ParamsError, match=r"train\.learning_rate"):
        training_pipeline(root=str(root), params_overrides=["train.learning_rate=1"])
    assert (root / "params.yaml").read_text() == before
    assert "train.learning_rate" in (root / "logs" / "pipeline_failures.log").read_text()


def test_train_checkpoints_are_no_dvc_output_so_dvc_leaves_them_for_a_retry() -> None:
    from dvc.repo import Repo

    from tabml.core.params import load_params
    from tests.conftest import PROJECT

    checkpoints = (PROJECT / load_params(EXAMPLE_PARAMS).train.checkpoint_dir).resolve()
    with Repo(str(PROJECT), uninitialized=True) as repo:
        outs = [Path(out.fs_path).resolve() for out in repo.index.outs]
    assert outs, "DVC sees no outputs in dvc.yaml"
    clashes = [out for out in outs if checkpoints == out or out in checkpoints.parents or checkpoints in out.parents]
    assert not clashes, f"train.checkpoint_dir overlaps DVC outputs {clashes}: DVC deletes them before a rerun"


def test_a_policy_for_a_stage_the_flow_does_not_have_is_a_params_error(
    use_prefect_api: PrefectServer, toy_template: Path, tmp_path: Path
) -> None:
    root = toy(toy_template, tmp_path / "toy", "ok")
    edited = yaml.safe_load((root / "params.yaml").read_text())
    edited["orchestration"]["stages"]["wrok"] = {"retries": 1}  # a typo of the stage `work`
    (root / "params.yaml").write_text(yaml.safe_dump(edited))
    with pytest.raises(ParamsError, match=r"orchestration\.stages names no step of this flow: \['wrok'\]"):
        training_pipeline(root=str(root))
    assert not (root / "attempts").exists()  # nothing ran
