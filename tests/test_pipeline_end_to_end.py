"""The whole DAG through `dvc repro` in real temp repos: example table, skips, reruns, other tables, exp, push."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import dvc, edit_params, make_workspace, sh
from tests.synthetic_tables import messy_table, multiclass_table, regression_table

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
    details = json.loads((credit_repo / "reports/evaluate/details.json").read_text())  # task, n_test, baselines
    assert details["task"] == "binary" and metrics["test"]["auroc"] > 0.75
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


def test_editing_code_deep_under_a_stage_reruns_that_stage_and_what_follows(credit_repo: Path) -> None:
    """Code deps follow the packages a stage imports: an edit anywhere under them is seen (tests/test_stage_deps)."""
    history = credit_repo / "tabml/training/history.py"  # imported by train only through tabml.training
    history.write_text(history.read_text() + "\n# an edit deep under the train stage\n")
    out = dvc("repro", cwd=credit_repo)
    assert ran_stages(out.stdout) == ["train", "evaluate", "register"]
    target = credit_repo / "tabml/data/target.py"  # how targets are encoded: preprocess and all that follows
    original = target.read_text()
    target.write_text(original + "\n# an edit to target encoding\n")
    changed = json.loads(dvc("status", "--json", cwd=credit_repo).stdout)
    target.write_text(original)
    assert {"preprocess", "train", "evaluate", "register"} <= set(changed)
    assert all("tabml/data" in json.dumps(changed[stage]) for stage in changed)


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
    details = json.loads((root / "reports/evaluate/details.json").read_text())
    assert details["task"] == data["task"] and metric in metrics["test"]
    assert registry_versions(root, f"synthetic-{data['task']}")[0]["version"] == 1


def run_flow(root: Path) -> str:
    proc = sh(sys.executable, "-m", "flows.pipeline", cwd=root)
    return proc.stdout + proc.stderr


def flow_statuses(output: str) -> dict[str, str]:
    return dict(re.findall(r"\[\d/\d\] ([\w-]+): (ran|skipped)", output))


def test_flow_skips_what_dvc_repro_ran_and_vice_versa(credit_repo: Path) -> None:
    dvc("repro", cwd=credit_repo)
    assert flow_statuses(run_flow(credit_repo)) == dict.fromkeys(STAGES, "skipped")
    edit_params(credit_repo, train={"weight_decay": 0.001})
    statuses = flow_statuses(run_flow(credit_repo))
    assert [s for s in STAGES if statuses[s] == "ran"] == ["train", "evaluate", "register"]
    assert ran_stages(dvc("repro", cwd=credit_repo).stdout) == []


def test_switching_tables_keeps_each_reference_and_model_line(tmp_path: Path) -> None:
    root = make_workspace(tmp_path / "ws")
    dvc("repro", cwd=root)
    credit_v1 = registry_versions(root, "credit")
    messy_table(3000).to_csv(root / "data/landing/churn.csv", index=False)
    before = yaml.safe_load((root / "params.yaml").read_text())
    credit, credit_train = before["data"], before["train"]
    edit_params(
        root,
        data={
            "name": "churn",
            "path": "data/landing/churn.csv",
            "target": "churned",
            "positive_class": "Yes",
            "id_column": "customer_id",
        },
        train={"max_epochs": 15, "patience": 4},  # 3% positives: the default network needs more than 4 epochs
    )
    out = dvc("repro", cwd=root)
    assert ran_stages(out.stdout) == STAGES, out.stdout
    report = json.loads((root / "data/processed/preprocess_report.json").read_text())
    kinds = {c["name"]: c["kind"] for c in report["columns"]}
    assert kinds["area_code"] == kinds["zip"] == kinds["merchant"] == "categorical"
    assert kinds["intl_plan"] == "boolean" and kinds["signup_date"] == "datetime" and kinds["balance"] == "numeric"
    assert kinds["source_system"] == kinds["legacy_flag"] == kinds["notes"] == kinds["customer_id"] == "drop"
    assert report["rows_dropped_missing_target"] > 0 and report["categorical_levels"]["merchant"] <= 64
    metrics = json.loads((root / "reports/metrics.json").read_text())
    assert {"auroc", "pr_auc", "balanced_accuracy"} <= set(metrics["test"]) and 0 < metrics["threshold"] < 1
    assert registry_versions(root, "credit") == credit_v1  # untouched by the other table
    edit_params(root, data=credit, train=credit_train)
    dvc("repro", cwd=root)
    assert (root / "references/credit/expectations.json").exists()
    assert (root / "references/churn/expectations.json").exists()
    churn_index = json.loads((root / "registry/churn/index.json").read_text())
    credit_index = json.loads((root / "registry/credit/index.json").read_text())
    assert [v["stage"] for v in churn_index["versions"]] == ["production"]
    # the same credit model again (deterministic training): recorded against v1, no new version (docs/registry.md)
    assert [v["stage"] for v in credit_index["versions"]] == ["production"]
    assert len(credit_index["versions"][0]["reruns"]) == 1


def test_the_venvs_dvc_runs_the_stages_with_the_venvs_python_without_activation(tmp_path: Path) -> None:
    """`.venv/bin/dvc repro` with a PATH that has no venv on it (tools/venv_path.pth, installed by make setup)."""
    import os
    import sysconfig

    hook = Path(sysconfig.get_paths()["purelib"]) / "tabml_venv_path.pth"
    if not hook.is_file():
        pytest.skip("this environment was not set up by `make setup` (no tabml_venv_path.pth)")
    root = make_workspace(tmp_path / "ws")
    dvc_command = Path(sys.executable).parent / "dvc"
    env = {k: v for k, v in os.environ.items() if k != "PATH"} | {"PATH": "/usr/bin:/bin"}
    import subprocess

    done = subprocess.run([str(dvc_command), "repro", "ingest"], cwd=root, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Running stage 'ingest'" in done.stdout
