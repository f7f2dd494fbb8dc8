import json
import logging
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tabml import registry
from tabml.cli import StageError
from tabml.params import load_params
from tasks import register

PROJECT_PARAMS = Path(__file__).resolve().parents[2] / "params.yaml"
METRICS = {
    "binary": {"auroc": 0.8312, "pr_auc": 0.61, "accuracy": 0.79, "f1": 0.55, "log_loss": 0.43},
    "multiclass": {"accuracy": 0.74, "balanced_accuracy": 0.7, "macro_f1": 0.69, "auroc": 0.9, "log_loss": 0.66},
    "regression": {"rmse": 4.25, "mae": 3.1, "r2": 0.52},
}
PACKAGE = {
    "model.safetensors",
    "model_config.json",
    "preprocess_state.json",
    "preprocess_report.json",
    "input_schema.json",
    "metrics.json",
    "lineage.json",
    "history.csv",
    "MANIFEST.json",
}


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True, text=True).stdout.strip()


def write_json(path: Path, document: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document))


def write_inputs(root: Path, task: str = "binary", metrics: dict | None = None, thresholds: dict | None = None) -> None:
    """Stage outputs as train, preprocess and evaluate would leave them, and a params.yaml for `task`."""
    raw = yaml.safe_load(PROJECT_PARAMS.read_text())
    raw["data"]["task"] = task
    if thresholds is not None:
        raw["register"]["thresholds"] = thresholds
    (root / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    params = load_params(root / "params.yaml")
    train, processed = root / params.train.out_dir, root / params.preprocess.out_dir
    train.mkdir(parents=True, exist_ok=True)
    (train / "model.safetensors").write_bytes(b"not really safetensors" * 10)
    write_json(train / "model_config.json", {"kind": "mlp", "hidden_sizes": [8]})
    (train / "history.csv").write_text("epoch,train_loss,val_loss\n0,0.7,0.69\n")
    write_json(train / "run_info.json", {"wandb_run_id": "abc123", "seed": 42})
    labels = {"binary": ["good", "bad"], "multiclass": ["a", "b", "c"], "regression": None}[task]
    schema = [{"name": "Age", "kind": "numeric"}, {"name": "Home", "kind": "categorical"}]
    write_json(processed / "preprocess_state.json", {"task": task, "labels": labels, "input_schema": schema})
    write_json(processed / "preprocess_report.json", {"rows": {"train": 70, "val": 15, "test": 15}})
    (processed / "train.npz").write_bytes(b"ignored")
    write_json(root / params.evaluate.metrics, {"task": task, "n_test": 15, "test": metrics or METRICS[task]})


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A committed git repo holding params.yaml, dvc.lock and the upstream outputs; cwd is its root."""
    root = tmp_path / "project"
    root.mkdir()
    git(root, "init", "-q", "-b", "main")
    git(root, "config", "user.name", "Register Test")
    git(root, "config", "user.email", "register@example.invalid")
    write_inputs(root)
    (root / "dvc.lock").write_text(
        yaml.safe_dump({"schema": "2.0", "stages": {"train": {"cmd": "python -m tasks.train"}}})
    )
    (root / ".gitignore").write_text("/registry/\n/models/\n/data/\n/reports/\n")
    git(root, "add", "-A")
    git(root, "commit", "-qm", "project")
    monkeypatch.chdir(root)
    return root


def test_register_publishes_production_v1_with_record_lineage_and_gto_tags(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    params = load_params(project / "params.yaml")
    head = git(project, "rev-parse", "HEAD")
    outputs = register.run(params)
    assert capsys.readouterr().out.strip() == "registered credit v1 (production): test auroc=0.831"

    record = json.loads((project / "reports/registration.json").read_text())
    assert outputs == [params.register_.record, Path("registry/credit/versions/v1")]
    assert record["passed"] is True and (record["version"], record["stage"]) == (1, "production")
    assert (record["primary_metric"], record["value"], record["previous_production"]) == ("auroc", 0.8312, None)
    assert record["registry_path"] == "registry/credit/versions/v1"
    assert record["gto"]["tags"] == ["credit@v1.0.0", "credit#production#1"]

    package = registry.load_package(params.register_.registry_dir, "credit")
    assert {p.name for p in package.path.iterdir()} == PACKAGE
    assert package.entry.manifest_sha256 == record["manifest_sha256"]
    schema = json.loads((package.path / "input_schema.json").read_text())
    assert schema["columns"][1] == {"name": "Home", "kind": "categorical"} and schema["labels"] == ["good", "bad"]
    lineage = json.loads((package.path / "lineage.json").read_text())
    assert lineage["model"] == {"name": "credit", "version": 1}
    assert lineage["git"] == {"rev": head, "dirty": False}
    assert lineage["run"]["wandb_run_id"] == "abc123" and lineage["run"]["seed"] == 42
    assert "train" in lineage["dvc_lock"]

    anchor = record["gto"]["commit"]
    assert git(project, "rev-parse", "credit@v1.0.0^{commit}") == anchor
    assert git(project, "rev-parse", f"{anchor}^") == head  # parent HEAD, on no branch
    assert git(project, "rev-parse", "HEAD") == head and git(project, "branch", "--contains", anchor) == ""
    assert git(project, "status", "--porcelain") == ""  # the user's index and work tree are untouched


def test_registering_twice_on_the_same_commit_gives_v1_v2_and_two_gto_versions(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    params = load_params(project / "params.yaml")
    register.run(params)
    (project / "params.yaml").write_text((project / "params.yaml").read_text() + "# tuned\n")  # uncommitted edit
    register.run(params)
    assert "registered credit v2 (production)" in capsys.readouterr().out

    record = json.loads((project / "reports/registration.json").read_text())
    assert (record["version"], record["previous_production"]) == (2, 1)
    tags = git(project, "tag", "--list").split()
    assert record["gto"]["tags"] == ["credit@v2.0.0", "credit#production#2", "credit#production!#3"]
    assert sorted(tags) == sorted(["credit@v1.0.0", "credit#production#1", *record["gto"]["tags"]])
    anchor1, anchor2 = (git(project, "rev-parse", f"credit@v{v}.0.0^{{commit}}") for v in (1, 2))
    assert anchor1 != anchor2
    assert git(project, "show", f"{anchor2}:params.yaml").endswith("# tuned")  # the params used, not HEAD's
    assert "# tuned" not in git(project, "show", f"{anchor1}:params.yaml")
    index = registry.read_index(project / "registry/credit")
    assert [(v.version, v.stage) for v in index.versions] == [(1, "archived"), (2, "production")]
    assert gto_production(project) == ["v2.0.0"]

    assert registry.main(["rollback"]) == 0  # the CLI mirrors the move in GTO
    out = capsys.readouterr().out
    assert "production v2 -> v1" in out and "GTO tags: credit#production#4, credit#production!#5" in out
    assert gto_production(project) == ["v1.0.0"]  # GTO's default (semver) view agrees with the registry


def gto_production(repo: Path) -> list[str]:
    from gto import api

    return [v.version for v in api.find_versions_in_stage(str(repo), "credit", "production") or []]


def test_a_failed_gate_registers_nothing_and_says_what_to_do(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_inputs(project, metrics={**METRICS["binary"], "auroc": 0.52})
    assert register.main(["--params", str(project / "params.yaml")]) == 1
    err = capsys.readouterr().err
    assert "[register] FAILED" in err and "auroc=0.52 < minimum 0.6" in err
    assert "improve the model" in err and "register.thresholds in params.yaml" in err
    record = json.loads((project / "reports/registration.json").read_text())
    assert record["passed"] is False and record["version"] is None and record["gto"] is None
    assert any("FAILED" in r for r in record["reasons"])
    assert not (project / "registry/credit/versions").exists()
    assert git(project, "tag", "--list") == ""


def test_a_threshold_on_an_unmeasured_metric_fails_naming_the_available_ones(project: Path) -> None:
    write_inputs(project, thresholds={"binary": {"brier": 0.2}})
    with pytest.raises(StageError, match=r"brier: not in metrics.json \(available: accuracy, auroc, f1"):
        register.run(load_params(project / "params.yaml"))


@pytest.mark.parametrize(("task", "line"), [("multiclass", "accuracy=0.740"), ("regression", "rmse=4.250")])
def test_other_tasks_register_with_their_primary_metric(
    project: Path, capsys: pytest.CaptureFixture[str], task: str, line: str
) -> None:
    write_inputs(project, task=task)
    register.run(load_params(project / "params.yaml"))
    assert capsys.readouterr().out.strip() == f"registered credit v1 (production): test {line}"


def test_outside_git_the_registration_succeeds_without_gto(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    write_inputs(tmp_path)
    monkeypatch.chdir(tmp_path)
    with caplog.at_level(logging.WARNING):
        register.run(load_params(tmp_path / "params.yaml"))
    record = json.loads((tmp_path / "reports/registration.json").read_text())
    assert record["passed"] and record["version"] == 1 and record["gto"] is None
    assert "GTO tags for credit v1 skipped" in caplog.text
    lineage = json.loads((tmp_path / "registry/credit/versions/v1/lineage.json").read_text())
    assert lineage["git"] == {"rev": None, "dirty": None} and lineage["dvc_lock"] is None


def test_gto_tags_off_creates_no_tags(project: Path) -> None:
    raw = yaml.safe_load((project / "params.yaml").read_text())
    raw["register"]["gto_tags"] = False
    (project / "params.yaml").write_text(yaml.safe_dump(raw))
    register.run(load_params(project / "params.yaml"))
    assert json.loads((project / "reports/registration.json").read_text())["gto"] is None
    assert git(project, "tag", "--list") == ""


def test_missing_inputs_and_mismatched_metrics_are_actionable_errors(project: Path) -> None:
    params = load_params(project / "params.yaml")
    (project / "models/train/history.csv").unlink()
    with pytest.raises(StageError, match=r"models/train/history.csv: not found") as info:
        register.run(params)
    assert "dvc repro" in str(info.value)
    write_json(project / "reports/metrics.json", {"task": "regression", "n_test": 1, "test": {"rmse": 1.0}})
    with pytest.raises(StageError, match="metrics are for task 'regression' but data.task is 'binary'"):
        register.run(params)
    (project / "reports/metrics.json").unlink()
    with pytest.raises(StageError, match="run the evaluate stage first"):
        register.run(params)
    assert not (project / "registry/credit/versions").exists()


def test_the_stage_module_does_not_import_the_training_or_orchestration_stack() -> None:
    code = "import sys, tasks.register; print(sorted({'torch', 'lightning', 'prefect'} & set(sys.modules)))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
