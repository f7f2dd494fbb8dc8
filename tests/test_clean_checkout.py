"""A run on unchanged code, data and params rewrites every tracked output byte for byte (README "A clean checkout
stays clean"): two fresh copies of the project, each run from scratch, give the same dvc.lock and the same
git-tracked files, and the per-run facts (W&B run id, durations, the GTO commit) stay out of both."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import yaml

from tabml.registry.record import read_record
from tabml.training.trained_model import read_run_info
from tests.conftest import dvc, make_workspace, sh

pytestmark = pytest.mark.slow


def tracked_files(root: Path) -> dict[str, bytes]:
    """Every file git would commit after the run, with its bytes (not .dvc/config: each copy has its own remote)."""
    sh("git", "add", "-A", cwd=root)
    names = [name for name in sh("git", "ls-files", cwd=root).stdout.split() if name != ".dvc/config"]
    return {name: (root / name).read_bytes() for name in names}


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    roots = []
    for name in ("first", "second"):
        root = make_workspace(tmp_path_factory.mktemp(name) / "ws")
        dvc("repro", cwd=root)
        roots.append(root)
    return roots[0], roots[1]


def test_two_runs_from_scratch_write_the_same_dvc_lock_and_tracked_files(two_runs: tuple[Path, Path]) -> None:
    first, second = two_runs
    lock = (first / "dvc.lock").read_text()
    assert "models/train" in lock and "reports/registration.json" in lock
    assert lock == (second / "dvc.lock").read_text()  # every out's hash, the model's weights included
    a, b = tracked_files(first), tracked_files(second)
    assert sorted(a) == sorted(b) and "reports/gate.json" in a
    assert [name for name in a if a[name] != b[name]] == []


def test_per_run_facts_stay_out_of_git_and_dvc_lock_and_readers_still_get_them(two_runs: tuple[Path, Path]) -> None:
    first, second = two_runs
    for root in two_runs:
        assert not [name for name in tracked_files(root) if name.endswith(".run.json")]
        assert (root / "models/train.run.json").is_file() and (root / "reports/registration.run.json").is_file()
    runs = [read_run_info(root / "models/train") for root in two_runs]
    assert runs[0]["fingerprint"] == runs[1]["fingerprint"] and float(runs[0]["seconds"]) > 0  # type: ignore[arg-type]
    assert "wandb_run_id" in runs[0] and "wandb_run_id" not in json.loads(
        (first / "models/train/run_info.json").read_text()
    )
    records = [read_record(root / "reports/registration.json") for root in two_runs]
    assert all(r is not None and r["version"] == 1 and r["gto"]["commit"] for r in records)
    outs = yaml.safe_load((second / "dvc.lock").read_text())["stages"]["register"]["outs"]
    assert {out["path"] for out in outs} == {"reports/registration.json", "reports/gate.json"}


def test_a_clone_of_a_run_registers_its_model_although_dvc_finds_register_unchanged(
    two_runs: tuple[Path, Path], tmp_path: Path
) -> None:
    first, _ = two_runs
    before = tracked_files(first)
    sh("git", "commit", "-qm", "a run", cwd=first)
    clone = tmp_path / "clone"
    sh("git", "clone", "-q", str(first), str(clone), cwd=tmp_path)
    assert not (clone / "registry").exists()  # what a new user's clone has: the record from git, no registry

    run = sh(sys.executable, "-m", "flows.pipeline", cwd=clone)

    output = run.stdout + run.stderr
    why = "registration.json records credit v1, which no register stage made in this workspace"
    assert f"register: runs even where DVC finds it unchanged: {why}" in output, output[-3000:]
    assert "[6/6] register: ran" in output and "registered credit v1 (production)" in output
    assert read_record(clone / "reports/registration.json")["gto"]["commit"]  # type: ignore[index]
    assert (clone / "registry/credit/versions/v1").is_dir()
    after = tracked_files(clone)
    # the same registration as the run's (the clone's validate reuses the committed reference, so its report says
    # reference_created: false: that is the clone's own first run, not this test's subject)
    assert [name for name in ("reports/registration.json", "reports/gate.json") if after[name] != before[name]] == []
    locks = [yaml.safe_load(files["dvc.lock"])["stages"]["register"] for files in (before, after)]
    assert locks[0] == locks[1]
