"""GTO tags made in a worker's clone reach the git remote after the run (tabml.orchestration.publish_run.push_tags),
and a tag the remote already holds on another commit (another worker took that version) is refused in one message,
with nothing pushed."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tabml.orchestration.publish_run import PublishError, push_tags


def git(root: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=root, check=True, capture_output=True, text=True).stdout.strip()


def clone_with_commit(origin: Path, path: Path, text: str) -> Path:
    git(path.parent, "clone", "-q", str(origin), str(path))
    git(path, "config", "user.name", "Worker")
    git(path, "config", "user.email", "worker@example.invalid")
    (path / "run.txt").write_text(text)
    git(path, "add", "run.txt")
    git(path, "commit", "-qm", text)
    return path


def test_new_gto_tags_are_pushed_and_a_clashing_one_is_refused(tmp_path: Path) -> None:
    origin = tmp_path / "origin.git"
    git(tmp_path, "init", "-q", "--bare", "-b", "main", str(origin))
    seed = clone_with_commit(origin, tmp_path / "seed", "seed")
    git(seed, "push", "-q", "origin", "HEAD:main")

    first = clone_with_commit(origin, tmp_path / "first", "first run")
    second = clone_with_commit(origin, tmp_path / "second", "second run")  # cloned before the first pushed
    git(first, "tag", "-a", "credit@v1.0.0", "-m", "registered")
    git(first, "tag", "-a", "credit#production#1", "-m", "assigned")
    git(first, "tag", "unrelated")  # not a GTO tag: stays local
    assert push_tags(first, "origin") == ["credit#production#1", "credit@v1.0.0"]
    remote_tags = git(first, "ls-remote", "--tags", "origin")
    assert "refs/tags/credit@v1.0.0" in remote_tags and "unrelated" not in remote_tags
    assert push_tags(first, "origin") == []  # already there: nothing to do

    git(second, "tag", "-a", "credit@v1.0.0", "-m", "registered elsewhere")
    git(second, "tag", "-a", "credit@v2.0.0", "-m", "registered")
    with pytest.raises(PublishError, match=r"GTO tag\(s\) credit@v1\.0\.0 already exist on 'origin' on another commit"):
        push_tags(second, "origin")
    assert "credit@v2.0.0" not in git(second, "ls-remote", "--tags", "origin")  # all or none
    tagged = git(first, "ls-remote", "origin", "refs/tags/credit@v1.0.0^{}").split()[0]
    assert tagged == git(first, "rev-parse", "HEAD")  # the first worker's tag is untouched
