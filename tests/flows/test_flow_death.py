"""kill -9 of the pipeline flow mid-train (a real `python -m flows.pipeline` with its temporary Prefect server):
nothing it started lives on, and the next run resumes training from the checkpoint."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from tabml.core.lifeline import FLOW_PID_ENV
from tabml.training.trained_model import read_run_info
from tests.conftest import dvc, edit_params, make_workspace, sh


def left_by(flow_pid: int, root: Path) -> list[str]:
    """Processes still carrying the flow's mark, or a `tasks.train` running in this workspace."""
    found = []
    for proc in psutil.process_iter():
        try:
            marked = proc.environ().get(FLOW_PID_ENV) == str(flow_pid)
            trainer = "tasks.train" in " ".join(proc.cmdline()) and Path(proc.cwd()) == root
            if (marked or trainer) and proc.status() != psutil.STATUS_ZOMBIE:
                found.append(f"{proc.pid} {' '.join(proc.cmdline())[:120]}")
        except (psutil.Error, OSError):
            continue
    return found


@pytest.mark.slow
def test_kill_9_of_the_flow_mid_train_leaves_no_orphan_and_the_next_run_resumes(tmp_path: Path) -> None:
    root = make_workspace(tmp_path / "ws").resolve()
    dvc("repro", "preprocess", cwd=root)
    edit_params(root, train={"max_epochs": 8, "patience": 8, "batch_size": 64})
    last = root / "checkpoints/train/last.ckpt"
    with (tmp_path / "flow.log").open("w") as log:
        flow = subprocess.Popen(
            [sys.executable, "-m", "flows.pipeline"], cwd=root, stdout=log, stderr=subprocess.STDOUT
        )
        try:
            deadline = time.monotonic() + 600
            while not last.exists():
                assert flow.poll() is None, (tmp_path / "flow.log").read_text()[-3000:]
                assert time.monotonic() < deadline, "training never checkpointed"
                time.sleep(0.05)
            os.kill(flow.pid, signal.SIGKILL)  # the flow alone: no hook, no atexit runs
            flow.wait()
            deadline = time.monotonic() + 120  # the stage's watch: SIGTERM (train saves), SIGKILL after 30 s
            while left := left_by(flow.pid, root):
                assert time.monotonic() < deadline, f"outlived the flow: {left}"
                time.sleep(0.2)
        finally:
            if flow.poll() is None:
                flow.kill()
                flow.wait()

    rerun = sh(sys.executable, "-m", "flows.pipeline", cwd=root)

    output = rerun.stdout + rerun.stderr
    info = read_run_info(root / "models/train")  # the resume point is a per-run fact (models/train.run.json)
    assert "resuming the interrupted run" in output and info["resumed_from"]["epoch"] >= 1, output[-3000:]
    assert "train: ran" in output and not last.parent.exists()
