"""After a successful run: `dvc push`, then the run's dvc.lock, params and reports committed on a run branch.

The branch is `runs/<UTC time>-<flow run id[:8]>`, one per run, never main. It is written with git plumbing
and a throwaway index (`read-tree`, `update-index`, `write-tree`, `commit-tree`, `update-ref`), so the
user's checkout, index and current branch are never touched. The commit is HEAD plus, from the workspace:
dvc.lock, params.yaml, every output DVC does not cache (reports, metrics, reference suites) and every other
git-tracked file that differs from HEAD (plus the .gitignore files DVC writes beside its outputs), so the
branch is exactly what the run ran with. The push comes
first: a branch exists only when its data is in the remote. With `orchestration.publish.git_remote` the branch
then goes to that git remote (a remote worker's clone would otherwise take it with it).
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from collections.abc import Sequence
from contextlib import chdir
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from tabml.core.ops_params import OrchestrationParams

ALWAYS = ("dvc.lock", "params.yaml")


class PublishError(RuntimeError):
    """The push or the commit failed: names the step, the reason and what to do; a push may be retried."""

    stage = "publish"

    def __init__(self, message: str, retryable: bool = False) -> None:
        super().__init__(message)
        self.retryable = retryable


@dataclass(frozen=True)
class Published:
    pushed_files: int
    branch: str | None  # None: the workspace equals HEAD, so there is nothing to commit
    commit: str | None
    files: list[str]
    new_branch: bool = True  # False: an earlier run branch off HEAD already holds exactly this (no-op reruns)


def run_branch_name(prefix: str, started: datetime, flow_run_id: str) -> str:
    """`runs/20250101-030000-1a2b3c4d` (UTC time the run started, then the flow run id's first 8 characters)."""
    short = flow_run_id.replace("-", "")[:8] or "manual"
    return f"{prefix}{started.strftime('%Y%m%d-%H%M%S')}-{short}"


def dvc_push(root: Path, remote: str | None) -> int:
    """`dvc push [-r remote]`: every cached output of the workspace to the remote; the number of files sent."""
    from dvc.exceptions import DvcException
    from dvc.repo import Repo

    from tabml.core.dag import dvc_reason
    from tabml.core.redact import redact_text

    try:
        with chdir(root), Repo(str(root)) as repo:
            return int(repo.push(remote=remote) or 0)
    except (DvcException, OSError) as exc:  # a local remote's file system errors come through unwrapped
        which = f"remote '{remote}'" if remote else "the default remote"
        raise PublishError(
            f"dvc push to {which} failed: {redact_text(dvc_reason(exc))}\n"
            "  what to do: check `dvc remote list` and the remote's credentials, then run `dvc push`; no run "
            "branch was made for this run (orchestration.publish in params.yaml turns publishing off).",
            retryable=True,
        ) from None


def files_to_commit(root: Path) -> list[str]:
    """What the run branch takes from the workspace (module docstring), as paths relative to `root`."""
    changed = _git(root, "diff", "--name-only", "--no-renames", "HEAD", "--").splitlines()
    untracked = _git(root, "ls-files", "--others", "--exclude-standard").splitlines()
    dvc_gitignores = [p for p in untracked if Path(p).name == ".gitignore"]  # DVC writes them beside its outputs
    candidates = {*ALWAYS, *changed, *dvc_gitignores, *_uncached_outputs(root)}
    existing = [p for p in sorted(candidates) if (root / p).is_file() or p in changed]
    if not existing:
        return []
    # Drop what git ignores (a deleted tracked file is kept: the branch records its deletion).
    ignored = set(_git(root, "check-ignore", "--stdin", stdin="\n".join(existing), ok=(0, 1)).splitlines())
    return [p for p in existing if p not in ignored]


def commit_to_branch(
    root: Path, branch: str, paths: Sequence[str], message: str, reuse_prefix: str | None = None
) -> tuple[str | None, str | None]:
    """Commit HEAD + `paths` from the workspace onto a new `branch`: (branch, commit).

    (None, None) when that is HEAD's tree. With `reuse_prefix`, a branch under it that already holds the
    same tree on the same parent is returned instead of a new one, so unchanged scheduled runs add nothing.
    """
    _git(root, "check-ref-format", f"refs/heads/{branch}")
    tree = index_tree(root, paths)
    head = _git(root, "rev-parse", "HEAD").strip()
    if tree == _git(root, "rev-parse", "HEAD^{tree}").strip():
        return None, None
    if reuse_prefix:
        fields = "--format=%(refname:short) %(objectname) %(tree) %(parent)"
        refs = _git(root, "for-each-ref", fields, "--sort=-refname", f"refs/heads/{reuse_prefix}")
        for name, commit, ref_tree, *parents in (line.split() for line in refs.splitlines()):
            if ref_tree == tree and parents == [head]:
                return name, commit
    commit = _git(root, "commit-tree", tree, "-p", head, "-m", message, env=_identity(root)).strip()
    _git(root, "update-ref", f"refs/heads/{branch}", commit, "")  # "": fail rather than move an existing branch
    return branch, commit


def push_branch(root: Path, git_remote: str, branch: str) -> None:
    """`git push <git_remote> <branch>`: the run branch to the git remote a remote worker cloned from."""
    from tabml.core.redact import redact_text

    try:
        _git(root, "push", "--quiet", git_remote, f"refs/heads/{branch}:refs/heads/{branch}")
    except subprocess.CalledProcessError as exc:
        raise PublishError(
            f"{root}: git push of run branch {branch} to '{git_remote}' failed: {redact_text(exc.stderr.strip())}\n"
            f"  what to do: the data is pushed and the branch is committed here; check the remote's access, then "
            f"`git push {git_remote} {branch}` (orchestration.publish.git_remote: null keeps run branches local).",
            retryable=True,
        ) from None


def push_tags(root: Path, git_remote: str) -> list[str]:
    """Push the GTO tags this clone made (`credit@v3.0.0`, `credit#production#2`) that `git_remote` lacks, all or
    none (`--atomic`); a tag the remote holds on another commit (another worker's registration) is refused."""
    from tabml.core.redact import redact_text

    listed = (line.split() for line in _git(root, "show-ref", "--tags", ok=(0, 1)).splitlines())
    ours = {ref: sha for sha, ref in listed if "@v" in ref or "#" in ref}
    remote = (line.split() for line in _git(root, "ls-remote", "--tags", git_remote).splitlines())
    theirs = {ref: sha for sha, ref in remote if not ref.endswith("^{}")}
    clash = sorted(ref.removeprefix("refs/tags/") for ref, sha in ours.items() if theirs.get(ref, sha) != sha)
    if clash:
        raise PublishError(
            f"{root}: GTO tag(s) {', '.join(clash)} already exist on '{git_remote}' on another commit: another "
            "worker registered in a registry that is not this one, or with tags this clone did not fetch\n"
            "  what to do: the run branch and the registry are fine (the registry is the record); give every worker "
            f"the same register.registry_dir, then `git fetch {git_remote} --tags` and `python -m tabml.registry "
            "repair` in a clone to rewrite the tags"
        )
    new = sorted(ref for ref in ours if ref not in theirs)
    if new:
        try:
            _git(root, "push", "--quiet", "--atomic", git_remote, *(f"{ref}:{ref}" for ref in new))
        except subprocess.CalledProcessError as exc:
            raise PublishError(
                f"{root}: git push of GTO tags to '{git_remote}' failed: {redact_text(exc.stderr.strip())}\n"
                f"  what to do: check the remote's access, then `git push {git_remote} --tags`",
                retryable=True,
            ) from None
    return [ref.removeprefix("refs/tags/") for ref in new]


def publish_run(
    root: Path,
    *,
    flow_run_id: str,
    started: datetime,
    remote: str | None,
    branch_prefix: str,
    git_remote: str | None,
) -> Published:
    """Push, commit to `runs/...`, push that to `git_remote`; PublishError says which step failed and what to do."""
    root = root.resolve()
    pushed = dvc_push(root, remote)
    branch = run_branch_name(branch_prefix, started, flow_run_id)
    try:
        paths = files_to_commit(root)
        message = f"pipeline run {flow_run_id or 'manual'}\n\nFiles from the workspace: {', '.join(paths)}\n"
        made, commit = commit_to_branch(root, branch, paths, message, reuse_prefix=branch_prefix)
    except subprocess.CalledProcessError as exc:
        raise PublishError(
            f"{root}: committing the run to branch {branch} failed: {' '.join(exc.cmd)}: {exc.stderr.strip()}\n"
            "  what to do: the data is pushed; commit dvc.lock by hand (`git switch -c <branch>`, "
            "`git add dvc.lock params.yaml reports`, `git commit`), and check the repository with `git status`."
        ) from None
    if made is not None and git_remote is not None:
        push_branch(root, git_remote, made)
    if git_remote is not None:
        push_tags(root, git_remote)
    return Published(pushed, made, commit, paths, new_branch=made == branch)


def _uncached_outputs(root: Path) -> list[str]:
    """Files of the outputs dvc.yaml declares with `cache: false`: DVC leaves them for git to track."""
    from dvc.repo import Repo

    found: list[str] = []
    with chdir(root), Repo(str(root)) as repo:
        for out in repo.index.outs:
            if out.use_cache or not out.is_in_repo:
                continue
            path = Path(out.fs_path)
            files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
            found += [p.relative_to(root).as_posix() for p in files if p.is_file()]
    return found


def _identity(root: Path) -> dict[str, str]:
    # commit-tree needs a committer; a scheduler host often has none configured.
    if subprocess.run(["git", "var", "GIT_COMMITTER_IDENT"], cwd=root, capture_output=True).returncode == 0:
        return {}
    return {
        "GIT_AUTHOR_NAME": "tabml pipeline",
        "GIT_AUTHOR_EMAIL": "tabml-pipeline@localhost",
        "GIT_COMMITTER_NAME": "tabml pipeline",
        "GIT_COMMITTER_EMAIL": "tabml-pipeline@localhost",
    }


def _git(
    root: Path, *args: str, env: dict[str, str] | None = None, stdin: str | None = None, ok: tuple[int, ...] = (0,)
) -> str:
    proc = subprocess.run(
        ["git", *args], cwd=root, capture_output=True, text=True, input=stdin, env={**os.environ, **(env or {})}
    )
    if proc.returncode not in ok:
        raise subprocess.CalledProcessError(proc.returncode, ["git", *args], proc.stdout, proc.stderr)
    return proc.stdout


def should_publish(requested: bool | None, from_deployment: bool, orchestration: OrchestrationParams) -> bool:
    """An explicit request wins; otherwise `publish.scheduled` for deployment runs, `publish.manual` for the rest."""
    if requested is not None:
        return requested
    return orchestration.publish.scheduled if from_deployment else orchestration.publish.manual


def index_tree(root: Path, paths: Sequence[str]) -> str:
    """The tree of HEAD with `paths` as they are in the workspace (added, changed or removed), built in a
    private index so the user's own staging area is left alone."""
    with tempfile.TemporaryDirectory(prefix="tabml-index-") as tmp:
        env = {"GIT_INDEX_FILE": str(Path(tmp) / "index")}
        _git(root, "read-tree", "HEAD", env=env)
        if paths:
            _git(root, "update-index", "--add", "--remove", "--", *paths, env=env)
        return _git(root, "write-tree", env=env).strip()
