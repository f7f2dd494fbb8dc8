"""Optional mirror of the registry in GTO git tags: `<name>@v<N>.0.0`, `<name>#<stage>#<k>` (and `...!#<k>`).

GTO allows one version per commit, and a pipeline re-run often registers again on the same HEAD, so each
registration tags its own anchor commit: on no branch, parent HEAD, tree = HEAD's tree plus the current
params.yaml and dvc.lock (`python -m tabml.registry reproduce` rebuilds a version from exactly that commit). GTO needs
semver versions (so registry v3 is GTO v3.0.0) and no artifact annotation in dvc.yaml. Every stage change of
the JSON registry is mirrored by reconciling: missing versions registered, the new stage assigned, the old
one unassigned (`#production!#<k>`), so GTO's default view agrees with the registry. Any failure is logged
and the mirror skipped: the JSON registry is the record, and the next write (or `registry repair`)
reconciles the tags with it. Callers hold the registry lock around every mirror write.
"""

from __future__ import annotations

import logging
import os
import subprocess
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from tabml.registry.index import RegistryIndex
from tabml.registry.store import pause_at

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


def gto_stages(root: str, name: str) -> dict[int, set[str]]:
    """Registered GTO versions of `name` (semver v<N>.0.0 only) and the stages active on each."""
    from gto import api

    try:
        shown = api.show(root, name, assignments_per_version=-1, versions_per_stage=-1)
    except Exception as exc:  # no such artifact yet
        log.debug("GTO show %s: %s", name, exc)
        return {}
    found: dict[int, set[str]] = {}
    for version in shown:
        text = str(version.get("version", ""))
        number = text.removeprefix("v").removesuffix(".0.0")
        if number.isdigit() and text == gto_version(int(number)) and version.get("registrations"):
            found[int(number)] = {s["stage"] for s in version.get("stages", []) if s.get("is_active")}
    return found


def _sync(repo: Path, name: str, wanted: Mapping[int, str | None], files: Sequence[Path]) -> list[str]:
    """Register missing versions, assign every wanted stage, then unassign every other one; the tags written."""
    from gto import api

    root = str(repo_root(repo))
    actual, tags = gto_stages(root, name), []
    for version in sorted(set(wanted) - set(actual)):
        # each version tags its own anchor commit: GTO refuses two versions on one commit
        commit = anchor_commit(repo, files, f"registry: {name} v{version}\n\nAnchor commit for GTO tags.")
        tags.append(str(api.register(root, name, commit, version=gto_version(version)).ref))
        actual[version] = set()
    for version, stage in sorted(wanted.items()):
        if stage in GTO_STAGES and stage not in actual[version]:
            # force: GTO refuses to assign a stage a version held before, which is what a rollback does
            tags.append(str(api.assign(root, name, stage, version=gto_version(version), force=True).ref))
            pause_at("assigned")
    for version, held in sorted(actual.items()):
        for stage in sorted(held - {wanted.get(version)}):
            tags.append(str(api.unassign(root, name, version=gto_version(version), stage=stage).ref))
    return tags


def reconcile(repo: Path, name: str, index: RegistryIndex, files: Sequence[Path]) -> dict[str, object] | None:
    """Make GTO's tags say what the index says (missing versions, stages assigned or left behind).

    Runs after every registry write and in `registry repair`, so a mirror left behind by a crash heals on the
    next write. {"tags": [...], "commit": anchor of the newest version}, or None (and a warning) on failure."""
    try:
        tags = _sync(repo, name, {v.version: v.stage for v in index.versions}, files)
        newest = index.versions[-1].version if index.versions else None
        commit = anchor_of(repo, name, newest) if newest is not None else None
    except Exception as exc:  # the mirror must never fail a registration: the JSON registry is the record
        log.warning("GTO tags for %s skipped: %s", name, exc)
        return None
    if tags:
        _leave_this_second()
    return {"commit": commit, "tags": tags}


def anchor_of(repo: Path, name: str, version: int) -> str | None:
    """The commit GTO's `<name>@v<N>.0.0` tag points at, or None."""
    try:
        return _git(repo, "rev-parse", "--verify", "--quiet", f"refs/tags/{name}@{gto_version(version)}^{{commit}}")
    except RuntimeError:
        return None
