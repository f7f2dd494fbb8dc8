"""The whole DAG through `dvc repro` in real temp repos: example table, skips, reruns, other tables, exp, push."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from tabml.synthetic_tables import multiclass_table, regression_table
from tests.conftest import dvc, edit_params, make_workspace

pytestmark = pytest.mark.slow
STAGES = ["ingest", "validate", "preprocess", "train", "evaluate", "register"]


def ran_stages(output: str) -> list[str]:
    return re.findall(r"Running stage '([\w-]+)'", output)


def registry_versions(root: Path, name: str) -> list[dict]:
    index = json.loads((root / "registry" / name / "index.json").read_text())
    return index["versions"]


@pytest.fixture(scope="module")
def credit_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = make_workspace(tmp_path_factory.mktemp("credit") / "ws")
    out = dvc("repro", cwd=root)
    assert ran_stages(out.stdout) == STAGES, out.stdout
    return root


def test_example_table_runs_end_to_end_and_registers_version_1(credit_repo: Path) -> None:
    metrics = json.loads((credit_repo / "reports/metrics.json").read_text())
    assert metrics["task"] == "binary" and metrics["test"]["auroc"] > 0.75
    record = json.loads((credit_repo / "reports/registration.json").read_text())
    assert record["passed"] and record["version"] == 1
    assert [v["version"] for v in registry_versions(credit_repo, "credit")] == [1]
    lock = yaml.safe_load((credit_repo / "dvc.lock").read_text())
    assert sorted(lock["stages"]) == sorted(STAGES)


def test_second_repro_does_nothing(credit_repo: Path) -> None:
    out = dvc("repro", cwd=credit_repo)
    assert ran_stages(out.stdout) == []
    assert dvc("status", cwd=credit_repo).stdout.strip().endswith("Data and pipelines are up to date.")


def test_train_param_change_reruns_train_evaluate_register_only(credit_repo: Path) -> None:
    edit_params(credit_repo, train={"lr": 0.003})
    out = dvc("repro", cwd=credit_repo)
    assert ran_stages(out.stdout) == ["train", "evaluate", "register"]
    assert [v["version"] for v in registry_versions(credit_repo, "credit")] == [1, 2]


def test_push_to_the_local_remote_after_a_run(credit_repo: Path) -> None:
    out = dvc("push", cwd=credit_repo)
    remote = credit_repo.parent / "ws-remote"
    assert remote.exists() and any(p.is_file() for p in remote.rglob("*")), out.stdout
    assert dvc("status", "-c", cwd=credit_repo).returncode == 0


def test_dvc_exp_run_with_a_param_override_is_shown(credit_repo: Path) -> None:
    dvc("exp", "run", "-S", "train.dropout=0.2", "-n", "dropout-02", cwd=credit_repo)
    shown = json.loads(dvc("exp", "show", "--json", cwd=credit_repo).stdout)
    names = json.dumps(shown)
    assert "dropout-02" in names and "auroc" in names


@pytest.mark.parametrize(
    ("table", "data", "metric"),
    [
        (multiclass_table, {"target": "segment", "task": "multiclass", "positive_class": None}, "accuracy"),
        (regression_table, {"target": "spend", "task": "regression", "positive_class": None}, "rmse"),
    ],
)
def test_other_tables_run_by_editing_params_only(tmp_path: Path, table, data: dict, metric: str) -> None:
    root = make_workspace(tmp_path / "ws")
    table(1500).to_csv(root / "data/landing/other.csv", index=False)
    edit_params(root, data={"name": f"synthetic-{data['task']}", "path": "data/landing/other.csv", **data})
    out = dvc("repro", cwd=root)
    assert ran_stages(out.stdout) == STAGES
    metrics = json.loads((root / "reports/metrics.json").read_text())
    assert metrics["task"] == data["task"] and metric in metrics["test"]
    assert registry_versions(root, f"synthetic-{data['task']}")[0]["version"] == 1
