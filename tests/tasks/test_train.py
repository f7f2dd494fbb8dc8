import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from tabml.core.errors import ExitCode
from tabml.core.params import load_params
from tabml.data.processed import load_split
from tabml.training.trained_model import load_model, read_run_info, score_arrays
from tasks import preprocess, train
from tests.conftest import FAST_TRAIN, edit_params
from tests.workspace import EXAMPLE_PARAMS, EXAMPLE_TABLE

CPU_DDP = {"accelerator": "cpu", "devices": 2, "strategy": "ddp"}


@pytest.fixture
def processed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    shutil.copy(EXAMPLE_PARAMS, tmp_path / "params.yaml")
    monkeypatch.chdir(tmp_path)
    edit_params(tmp_path, train={**FAST_TRAIN, "accelerator": "cpu"})
    snapshot = load_params().preprocess.input  # what preprocess reads
    snapshot.parent.mkdir(parents=True)
    pd.read_csv(EXAMPLE_TABLE).to_parquet(snapshot)
    preprocess.run(load_params())
    return tmp_path


def train_process(root: Path, *extra: str) -> subprocess.Popen[str]:
    """`python -m tasks.train` as DVC and the flow run it (a real process, so DDP can re-launch it per rank)."""
    command = [sys.executable, "-m", "tasks.train", *extra]
    return subprocess.Popen(
        command, cwd=root, text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True
    )


def finish(proc: subprocess.Popen[str], timeout: float = 240) -> str:
    out, _ = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, out
    return out


def run_info(root: Path, out_dir: str = "models/train") -> dict:
    return read_run_info(root / out_dir)  # with this training's W&B id, duration and resume point


def wandb_run_ids(root: Path) -> list[str]:
    """One entry per W&B run directory: its run id (the folder name ends with it)."""
    return [p.name.rsplit("-", 1)[-1] for p in sorted((root / ".wandb/wandb").glob("offline-run-*"))]


def wait_for(path: Path, proc: subprocess.Popen[str], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert proc.poll() is None, f"training ended before {path} appeared:\n{proc.communicate()[0]}"
        assert time.monotonic() < deadline, f"{path} did not appear"
        time.sleep(0.01)


def val_loss_of_saved_model(root: Path) -> float:
    """The binary cross-entropy of the saved network on the whole val split, computed in one process."""
    val = load_split(root / "data/processed/val.npz")
    p = score_arrays(load_model(root / "models/train"), val, "binary").astype(np.float64)
    return float(torch.nn.functional.binary_cross_entropy(torch.from_numpy(p), torch.from_numpy(val.y).double()))


@pytest.mark.slow
@pytest.mark.parametrize("model", ["tabm", "mlp", "embedding_mlp", "ft_transformer"])
def test_train_writes_safetensors_that_reload_to_the_same_predictions(processed: Path, model: str) -> None:
    edit_params(processed, train={"model": model, "token_dim": 32, "transformer_blocks": 2})  # small on CPU
    train.run(load_params())
    out = processed / "models/train"
    assert {"model.safetensors", "model_config.json", "history.csv", "run_info.json"} <= {p.name for p in out.iterdir()}
    history = pd.read_csv(out / "history.csv")
    info = run_info(processed)
    assert len(history) == info["epochs"]
    assert {"train_loss", "val_loss", "val_auroc"} <= set(history.columns)
    assert info["world_size"] == 1 and info["precision"] == "32-true" and info["resumed_from"] is None
    test = load_split(processed / "data/processed/test.npz")
    first = score_arrays(load_model(out), test, "binary")
    again = score_arrays(load_model(out), test, "binary")
    np.testing.assert_array_equal(first, again)
    assert first.min() > 0 and first.max() < 1
    assert not (processed / "checkpoints/train").exists()  # a finished run leaves nothing to resume


@pytest.mark.slow
def test_training_is_deterministic_for_a_seed(processed: Path) -> None:
    weights = []
    for _ in range(2):
        train.run(load_params())
        weights.append((processed / "models/train/model.safetensors").read_bytes())
    assert weights[0] == weights[1]


@pytest.mark.slow
def test_two_process_ddp_matches_one_process_and_counts_every_val_row_once(processed: Path) -> None:
    """Real 2-process DDP on CPU (gloo), launched the way DVC runs the stage.

    Tolerance: `batch_size` is global, so each DDP step sees the same rows as the 1-process step and the
    gradients are averaged over the same global batch. What differs is only what no CPU run can share: BatchNorm
    statistics over each rank's half batch (torch's SyncBatchNorm is CUDA-only) and the ranks' dropout masks.
    Measured over seeds 0-4 on this table and these params: |delta best val loss| <= 0.0018 and |delta final val
    AUROC| <= 0.0031, while 1-process runs with different seeds spread by 0.030 and 0.027 (std ~0.012). The
    bounds, 0.006 and 0.01 (about 3x the largest measured gap, half a seed std), pass on that noise and fail on a
    sharding or averaging bug (a rank training on the wrong rows, a doubled or halved gradient).
    """
    train.run(load_params())
    single = run_info(processed)
    single_history = pd.read_csv(processed / "models/train/history.csv")
    shutil.rmtree(processed / ".wandb")
    edit_params(processed, train=CPU_DDP)

    out = finish(train_process(processed))

    ddp = run_info(processed)
    n_val = len(load_split(processed / "data/processed/val.npz"))
    assert n_val % 2 == 1  # so a DistributedSampler would have padded one repeated row
    assert ddp["world_size"] == 2 and ddp["val_rows_evaluated"] == n_val
    assert wandb_run_ids(processed) == [ddp["wandb_run_id"]]  # exactly one W&B run for two ranks
    assert len(re.findall(r"\[train\] \d+ epochs in", out)) == 1  # artifacts written once, by rank 0
    history = pd.read_csv(processed / "models/train/history.csv")
    assert abs(ddp["best_val_loss"] - single["best_val_loss"]) < 0.006
    assert abs(history["val_auroc"].iloc[-1] - single_history["val_auroc"].iloc[-1]) < 0.01
    # The synced validation of the saved network equals evaluating it in one process on every row once.
    assert ddp["best_val_loss"] == pytest.approx(val_loss_of_saved_model(processed), abs=1e-5)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.slow
def test_two_nodes_launched_by_torchrun_on_one_machine_train_as_one_job(processed: Path) -> None:
    edit_params(processed, train={"accelerator": "cpu", "devices": 1, "num_nodes": 2, "strategy": "ddp"})
    port = free_port()
    nodes = [
        subprocess.Popen(
            [sys.executable, "-m", "torch.distributed.run", "--nnodes", "2", "--node_rank", str(rank)]
            + ["--nproc_per_node", "1", "--master_addr", "127.0.0.1", "--master_port", str(port)]
            + ["-m", "tasks.train"],
            cwd=processed,
            text=True,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        for rank in (0, 1)
    ]
    outputs = [finish(node) for node in nodes]

    info = run_info(processed)
    assert info["world_size"] == 2
    assert info["val_rows_evaluated"] == len(load_split(processed / "data/processed/val.npz"))
    assert wandb_run_ids(processed) == [info["wandb_run_id"]]
    assert [len(re.findall(r"\[train\] \d+ epochs in", out)) for out in outputs] == [1, 0]  # node 1 writes nothing


@pytest.mark.slow
def test_sigkill_mid_epoch_then_rerun_resumes_from_last_checkpoint_in_the_same_wandb_run(processed: Path) -> None:
    edit_params(processed, train={"max_epochs": 6, "patience": 6, "batch_size": 64})
    checkpoints = processed / "checkpoints/train"
    first = train_process(processed)
    wait_for(checkpoints / "last.ckpt", first)
    os.killpg(first.pid, signal.SIGKILL)  # a lost node or a killed pod: every process of it, no handler runs
    first.wait()
    run_id = json.loads((checkpoints / "run.json").read_text())["wandb_run_id"]

    out = finish(train_process(processed))  # what a Prefect retry or `dvc repro` runs

    info = run_info(processed)
    assert "resuming the interrupted run" in out and info["resumed_from"]["epoch"] > 0
    assert info["wandb_run_id"] == run_id and set(wandb_run_ids(processed)) == {run_id}, out
    assert info["epochs"] == 6 and len(pd.read_csv(processed / "models/train/history.csv")) == 6
    assert not checkpoints.exists()


@pytest.mark.slow
def test_sigterm_saves_a_checkpoint_and_the_resumed_run_ends_exactly_like_an_uninterrupted_one(
    processed: Path,
) -> None:
    edit_params(processed, train={"max_epochs": 5, "patience": 5, "batch_size": 64, "steps_per_execution": 4})
    train.run(load_params())
    reference = {f: (processed / "models/train" / f).read_bytes() for f in ("model.safetensors", "history.csv")}
    checkpoints = processed / "checkpoints/train"

    preempted = train_process(processed)
    wait_for(checkpoints / "last.ckpt", preempted)
    preempted.send_signal(signal.SIGTERM)  # what Kubernetes, SLURM or a spot reclaim sends first
    out, _ = preempted.communicate(timeout=120)
    assert preempted.returncode == ExitCode.TRANSIENT and "preempted (SIGTERM)" in out and "it resumes" in out
    stopped_at = int(re.findall(r"preempted \(SIGTERM\) in epoch \d+ at step (\d+)", out)[0])
    saved = torch.load(checkpoints / "last.ckpt", map_location="cpu", weights_only=True)
    assert saved["global_step"] == stopped_at  # saved at the step it stopped, mid-epoch or at an epoch end

    resumed = finish(train_process(processed))

    assert "resumed at epoch" in resumed
    assert {f: (processed / "models/train" / f).read_bytes() for f in reference} == reference


def saves_of(path: Path, proc: subprocess.Popen[str], count: int) -> list[tuple[int, int]]:
    """(epoch, global_step) of the first `count` versions of `path` (each atomic save is a new inode)."""
    seen: dict[int, tuple[int, int]] = {}
    while len(seen) < count:
        wait_for(path, proc)
        with contextlib.suppress(FileNotFoundError):
            inode = os.stat(path).st_ino
            if inode not in seen:
                saved = torch.load(path, map_location="cpu", weights_only=True)
                seen[inode] = (saved["epoch"], saved["global_step"])
        time.sleep(0.005)
    return list(seen.values())


@pytest.mark.slow
def test_sigkill_mid_epoch_without_step_checkpoints_resumes_from_the_last_epoch_end_and_ends_identically(
    processed: Path,
) -> None:
    edit_params(processed, train={"max_epochs": 5, "patience": 5, "batch_size": 64, "checkpoint_every_n_steps": 0})
    train.run(load_params())
    reference = {f: (processed / "models/train" / f).read_bytes() for f in ("model.safetensors", "history.csv")}
    last = processed / "checkpoints/train/last.ckpt"

    killed = train_process(processed)
    saves = saves_of(last, killed, 2)
    os.killpg(killed.pid, signal.SIGKILL)  # mid-epoch 2 (or later): no handler runs
    killed.wait()
    resumed = finish(train_process(processed))

    steps_per_epoch = saves[0][1]
    assert saves[:2] == [(0, steps_per_epoch), (1, 2 * steps_per_epoch)]  # one save per epoch end
    start = run_info(processed)["resumed_from"]
    assert "resuming the interrupted run" in resumed and start["epoch"] >= 2
    assert start["global_step"] == start["epoch"] * steps_per_epoch  # an epoch end, the latest one
    assert {f: (processed / "models/train" / f).read_bytes() for f in reference} == reference


def test_a_truncated_last_ckpt_is_set_aside_with_one_warning_and_training_starts_over(
    processed: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from tabml.training.resume import fingerprint

    p = load_params().train
    checkpoints = processed / p.checkpoint_dir
    checkpoints.mkdir(parents=True)
    torch.save({"state_dict": {"w": torch.zeros(4096)}, "epoch": 2}, checkpoints / "last.ckpt")
    truncated = (checkpoints / "last.ckpt").read_bytes()[:5000]
    (checkpoints / "last.ckpt").write_bytes(truncated)
    record = {"fingerprint": fingerprint(processed / "data/processed", p), "wandb_run_id": "interrupted"}
    (checkpoints / "run.json").write_text(json.dumps(record))

    assert train.main([]) == 0
    assert train.main([]) == 0  # and again: nothing left that fails a rerun

    out = capsys.readouterr().out
    warnings = [line for line in out.splitlines() if "WARNING" in line]
    assert len(warnings) == 1 and "last.ckpt is unreadable" in warnings[0] and "set aside" in warnings[0], out
    assert [f.read_bytes() for f in (processed / "checkpoints/train.unreadable").iterdir()] == [truncated]
    assert run_info(processed)["resumed_from"] is None and not checkpoints.exists()


def test_a_checkpoint_of_other_params_is_not_resumed(processed: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from tabml.training.resume import fingerprint

    p = load_params().train
    checkpoints = processed / p.checkpoint_dir
    checkpoints.mkdir(parents=True)
    (checkpoints / "last.ckpt").write_bytes(b"not a checkpoint of this run")
    other = fingerprint(processed / "data/processed", p.model_copy(update={"lr": 0.5}))
    (checkpoints / "run.json").write_text(json.dumps({"fingerprint": other, "wandb_run_id": "old"}))
    edit_params(processed, train={"max_epochs": 1})

    train.run(load_params())

    assert "starting fresh" in capsys.readouterr().out
    assert run_info(processed)["resumed_from"] is None and run_info(processed)["wandb_run_id"] != "old"


def test_missing_processed_data_fails_with_the_path(processed: Path, capsys: pytest.CaptureFixture[str]) -> None:
    shutil.rmtree(processed / "data/processed")
    assert train.main([]) == ExitCode.BAD_INPUT
    assert "data/processed" in capsys.readouterr().err


def test_a_spawn_strategy_is_refused_with_the_supported_ones(
    processed: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    edit_params(processed, train={"strategy": "ddp_spawn"})
    assert train.main([]) == ExitCode.BAD_INPUT
    assert "train.strategy" in capsys.readouterr().err


TWO_NODE_LAUNCHER = {"kind": "torchrun", "args": ["--nnodes", "2", "--nproc_per_node", "1"]}


def test_the_launcher_command_comes_from_params_alone() -> None:
    from tabml.core.ops_params import LauncherParams
    from tabml.training.launcher import launch_command

    torchrun = LauncherParams.model_validate(TWO_NODE_LAUNCHER)
    assert launch_command(torchrun, "py", "tasks.train", ["--params", "p.yaml"]) == [
        *["py", "-m", "torch.distributed.run", "--nnodes", "2", "--nproc_per_node", "1"],
        *["-m", "tasks.train", "--params", "p.yaml"],
    ]
    srun = LauncherParams.model_validate({"kind": "srun", "args": ["--ntasks-per-node", "4"]})
    expected = ["srun", "--ntasks-per-node", "4", "py", "-m", "tasks.train"]
    assert launch_command(srun, "py", "tasks.train", []) == expected
    assert launch_command(LauncherParams(kind="none", args=[]), "py", "tasks.train", []) is None


def test_a_launcher_that_is_not_installed_fails_in_one_line(processed: Path) -> None:
    edit_params(processed, train={"launcher": {"kind": "srun", "args": []}})
    status = processed / "status.json"
    env = {**os.environ, "PATH": str(Path(sys.executable).parent), "TABML_STAGE_STATUS": str(status)}  # no SLURM
    proc = subprocess.run([sys.executable, "-m", "tasks.train"], cwd=processed, env=env, capture_output=True, text=True)
    assert proc.returncode == ExitCode.BAD_INPUT
    assert "[train] FAILED: train.launcher.kind is srun, but `srun` is not on PATH here" in proc.stderr
    assert json.loads(status.read_text())["exit_code"] == ExitCode.BAD_INPUT  # the flow will not retry it
    assert not (processed / "models").exists()


@pytest.mark.slow
def test_two_torchrun_nodes_in_two_clones_share_only_the_checkpoint_dir_and_the_remote(tmp_path: Path) -> None:
    from tests.conftest import dvc, make_workspace, sh
    from tests.workspace import commit_all

    node0 = make_workspace(tmp_path / "node0")
    dvc("repro", "preprocess", cwd=node0)
    commit_all(node0, "processed data")
    dvc("push", cwd=node0)
    node1 = tmp_path / "node1"
    sh("git", "clone", "-q", node0, node1, cwd=tmp_path)
    dvc("remote", "add", "-f", "-d", "local", str(tmp_path / "node0-remote"), cwd=node1)  # the same remote
    dvc("pull", "data/processed", cwd=node1)
    shared = tmp_path / "shared" / "checkpoints"
    for root in (node0, node1):  # the same params on every node: the launcher by params alone
        edit_params(
            root,
            train={"accelerator": "cpu", "devices": 1, "num_nodes": 2, "strategy": "ddp"}
            | {"checkpoint_dir": str(shared), "launcher": TWO_NODE_LAUNCHER},
        )
    cluster = {"PET_MASTER_ADDR": "127.0.0.1", "PET_MASTER_PORT": str(free_port())}  # what a cluster sets per node
    commands = {node0: [sys.executable, "-m", "dvc", "repro", "train"], node1: [sys.executable, "-m", "tasks.train"]}
    nodes = [
        subprocess.Popen(
            command,
            cwd=root,
            env={**os.environ, **cluster, "PET_NODE_RANK": str(rank)},
            text=True,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        for rank, (root, command) in enumerate(commands.items())
    ]
    outputs = [finish(node, timeout=600) for node in nodes]

    assert all("[train] launching: " in out and "torch.distributed.run --nnodes 2" in out for out in outputs)
    info = run_info(node0)
    assert info["world_size"] == 2
    assert info["val_rows_evaluated"] == len(load_split(node0 / "data/processed/val.npz"))
    assert not (node1 / "models" / "train").exists()  # node 1 writes nothing
    assert "train" in yaml.safe_load((node0 / "dvc.lock").read_text())["stages"]  # DVC recorded the launched stage
    assert not shared.exists()  # rank 0 cleared the shared checkpoints once the model was written
