"""Shared fixtures: telemetry off, and real DVC workspaces built in temp dirs from this checkout."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.workspace import copy_pipeline, init_repo

PROJECT = Path(__file__).resolve().parents[1]
FAST_TRAIN = {"max_epochs": 4, "patience": 2, "hidden_sizes": [32, 16], "batch_size": 128}
# A 4-epoch network need not beat a logistic regression; it must still beat the majority class.
FAST_BASELINES = {"majority": 0.0}


@pytest.fixture(autouse=True)
def no_flow_marks_left(monkeypatch: pytest.MonkeyPatch) -> None:
    """A flow entry point called in the test process marks that process as a flow (tabml.orchestration.reaper);
    the mark ends with the test, so later tests' stages are not tied to a flow that is not theirs."""
    from tabml.core.lifeline import FLOW_PID_ENV, STAGE_GROUP_ENV

    for name in (FLOW_PID_ENV, STAGE_GROUP_ENV):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(autouse=True, scope="session")
def quiet_environment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """No telemetry, W&B offline, DVC and Prefect state in temp dirs, the venv's `python` first on PATH."""
    state = tmp_path_factory.mktemp("state")
    saved = dict(os.environ)
    os.environ.update(
        {
            "DVC_NO_ANALYTICS": "1",
            "DO_NOT_TRACK": "1",
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "GX_ANALYTICS_ENABLED": "false",
            # a loaded 2-core CI machine can take longer than Prefect's 20 s default to start a temporary server
            "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120",
            "WANDB_MODE": "offline",
            "WANDB_SILENT": "true",
            "WANDB_ERROR_REPORTING": "false",
            "DVC_SITE_CACHE_DIR": str(state / "dvc-site-cache"),
            "PREFECT_HOME": str(state / "prefect"),
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
            "GIT_AUTHOR_NAME": "tabml-tests",
            "GIT_AUTHOR_EMAIL": "tests@example.invalid",
            "GIT_COMMITTER_NAME": "tabml-tests",
            "GIT_COMMITTER_EMAIL": "tests@example.invalid",
        }
    )
    yield
    os.environ.clear()
    os.environ.update(saved)


def sh(*args: str | Path, cwd: Path, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run a command, returning its output; on failure show what it printed."""
    proc = subprocess.run([str(a) for a in args], cwd=cwd, capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(map(str, args))} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


def dvc(*args: str, cwd: Path, check: bool = True) -> subprocess.CompletedProcess[str]:
    return sh(sys.executable, "-m", "dvc", *args, cwd=cwd, check=check)


def edit_params(root: Path, **sections: dict[str, Any]) -> dict[str, Any]:
    """Update params.yaml in place, section by section (`data={"target": "y"}`)."""
    path = root / "params.yaml"
    params = yaml.safe_load(path.read_text())
    for section, values in sections.items():
        params[section].update(values)
    path.write_text(yaml.safe_dump(params, sort_keys=False))
    return params


def make_workspace(root: Path, fast: bool = True) -> Path:
    """A fresh git + DVC repo holding the pipeline code, params and example data, with a local remote."""
    copy_pipeline(PROJECT, root)
    if fast:
        edit_params(root, train=FAST_TRAIN, register={"baselines": FAST_BASELINES})
    return init_repo(root, root.parent / f"{root.name}-remote")


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    return make_workspace(tmp_path / "ws")
