"""`python -m flows.pipeline` as the README runs it, with no PREFECT_HOME set and Prefect's temporary server:
its state lands in the project's `.prefect/`, a failed run pickles nothing into result storage, and a secret
in the data path is refused before it can become a stored flow-run parameter."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tabml.core.errors import ExitCode
from tests.flows.test_run_safety import STAGE_PY, toy
from tests.tabml.orchestration.test_dvc_stages import build_toy_template

SECRET = "s3cr3t-pw-4711"


@pytest.fixture(scope="module")
def toy_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = build_toy_template(tmp_path_factory.mktemp("hygiene-template"))
    (root / "stage.py").write_text(STAGE_PY)
    return root


def run_flow(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}  # no PREFECT_HOME, no API URL
    env |= {"PREFECT_SERVER_ANALYTICS_ENABLED": "false", "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120"}
    command = [sys.executable, "-m", "flows.pipeline", "--root", str(root), *args]
    return subprocess.run(command, cwd=root, env=env, capture_output=True, text=True, timeout=600)


def files_under(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.is_file()] if folder.exists() else []


@pytest.mark.slow
def test_a_failed_run_keeps_its_state_in_the_project_and_pickles_nothing(toy_template: Path, tmp_path: Path) -> None:
    root = toy(toy_template, tmp_path / "ws", "data-error")
    done = run_flow(root)
    assert done.returncode == 1 and "3 rows have no target" in done.stderr, done.stderr[-3000:]
    home = root / ".prefect"
    assert any(p.suffix == ".db" for p in files_under(home)), files_under(home)  # the run is in the project
    # Prefect's local result storage: nothing, since the flow returns its Failed state instead of raising; whatever
    # is stored there must be JSON (before: a cloudpickle of the exception)
    for path in files_under(home / "storage"):
        assert not path.read_bytes().startswith(b"\x80"), f"{path} is a pickle"
        json.loads(path.read_text())


@pytest.mark.slow
def test_a_secret_in_the_data_path_is_refused_before_prefect_stores_it(toy_template: Path, tmp_path: Path) -> None:
    root = toy(toy_template, tmp_path / "ws", "sleep")
    done = run_flow(root, "--data-path", f"https://user:{SECRET}@example.com/table.csv")
    assert done.returncode == ExitCode.BAD_INPUT and "looks like a secret" in done.stderr, done.stderr[-2000:]
    assert SECRET not in done.stdout + done.stderr
    assert [p for p in files_under(root / ".prefect") if SECRET.encode() in p.read_bytes()] == []
    assert SECRET not in (root / "params.yaml").read_text()
