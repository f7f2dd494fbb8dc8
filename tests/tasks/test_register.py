"""The register stage on a real project: real preprocess/evaluate outputs, real registry, real git + GTO."""

import json
import logging
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tabml.core.errors import ExitCode, StageError
from tabml.core.params import Params, load_params
from tabml.registry import champion
from tabml.registry import store as registry
from tabml.registry.cli import main as registry_cli
from tabml.registry.index import RegistryError
from tabml.registry.record import read_record
from tasks import register
from tests.registry_project import build_project, evaluated, fit_model, git
from tests.synthetic_tables import regression_table

PACKAGE_CORE = {
    "model.safetensors",
    "model_config.json",
    "preprocess_state.json",
    "preprocess_report.json",
    "input_schema.json",
    "reference.json",  # the validation reference predict checks inputs against
    "metrics.json",
    "lineage.json",
    "gate_report.json",
    "slices.json",
    "details.json",
    "history.csv",
    "MANIFEST.json",
}
FIGURES = {"roc.png", "precision_recall.png", "confusion.png", "calibration.png", "slices.png"}


@pytest.fixture(scope="module")
def credit_base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("credit") / "project"
    build_project(root)
    return root


@pytest.fixture
def project(credit_base: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of the preprocessed, committed credit project; cwd is its root; W&B off for speed."""
    root = tmp_path / "project"
    shutil.copytree(credit_base, root, symlinks=True)
    monkeypatch.chdir(root)
    monkeypatch.setenv("WANDB_MODE", "disabled")
    return root


def params_of(root: Path, **register_changes: object) -> Params:
    if register_changes:
        raw = yaml.safe_load((root / "params.yaml").read_text())
        raw["register"].update(register_changes)
        (root / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    return load_params(root / "params.yaml")


def record(root: Path) -> dict:
    found = read_record(root / "reports/registration.json")  # with the per-run fields kept beside it
    assert found is not None
    return found


def stages(root: Path) -> list[tuple[int, str | None]]:
    return [(v.version, v.stage) for v in registry.read_index(root / "registry/credit").versions]


def gto_stage(repo: Path, stage: str) -> list[str]:
    from gto import api

    return [v.version for v in api.find_versions_in_stage(str(repo), "credit", stage) or []]


def test_first_model_is_production_with_package_lineage_gate_report_and_gto(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    params = evaluated(project, params_of(project))
    head = git(project, "rev-parse", "HEAD")
    outputs = register.run(params)
    line = capsys.readouterr().out.strip().splitlines()[-1]
    assert line.startswith("registered credit v1 (production): test auroc=0.8")

    rec = record(project)
    tracked = json.loads((project / "reports/registration.json").read_text())  # what git and dvc.lock see
    assert not set(tracked) & {"gto", "manifest_sha256", "wandb_registry"} and tracked["version"] == 1
    assert outputs == [params.register_.record, params.register_.gate_report, Path("registry/credit/versions/v1")]
    assert (rec["version"], rec["stage"], rec["promoted"], rec["champion_version"]) == (1, "production", True, None)
    assert rec["gto"]["tags"] == ["credit@v1.0.0", "credit#production#1"]
    assert rec["wandb_registry"] == {
        "linked": False,
        "reason": "W&B mode is disabled: the model registry needs online mode",
    }

    package = registry.load_package(params.register_.registry_dir, "credit")
    assert {p.name for p in package.path.iterdir()} == PACKAGE_CORE | FIGURES
    assert all((package.path / f).read_bytes().startswith(b"\x89PNG") for f in FIGURES)
    gate_report = json.loads((package.path / "gate_report.json").read_text())
    assert gate_report == {**json.loads((project / "reports/gate.json").read_text())}
    assert gate_report["stage"] == "production" and gate_report["champion"] is None
    names = [c["name"] for c in gate_report["checks"]]
    assert names == ["threshold auroc", "baseline majority", "baseline linear"]

    lineage = json.loads((package.path / "lineage.json").read_text())
    assert lineage["git"] == {"rev": head, "dirty": False}
    profile = lineage["data_profile"]
    assert profile["snapshot"]["path"] == "data/snapshot/accepted.parquet" and profile["snapshot"]["rows"] == 4454
    assert len(profile["snapshot"]["profile_sha256"]) == 64
    assert profile["reference_expectations"]["path"] == "references/credit/expectations.json"
    schema = json.loads((package.path / "input_schema.json").read_text())
    assert schema["target"] == "Status" and {"name": "Home", "kind": "categorical"} in schema["columns"]

    anchor = rec["gto"]["commit"]
    assert git(project, "rev-parse", f"{anchor}^") == head and git(project, "branch", "--contains", anchor) == ""
    assert git(project, "status", "--porcelain") == ""  # the user's index and work tree are untouched


def test_a_significantly_better_model_replaces_production(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    params = params_of(project)
    register.run(evaluated(project, params, features="weak"))
    register.run(evaluated(project, params, features="all"))
    line = capsys.readouterr().out.strip().splitlines()[-1]
    assert line.startswith("registered credit v2 (production)") and "vs production v1: +0." in line

    rec = record(project)
    assert (rec["version"], rec["stage"], rec["previous_production"], rec["champion_version"]) == (
        2,
        "production",
        1,
        1,
    )
    assert rec["gto"]["tags"] == ["credit@v2.0.0", "credit#production#2", "credit#production!#3"]
    report = json.loads((project / "reports/gate.json").read_text())
    ci = report["champion"]["interval"]
    assert ci["low"] > 0 and ci["samples"] == params.register_.champion.bootstrap_samples
    assert report["champion"]["challenger"] > report["champion"]["champion"]
    assert {c["name"] for c in report["checks"]} >= {"improvement", "significance", "slice Home=owner"}
    assert stages(project) == [(1, "archived"), (2, "production")]
    assert gto_stage(project, "production") == ["v2.0.0"]


def test_a_model_that_is_not_better_is_staged_and_can_be_promoted_by_hand(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    params = params_of(project)
    register.run(evaluated(project, params))
    register.run(evaluated(project, params, features="weak"))
    line = capsys.readouterr().out.strip().splitlines()[-1]
    assert line.startswith("registered credit v2 (staging)") and "not promoted: gain over production v1" in line
    assert "python -m tabml.registry promote 2" in line

    rec = record(project)
    assert (rec["stage"], rec["promoted"], rec["previous_production"]) == ("staging", False, None)
    assert any("not enough" in r for r in rec["held_back"])
    assert stages(project) == [(1, "production"), (2, "staging")]
    assert rec["gto"]["tags"] == ["credit@v2.0.0", "credit#staging#2"]
    assert registry.load_package(params.register_.registry_dir, "credit").entry.version == 1  # still serving v1

    assert registry_cli(["promote", "2"]) == 0  # a person overrides the gate
    out = capsys.readouterr().out
    assert "promoted credit v2 to production: v1 production -> archived, v2 staging -> production" in out
    assert stages(project) == [(1, "archived"), (2, "production")]
    assert gto_stage(project, "production") == ["v2.0.0"] and gto_stage(project, "staging") == []
    assert registry_cli(["rollback"]) == 0
    assert "v1 archived -> production" in capsys.readouterr().out
    assert gto_stage(project, "production") == ["v1.0.0"]


def test_the_same_predictions_again_are_not_significant(project: Path) -> None:
    params = params_of(project)
    register.run(evaluated(project, params))
    register.run(evaluated(project, params, seed=1))  # other hidden weights, same scores: gain 0, interval [0, 0]
    report = json.loads((project / "reports/gate.json").read_text())
    ci = report["champion"]["interval"]
    assert (ci["improvement"], ci["low"], ci["high"]) == (0.0, 0.0, 0.0)
    assert report["stage"] == "staging" and any("not significant" in r for r in report["held_back"])


def test_failing_a_threshold_or_a_baseline_registers_nothing(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    params = evaluated(project, params_of(project, thresholds={"binary": {"auroc": 0.99}}))
    assert register.main(["--params", "params.yaml"]) == ExitCode.BAD_INPUT
    err = capsys.readouterr().err
    assert "[register] FAILED" in err and "< minimum 0.99" in err and "register.thresholds" in err
    rec = record(project)
    assert rec["passed"] is False and rec["version"] is None and rec["gto"] is None
    assert json.loads((project / "reports/gate.json").read_text())["registered"] is False

    params = evaluated(project, params_of(project, baselines={"linear": 0.0}, thresholds={}), features="weak")
    with pytest.raises(StageError, match=r"baseline linear: auroc 0\.\d+ vs 0\.\d+ .*does not beat it"):
        register.run(params)
    assert not (project / "registry/credit/versions").exists()
    assert git(project, "tag", "--list") == ""


def test_a_refusal_names_the_tier_and_the_params_line_that_would_pass_it(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    evaluated(project, params_of(project, baselines={"linear": 0.0}, thresholds={}), features="weak")
    assert register.main(["--params", "params.yaml"]) == ExitCode.BAD_INPUT
    lines = capsys.readouterr().err.strip().splitlines()  # what failed and where, then what to do
    assert len(lines) == 2 and lines[0].startswith("[register] FAILED: ") and "registration tier" in lines[0]
    err = " ".join(lines)
    assert "Traceback" not in err and err.count("baseline linear") == 1
    assert "register.linear_fallback: true" in err and "register.baselines.linear: 0." in err
    tolerance = float(err.split("register.baselines.linear: ")[1].split()[0])
    params = params_of(project, baselines={"linear": tolerance})  # the printed value does let it through
    register.run(params)
    assert record(project)["version"] == 1


def test_linear_fallback_registers_a_linear_model_that_scores_like_its_metrics(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from tabml.evaluation.metrics import task_metrics
    from tabml.registry.package import load_scorer
    from tabml.registry.store import load_package

    params = evaluated(
        project, params_of(project, baselines={"majority": 0.0, "linear": 0.0}, linear_fallback=True), features="weak"
    )
    register.run(params)
    out = capsys.readouterr().out
    assert "registered the linear model instead" in out and "registered credit v1 (production)" in out
    package = load_package(project / "registry", "credit", stage="production")
    assert package.document("model_config.json")["kind"] == "linear"
    doc = package.document("metrics.json")
    assert doc["model"] == "linear" and doc["test"]["auroc"] > doc["network_test"]["auroc"]
    assert not {"slices.json", *FIGURES} & {p.name for p in package.path.iterdir()}  # the network's, left out
    gate_report = json.loads((project / "reports/gate.json").read_text())
    assert gate_report["checks"][0]["name"] == "linear fallback"
    # the package scores the test rows exactly as its recorded metrics say
    from tabml.data.processed import split_rows
    from tabml.data.snapshot import read_accepted

    frame = split_rows(
        params.preprocess.out_dir, read_accepted(params.preprocess.input), "test", params.preprocess.input
    )
    scorer = load_scorer(package)
    measured = task_metrics("binary", scorer.scores(frame), scorer.target(frame), scorer.threshold)
    assert measured["auroc"] == pytest.approx(doc["test"]["auroc"], abs=1e-6)


def test_a_tampered_production_package_stops_the_registration(project: Path) -> None:
    params = params_of(project)
    register.run(evaluated(project, params))
    weights = project / "registry/credit/versions/v1/model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0x01
    weights.write_bytes(bytes(data))
    with pytest.raises(RegistryError, match=r"model\.safetensors: sha256 does not match"):
        register.run(evaluated(project, params, features="weak"))
    assert stages(project) == [(1, "production")]


def test_a_stale_evaluation_is_refused(project: Path) -> None:
    params = evaluated(project, params_of(project), features="weak")
    fit_model(project, params, features="all")  # the model changed after evaluate ran
    with pytest.raises(StageError, match="the evaluation is stale"):
        register.run(params)


def test_production_moved_during_the_comparison_keeps_the_new_model_in_staging(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    params = params_of(project)
    register.run(evaluated(project, params, features="weak"))
    register.run(evaluated(project, params, features="weak", seed=1))  # v2: staging
    original = champion.champion_evidence

    def promote_meanwhile(*args, **kwargs):  # another process promotes v2 while this run compares with v1
        evidence = original(*args, **kwargs)
        registry.promote(params.register_.registry_dir, "credit", 2, lock_timeout=5)
        return evidence

    monkeypatch.setattr(champion, "champion_evidence", promote_meanwhile)
    register.run(evaluated(project, params, features="all"))
    assert stages(project) == [(1, "archived"), (2, "production"), (3, "staging")]
    gate_report = json.loads((project / "registry/credit/versions/v3/gate_report.json").read_text())
    assert gate_report["stage"] == "staging"
    assert gate_report["held_back"] == ["production changed to v2 while this model was compared with v1"]


def test_regression_lower_rmse_is_better(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WANDB_MODE", "disabled")
    root = tmp_path / "reg"
    data = {"name": "spend", "target": "spend", "task": "regression", "positive_class": None}
    build_project(root, regression_table(1200, seed=3), **data)
    monkeypatch.chdir(root)
    params = params_of(root, baselines={"majority": 0.0})  # numeric-only stand-ins trail a linear model here
    register.run(evaluated(root, params, features="weak"))
    register.run(evaluated(root, params, features="all"))
    rec = record(root)
    assert (rec["version"], rec["stage"], rec["primary_metric"]) == (2, "production", "rmse")
    report = json.loads((root / "reports/gate.json").read_text())["champion"]
    assert report["challenger"] < report["champion"] and report["interval"]["low"] > 0


def test_outside_git_the_registration_succeeds_without_gto(project: Path, caplog: pytest.LogCaptureFixture) -> None:
    shutil.rmtree(project / ".git")
    with caplog.at_level(logging.WARNING):
        register.run(evaluated(project, params_of(project)))
    rec = record(project)
    assert rec["passed"] and rec["version"] == 1 and rec["gto"] is None
    assert "GTO tags for credit skipped" in caplog.text
    lineage = json.loads((project / "registry/credit/versions/v1/lineage.json").read_text())
    assert lineage["git"] == {"rev": None, "dirty": None}


def test_missing_inputs_and_mismatched_metrics_are_actionable_errors(project: Path) -> None:
    params = evaluated(project, params_of(project))
    (project / "models/train/history.csv").unlink()
    with pytest.raises(StageError, match=r"models/train/history.csv: not found") as info:
        register.run(params)
    assert "dvc repro" in str(info.value)
    details = json.loads((project / "reports/evaluate/details.json").read_text())
    (project / "reports/evaluate/details.json").write_text(json.dumps({**details, "task": "regression"}))
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


def test_the_same_model_registered_again_is_recorded_against_its_version(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    params = evaluated(project, params_of(project))
    register.run(params)
    tags = git(project, "tag", "--list")
    register.run(evaluated(project, params))  # a --force rerun: byte-identical weights and preprocessing
    line = capsys.readouterr().out.strip().splitlines()[-1]
    assert line == (
        "registered credit v1 again (production): identical weights and preprocessing to v1: "
        "recorded against it, no new version"
    )
    assert stages(project) == [(1, "production")] and git(project, "tag", "--list") == tags
    rec = record(project)
    assert (rec["version"], rec["same_as"], rec["promoted"], rec["stage"]) == (1, 1, False, "production")
    assert len(registry.read_index(project / "registry/credit").versions[0].reruns) == 1


def test_inside_dvc_exp_run_nothing_is_registered_unless_asked(
    project: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DVC_EXP_BASELINE_REV", git(project, "rev-parse", "HEAD"))  # what `dvc exp run` sets
    monkeypatch.setenv("DVC_EXP_NAME", "bushy-oaks")
    register.run(evaluated(project, params_of(project)))
    assert capsys.readouterr().out.strip().splitlines()[-1].startswith("not registered credit: this is a `dvc exp run`")
    assert not (project / "registry").exists() and git(project, "tag", "--list") == ""
    rec = record(project)
    assert rec["version"] is None and "register.in_experiments" in rec["skipped"]
    assert json.loads((project / "reports/gate.json").read_text())["version"] is None

    register.run(evaluated(project, params_of(project, in_experiments=True)))
    assert stages(project) == [(1, "production")]


def test_after_losing_the_index_the_next_registration_still_compares_with_production(
    project: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    params = params_of(project)
    register.run(evaluated(project, params, features="weak"))
    (project / "registry/credit/index.json").unlink()
    with caplog.at_level(logging.WARNING):
        register.run(evaluated(project, params, features="all"))
    assert "index.json is missing; rebuilt 1 version(s)" in caplog.text
    line = capsys.readouterr().out.strip().splitlines()[-1]
    assert line.startswith("registered credit v2 (production)") and "vs production v1" in line
    assert stages(project) == [(1, "archived"), (2, "production")]


def test_a_gto_mirror_left_behind_is_reconciled_by_the_next_promote_and_by_repair(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    params = params_of(project)
    register.run(evaluated(project, params, features="weak"))
    register.run(evaluated(project, params, features="weak", seed=1))  # v2 staging
    registry.promote(params.register_.registry_dir, "credit", 2, lock_timeout=5)  # index only: tags left behind
    assert gto_stage(project, "production") == ["v1.0.0"]
    assert registry_cli(["verify"]) == ExitCode.BAD_INPUT
    assert "GTO: v1 holds production, the index says archived" in capsys.readouterr().err
    assert registry_cli(["promote", "2"]) == 0
    out = capsys.readouterr().out
    assert "promoted credit v2 to production: no change" in out and "GTO tags: credit#production#" in out
    assert gto_stage(project, "production") == ["v2.0.0"] and gto_stage(project, "staging") == []

    registry.rollback(params.register_.registry_dir, "credit", lock_timeout=5)  # again behind
    assert registry_cli(["repair"]) == 0
    assert "index.json agrees with events.jsonl (2 version(s))" in capsys.readouterr().out
    assert gto_stage(project, "production") == ["v1.0.0"]
    assert registry_cli(["verify"]) == 0
    assert capsys.readouterr().out.startswith("verified credit: 2 version(s), production v1")
