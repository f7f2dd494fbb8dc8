"""Publishing a run in a real git + DVC repo: push to a local remote, dvc.lock on a run branch, checkout untouched."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml

from tabml.orchestration.dvc_stages import reproduce_stage
from tabml.orchestration.publish_run import Published, PublishError, files_to_commit, publish_run, run_branch_name

RUN_ID = "0b0e7c9a-1111-2222-3333-444455556666"
STARTED = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)
STAGES = {
    "make": {"cmd": "python make.py", "deps": ["make.py", "source.txt"], "outs": ["data.txt"]},
    "report": {
        "cmd": "python report.py",
        "deps": ["report.py", "data.txt"],
        "outs": [{"report.json": {"cache": False}}],  # git-tracked, like reports/*.json
    },
}


def git(root: Path, *args: str) -> str:
    proc = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


def run_dvc(root: Path, *args: str) -> None:
    proc = subprocess.run([sys.executable, "-m", "dvc", *args], cwd=root, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A committed git + DVC repo with a local remote; the pipeline has not run yet."""
    root = tmp_path / "repo"
    root.mkdir()
    git(root, "init", "-q", "-b", "main")
    run_dvc(root, "init", "-q")
    run_dvc(root, "remote", "add", "-d", "local", str(tmp_path / "remote"))
    (root / "source.txt").write_text("rows\n")
    (root / "make.py").write_text(
        "from pathlib import Path\nPath('data.txt').write_text(Path('source.txt').read_text() * 2)\n"
    )
    (root / "report.py").write_text("import json\nopen('report.json', 'w').write(json.dumps({'rows': 2}))\n")
    (root / "params.yaml").write_text("orchestration: {}\n")
    (root / "dvc.yaml").write_text(yaml.safe_dump({"stages": STAGES}, sort_keys=False))
    git(root, "add", "-A")
    git(root, "commit", "-qm", "pipeline")
    return root


def run_pipeline(root: Path) -> None:
    for stage in STAGES:
        reproduce_stage(root, stage)


def publish(root: Path, run_id: str = RUN_ID) -> Published:
    return publish_run(root, flow_run_id=run_id, started=STARTED, remote=None, branch_prefix="runs/", git_remote=None)


def test_branch_name_is_time_then_the_short_run_id() -> None:
    assert run_branch_name("runs/", STARTED, RUN_ID) == "runs/20250102-030405-0b0e7c9a"
    assert run_branch_name("scheduled/", STARTED, "") == "scheduled/20250102-030405-manual"


def test_run_is_pushed_and_committed_on_a_run_branch_leaving_the_checkout_alone(repo: Path, tmp_path: Path) -> None:
    run_pipeline(repo)
    (repo / "notes.txt").write_text("my own work in progress\n")
    git(repo, "add", "notes.txt")  # staged by the user: must stay staged, and only in the user's index
    head, status = git(repo, "rev-parse", "HEAD"), git(repo, "status", "--porcelain")

    published = publish(repo)

    assert published.branch == "runs/20250102-030405-0b0e7c9a" and published.new_branch
    assert published.pushed_files >= 1 and any((tmp_path / "remote").rglob("*"))
    assert git(repo, "show", f"{published.branch}:dvc.lock") == (repo / "dvc.lock").read_text().strip()
    assert git(repo, "show", f"{published.branch}:report.json") == (repo / "report.json").read_text()
    tree = git(repo, "ls-tree", "-r", "--name-only", published.branch).splitlines()
    assert "data.txt" not in tree, "a DVC-cached output went into git"
    assert git(repo, "rev-parse", f"{published.branch}^") == head
    assert git(repo, "rev-parse", "HEAD") == head and git(repo, "branch", "--show-current") == "main"
    assert git(repo, "status", "--porcelain") == status
    assert "cache" not in git(repo, "ls-tree", "-r", "--name-only", published.branch)  # .dvc/cache stays out


def test_an_unchanged_rerun_reuses_the_branch_and_a_clean_workspace_makes_none(repo: Path) -> None:
    run_pipeline(repo)
    first = publish(repo)
    again = publish(repo, run_id="ffffffff-0000-0000-0000-000000000000")
    assert (again.branch, again.commit, again.new_branch) == (first.branch, first.commit, False)
    assert git(repo, "branch", "--list", "runs/*").count("runs/") == 1

    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "the user commits the run")
    assert publish(repo, run_id="eeeeeeee").branch is None


def test_files_to_commit_are_lock_params_uncached_outputs_and_tracked_changes(repo: Path) -> None:
    run_pipeline(repo)
    (repo / "make.py").write_text((repo / "make.py").read_text() + "# edited\n")
    (repo / "scratch.txt").write_text("untracked, not a pipeline output\n")
    assert files_to_commit(repo) == [".gitignore", "dvc.lock", "make.py", "params.yaml", "report.json"]


def test_a_failed_push_makes_no_branch_and_may_be_retried(repo: Path, tmp_path: Path) -> None:
    run_pipeline(repo)
    blocker = tmp_path / "remote-is-a-file"
    blocker.write_text("")
    run_dvc(repo, "remote", "modify", "local", "url", str(blocker / "store"))
    with pytest.raises(PublishError, match=r"dvc push to the default remote failed") as caught:
        publish(repo)
    assert caught.value.retryable and "no run branch was made" in str(caught.value)
    assert git(repo, "branch", "--list", "runs/*") == ""


def test_the_run_branch_goes_to_the_git_remote_when_one_is_named(repo: Path, tmp_path: Path) -> None:
    bare = tmp_path / "origin.git"
    git(tmp_path, "init", "-q", "--bare", str(bare))
    git(repo, "remote", "add", "origin", str(bare))
    run_pipeline(repo)
    published = publish_run(
        repo, flow_run_id=RUN_ID, started=STARTED, remote=None, branch_prefix="runs/", git_remote="origin"
    )
    assert published.branch is not None
    assert git(bare, "rev-parse", f"refs/heads/{published.branch}") == published.commit
    assert not git(bare, "for-each-ref", "refs/heads/main")  # only the run branch, never main


def test_a_failed_git_push_says_so_in_one_line_and_keeps_the_branch_here(repo: Path, tmp_path: Path) -> None:
    git(repo, "remote", "add", "origin", "https://user:hunter2@127.0.0.1:1/nowhere.git")
    run_pipeline(repo)
    with pytest.raises(PublishError) as failed:
        publish_run(repo, flow_run_id=RUN_ID, started=STARTED, remote=None, branch_prefix="runs/", git_remote="origin")
    message = str(failed.value)
    assert "git push of run branch runs/20250102-030405-0b0e7c9a to 'origin' failed" in message
    assert "hunter2" not in message and failed.value.retryable
    assert git(repo, "for-each-ref", "--format=%(refname:short)", "refs/heads/runs/") == "runs/20250102-030405-0b0e7c9a"
