"""The real pipeline's flow on a real Prefect server (127.0.0.1): every dvc.yaml stage is a task run named after it,
in every flow run; the stages DVC skips end Completed with the state name "Skipped"."""

from __future__ import annotations

from pathlib import Path

import pytest

from flows.pipeline import training_pipeline
from tests.conftest import dvc, edit_params, make_workspace
from tests.flows.conftest import PrefectServer
from tests.flows.test_pipeline_dag import task_run_states

pytestmark = pytest.mark.slow
STAGES = ["ingest", "validate", "preprocess", "train", "evaluate", "register"]


def test_six_named_task_runs_per_flow_run_skipped_ones_in_state_skipped(
    use_prefect_api: PrefectServer, tmp_path: Path
) -> None:
    root = make_workspace(tmp_path / "ws")
    dvc("repro", cwd=root)
    cached = training_pipeline(root=str(root), return_state=True)
    assert task_run_states(str(cached.state_details.flow_run_id), len(STAGES)) == dict.fromkeys(
        STAGES, ("COMPLETED", "Skipped")
    )
    edit_params(root, train={"weight_decay": 0.001})
    changed = training_pipeline(root=str(root), return_state=True)
    states = task_run_states(str(changed.state_details.flow_run_id), len(STAGES))
    assert list(states) != [] and set(states) == set(STAGES)
    assert {name for name, (_, state) in states.items() if state == "Skipped"} == {"ingest", "validate", "preprocess"}
    assert {name for name, (kind, state) in states.items() if state == "Completed"} == {"train", "evaluate", "register"}
