"""Optional mirror of the registry in GTO git tags: `<name>@v<N>.0.0`, `<name>#production#<k>` (and `...!#<k>`).

GTO allows one version per commit, and a pipeline re-run often registers again on the same HEAD, so each
registration tags its own anchor commit: on no branch, parent HEAD, tree = HEAD's tree plus the current
params.yaml and dvc.lock. GTO needs semver versions (so registry v3 is GTO v3.0.0) and no artifact
annotation in dvc.yaml. The version production replaces is unassigned (`#production!#<k>`), so GTO's
default view agrees with the JSON registry after a rollback. Any failure is logged and the mirror skipped:
the JSON registry is the record. Callers hold the registry lock around every mirror write.
"""

from __future__ import annotations

import logging
import os
import subprocess
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

log = logging.getLogger(__name__)


def gto_version(version: int) -> str:
    return f"v{version}.0.0"


def _git(repo: Path, *args: str, env: Mapping[str, str] | None = None) -> str:
    done = subprocess.run(["git", *args], cwd=repo, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"git {' '.join(args)}: {done.stderr.strip()}")
    return done.stdout.strip()


def repo_root(path: Path) -> Path:
    return Path(_git(path, "rev-parse", "--show-toplevel")).resolve()


def anchor_commit(repo: Path, files: Sequence[Path], message: str) -> str:
    """A commit on no branch: parent HEAD, HEAD's tree with `files` (those inside the repo) as they are now."""
    root = repo_root(repo)
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "GIT_INDEX_FILE": str(Path(tmp) / "index")}  # HEAD's index, not the user's
        _git(root, "read-tree", "HEAD", env=env)
        for file in (Path(repo, f).resolve() for f in files):
            if file.is_file() and file.is_relative_to(root):
                blob = _git(root, "hash-object", "-w", str(file))
                cacheinfo = f"100644,{blob},{file.relative_to(root).as_posix()}"
                _git(root, "update-index", "--add", "--cacheinfo", cacheinfo, env=env)
        tree = _git(root, "write-tree", env=env)
    return _git(root, "commit-tree", tree, "-p", "HEAD", "-m", message)


def _leave_this_second() -> None:
    # GTO orders a version's events by tag time in whole seconds; callers hold the registry lock, so
    # the next mirror write (any process) lands in a later second and the order stays unambiguous.
    time.sleep(1.01 - time.time() % 1)


def _unassign(root: str, name: str, previous: int | None, version: int) -> list[str]:
    """Take production away from the version it replaced, as the JSON registry archives it."""
    if previous is None or previous == version:
        return []
    from gto import api

    try:
        return [str(api.unassign(root, name, version=gto_version(previous), stage="production").ref)]
    except Exception as exc:  # e.g. v<previous> was registered while gto_tags was off
        log.warning("GTO: could not unassign production from %s v%d: %s", name, previous, exc)
        return []


def mirror_registration(
    repo: Path, name: str, version: int, files: Sequence[Path], previous: int | None = None
) -> dict[str, object] | None:
    """Tag an anchor commit as GTO version v<N>.0.0 in production; None (and a warning) if anything fails."""
    try:
        from gto import api

        root = str(repo_root(repo))
        commit = anchor_commit(repo, files, f"registry: {name} v{version}\n\nAnchor commit for GTO tags.")
        registered = api.register(root, name, commit, version=gto_version(version))
        assigned = api.assign(root, name, "production", version=gto_version(version))
    except Exception as exc:  # the mirror must never fail a registration
        log.warning("GTO tags for %s v%d skipped: %s", name, version, exc)
        return None
    tags = [str(registered.ref), str(assigned.ref), *_unassign(root, name, previous, version)]
    _leave_this_second()
    return {"commit": commit, "tags": tags}


def mirror_assignment(repo: Path, name: str, version: int, previous: int | None) -> list[str] | None:
    """Move GTO's production from `previous` to `version` (promote, rollback); the tags, or None."""
    try:
        from gto import api

        root = str(repo_root(repo))
        # force: GTO refuses to assign a stage a version held before, which is what a rollback does
        assigned = api.assign(root, name, "production", version=gto_version(version), force=True)
    except Exception as exc:
        log.warning("GTO production tag for %s v%d skipped: %s", name, version, exc)
        return None
    tags = [str(assigned.ref), *_unassign(root, name, previous, version)]
    _leave_this_second()
    return tags
