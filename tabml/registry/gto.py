"""Optional mirror of the registry in GTO git tags: `<name>@v<N>.0.0`, `<name>#<stage>#<k>` (and `...!#<k>`).

GTO allows one version per commit, and a pipeline re-run often registers again on the same HEAD, so each
registration tags its own anchor commit: on no branch, parent HEAD, tree = HEAD's tree plus the current
params.yaml and dvc.lock (`python -m tabml.registry reproduce` rebuilds a version from exactly that commit). GTO needs
semver versions (so registry v3 is GTO v3.0.0) and no artifact annotation in dvc.yaml. Every stage change of
the JSON registry is replayed: the new stage assigned, the old one unassigned (`#production!#<k>`), so GTO's
default view agrees with the registry after a promotion or a rollback. Any failure is logged and the mirror
skipped: the JSON registry is the record. Callers hold the registry lock around every mirror write.
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


GTO_STAGES = ("staging", "production")  # `archived` is no GTO stage: it is having none
Move = tuple[int, str | None, str | None]  # (version, old stage, new stage), see tabml.registry.stage_moves


def _replay(root: str, name: str, moves: Sequence[Move]) -> list[str]:
    """Assign every new stage, then unassign every old one; returns the tags written."""
    from gto import api

    tags = []
    for version, _, new in moves:
        if new in GTO_STAGES:
            # force: GTO refuses to assign a stage a version held before, which is what a rollback does
            tags.append(str(api.assign(root, name, new, version=gto_version(version), force=True).ref))
    for version, old, _ in moves:
        if old in GTO_STAGES:
            try:
                tags.append(str(api.unassign(root, name, version=gto_version(version), stage=old).ref))
            except Exception as exc:  # e.g. the version was registered while gto_tags was off
                log.warning("GTO: could not unassign %s from %s v%d: %s", old, name, version, exc)
    return tags


def anchor_of(repo: Path, name: str, version: int) -> str | None:
    """The commit GTO's `<name>@v<N>.0.0` tag points at, or None."""
    try:
        return _git(repo, "rev-parse", "--verify", "--quiet", f"refs/tags/{name}@{gto_version(version)}^{{commit}}")
    except RuntimeError:
        return None


def mirror_registration(
    repo: Path, name: str, version: int, files: Sequence[Path], moves: Sequence[Move] = ()
) -> dict[str, object] | None:
    """Tag an anchor commit as GTO version v<N>.0.0 and replay the stage moves; None (and a warning) on failure."""
    try:
        from gto import api

        root = str(repo_root(repo))
        commit = anchor_commit(repo, files, f"registry: {name} v{version}\n\nAnchor commit for GTO tags.")
        registered = api.register(root, name, commit, version=gto_version(version))
        tags = [str(registered.ref), *_replay(root, name, moves)]
    except Exception as exc:  # the mirror must never fail a registration
        log.warning("GTO tags for %s v%d skipped: %s", name, version, exc)
        return None
    _leave_this_second()
    return {"commit": commit, "tags": tags}


def mirror_moves(repo: Path, name: str, moves: Sequence[Move]) -> list[str] | None:
    """Replay stage moves (promote, rollback) as GTO tags; the tags, or None (and a warning) on failure."""
    try:
        tags = _replay(str(repo_root(repo)), name, moves)
    except Exception as exc:
        log.warning("GTO stage tags for %s skipped: %s", name, exc)
        return None
    _leave_this_second()
    return tags
