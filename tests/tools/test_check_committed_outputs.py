"""The committed-outputs check on real git + DVC repos: a stale dvc.lock and a report that changes on every run fail."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.tabml.orchestration.test_dvc_stages import TOY_STAGES, build_toy_template, dvc, run, write_dvc_yaml
from tools.check_committed_outputs import main, rerun_changes, stale_entries

# A report with a clock time, beside a cached output (absent from a fresh clone, so the clone reruns the stage).
STAMP_PY = "import time, shutil; open('stamp.json', 'w').write(str(time.time_ns())); shutil.copy('raw.txt', 'copy.txt')"
STAMP = {"cmd": f'python -c "{STAMP_PY}"', "deps": ["raw.txt"]}


def commit(root: Path) -> None:
    run("git", "add", "-A", cwd=root)
    run("git", "-c", "user.name=t", "-c", "user.email=t@localhost", "commit", "-qm", "results", cwd=root)


@pytest.fixture
def committed(tmp_path: Path) -> Path:
    (tmp_path / "toy").mkdir()
    root = build_toy_template(tmp_path / "toy")
    dvc("repro", cwd=root)
    commit(root)
    return root


def test_a_committed_run_passes_and_a_fresh_clone_reproduces_it(committed: Path) -> None:
    assert stale_entries(committed) == []
    assert rerun_changes(committed) == []
    assert main(["--root", str(committed), "--rerun"]) == 0


def test_code_edited_after_the_lock_was_committed_is_a_stale_lock(committed: Path, capsys) -> None:  # noqa: ANN001
    (committed / "step.py").write_text((committed / "step.py").read_text() + "\n# edited\n")
    assert "first: deps step.py modified" in stale_entries(committed)
    assert main(["--root", str(committed)]) == 1
    assert "what to do: `make run`" in capsys.readouterr().err


def test_a_tracked_report_with_a_clock_time_in_it_fails_the_rerun(committed: Path) -> None:
    stamp = dict(STAMP, outs=["copy.txt", {"stamp.json": {"cache": False}}])
    write_dvc_yaml(committed, dict(TOY_STAGES, stamp=stamp))
    dvc("repro", cwd=committed)
    commit(committed)
    assert subprocess.run(["git", "status", "--porcelain"], cwd=committed, capture_output=True, text=True).stdout == ""
    assert "stamp.json: changed by a rerun" in rerun_changes(committed)


# A model-like output: cached by DVC (not in git), with a per-run value inside, so only dvc.lock's hash shows it.
RUN_ID_PY = "import secrets; open('model.txt', 'w').write(secrets.token_hex(4))"


def test_a_per_run_value_in_a_cached_output_fails_the_rerun_through_dvc_lock(committed: Path) -> None:
    model = {"cmd": f'python -c "{RUN_ID_PY}"', "deps": ["raw.txt"], "outs": ["model.txt"]}
    write_dvc_yaml(committed, dict(TOY_STAGES, model=model))
    dvc("repro", cwd=committed)
    commit(committed)
    assert rerun_changes(committed) == [
        "dvc.lock: changed by a rerun",
        "dvc.lock: a rerun writes other output hashes (a per-run value in an output?)",
    ]


@pytest.mark.slow
def test_a_fresh_clone_of_the_committed_pipeline_reruns_to_the_same_tracked_files(tmp_path: Path) -> None:
    """The real pipeline: run, commit, and a `dvc repro` in a fresh clone leaves `git status` clean, dvc.lock too."""
    from tests.conftest import make_workspace

    root = make_workspace(tmp_path / "ws")
    dvc("repro", cwd=root)
    dvc("repro", "--force", "--single-item", "validate", cwd=root)  # as committed: the reference already exists
    commit(root)
    assert stale_entries(root) == []
    assert rerun_changes(root) == []
