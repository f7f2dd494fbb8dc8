"""Handing one stage's inputs to a clone on another machine and taking its result back, through git and DVC.

The main flow commits its workspace (dvc.lock, params.yaml, uncached outputs: what `publish_run.files_to_commit`
takes) on top of HEAD and pushes that commit to a hand-over ref, `refs/tabml/handover/<flow run id>/<stage>`, on
the git remote, after `dvc push` of the stage's inputs that earlier stages wrote. The stage flow checks the ref
out, `dvc pull`s those inputs, runs the stage through DVC (so its dvc.lock entry is DVC's own), `dvc push`es the
stage's outputs and pushes its dvc.lock on the same ref (a fast-forward). The main flow then writes the files
that commit changed into its workspace and `dvc pull`s the stage's outputs. The refs live outside refs/heads, so
clones and `git branch` never show them; the main flow deletes its ref once it has taken the result back.
"""

from __future__ import annotations

import os
import subprocess
from contextlib import chdir
from pathlib import Path
from typing import Any

from tabml.core.redact import redact_text
from tabml.orchestration.publish_run import files_to_commit, index_tree

HANDOVER_REF_PREFIX = "refs/tabml/handover/"
COMMITTER = {
    "GIT_AUTHOR_NAME": "tabml pipeline",
    "GIT_AUTHOR_EMAIL": "tabml-pipeline@localhost",
    "GIT_COMMITTER_NAME": "tabml pipeline",
    "GIT_COMMITTER_EMAIL": "tabml-pipeline@localhost",
}


class HandoverError(RuntimeError):
    """A git or DVC step of the hand-over failed: says which, where, and what to do; retrying may help."""

    retryable = True


def handover_ref(flow_run_id: str, stage: str) -> str:
    """`refs/tabml/handover/<flow run id>/<stage>`: one ref per routed stage of one run; pure."""
    if not flow_run_id or not stage or "/" in stage or "/" in flow_run_id:
        raise ValueError(f"no hand-over ref for flow run {flow_run_id!r}, stage {stage!r}")
    return f"{HANDOVER_REF_PREFIX}{flow_run_id}/{stage}"


def upstream_outputs(root: Path, stage: str) -> list[str]:
    """Cached outputs of other stages that `stage` depends on: what its machine must `dvc pull` before running."""
    from dvc.repo import Repo

    with chdir(root), Repo(str(root)) as repo:
        target = _stage(repo, stage)
        deps = [Path(dep.fs_path) for dep in target.deps]
        found = {
            Path(out.fs_path).relative_to(root).as_posix()
            for other in repo.index.graph.successors(target)  # edges point from a stage to those it depends on
            for out in other.outs
            if out.use_cache and any(_overlap(Path(out.fs_path), dep) for dep in deps)
        }
    return sorted(found)


def stage_outputs(root: Path, stage: str) -> list[str]:
    """Cached outputs of `stage`: what its machine `dvc push`es and the main flow `dvc pull`s."""
    from dvc.repo import Repo

    with chdir(root), Repo(str(root)) as repo:
        outs = _stage(repo, stage).outs
        return sorted(Path(out.fs_path).relative_to(root).as_posix() for out in outs if out.use_cache)


def transfer(root: Path, direction: str, paths: list[str], remote: str | None, stage: str) -> int:
    """`dvc push` or `dvc pull` of `paths` (outputs in dvc.lock) to or from `remote` (None: the default)."""
    from dvc.exceptions import DvcException
    from dvc.repo import Repo

    from tabml.core.dag import dvc_reason

    if not paths:
        return 0
    try:
        with chdir(root), Repo(str(root)) as repo:
            done = repo.push(targets=paths, remote=remote) if direction == "push" else repo.pull(paths, remote=remote)
    except (DvcException, OSError) as exc:
        which = f"remote '{remote}'" if remote else "the default remote"
        raise HandoverError(
            f"{root}: dvc {direction} of {', '.join(paths)} ({stage}'s hand-over) with {which} failed: "
            f"{redact_text(dvc_reason(exc))}\n  what to do: check `dvc remote list` and the remote's credentials "
            "on this machine, then trigger the run again."
        ) from None
    if isinstance(done, dict):  # pull: {"stats": {"fetched": n, "added": [...], ...}}
        return int(done.get("stats", {}).get("fetched", 0))
    return int(done or 0)


def commit_and_push(root: Path, git_remote: str, ref: str, message: str) -> str:
    """Commit HEAD + the workspace's run files (dvc.lock, params, uncached outputs) and push it to `ref`."""
    try:
        paths = files_to_commit(root)
        tree = index_tree(root, paths)
        commit = _git(root, "commit-tree", tree, "-p", "HEAD", "-m", message, env=COMMITTER).strip()
        _git(root, "push", "--quiet", "--force", git_remote, f"{commit}:{ref}")
    except subprocess.CalledProcessError as exc:
        raise _git_failure(root, exc, f"handing over on {ref} via git remote '{git_remote}'") from None
    return commit


def check_out(root: Path, git_remote: str, ref: str) -> str:
    """Fetch `ref` and check it out (detached, discarding local changes): the main flow's hand-over commit."""
    try:
        commit = _fetch(root, git_remote, ref)
        _git(root, "checkout", "--quiet", "--force", "--detach", commit)
    except subprocess.CalledProcessError as exc:
        raise _git_failure(root, exc, f"checking out hand-over ref {ref} from git remote '{git_remote}'") from None
    return commit


def take_back(root: Path, git_remote: str, ref: str, handed_over: str) -> list[str]:
    """Write the files the stage's machine changed on `ref` since `handed_over` into the workspace; their paths."""
    try:
        returned = _fetch(root, git_remote, ref)
        changed = _git(root, "diff", "--name-only", "--no-renames", handed_over, returned).splitlines()
        present = set(_git(root, "ls-tree", "-r", "--name-only", returned, "--", *changed).splitlines())
        for path in changed:
            target = root / path
            if path in present:
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(_git_bytes(root, "show", f"{returned}:{path}"))
            else:
                target.unlink(missing_ok=True)
    except subprocess.CalledProcessError as exc:
        raise _git_failure(root, exc, f"taking the result back from {ref} on git remote '{git_remote}'") from None
    return changed


def delete_ref(root: Path, git_remote: str, ref: str) -> str | None:
    """Remove the hand-over ref from the git remote; the reason it could not be, or None."""
    try:
        _git(root, "push", "--quiet", git_remote, f":{ref}")
    except subprocess.CalledProcessError as exc:
        return redact_text(exc.stderr.strip())
    return None


def _fetch(root: Path, git_remote: str, ref: str) -> str:
    _git(root, "fetch", "--quiet", git_remote, f"+{ref}:{ref}")
    return _git(root, "rev-parse", "--verify", f"{ref}^{{commit}}").strip()


def _stage(repo: Any, name: str) -> Any:
    from dvc.stage.exceptions import StageNotFound

    from tabml.core.dag import PROJECT_FILE

    try:
        (stage,) = repo.stage.collect(f"{PROJECT_FILE}:{name}")
    except StageNotFound:
        raise HandoverError(f"dvc.yaml has no stage '{name}' to hand over\n  what to do: check dvc.yaml") from None
    return stage


def _overlap(out: Path, dep: Path) -> bool:
    return out == dep or out in dep.parents or dep in out.parents


def _git_failure(root: Path, exc: subprocess.CalledProcessError, doing: str) -> HandoverError:
    stderr = exc.stderr.decode(errors="replace") if isinstance(exc.stderr, bytes) else exc.stderr or ""
    return HandoverError(
        f"{root}: {doing} failed: git {exc.cmd[1]}: {redact_text(stderr.strip())}\n"
        "  what to do: check that this machine can fetch from and push to that git remote (credentials, network), "
        "then trigger the run again."
    )


def _git(root: Path, *args: str, env: dict[str, str] | None = None) -> str:
    return _git_bytes(root, *args, env=env).decode()


def _git_bytes(root: Path, *args: str, env: dict[str, str] | None = None) -> bytes:
    proc = subprocess.run(["git", *args], cwd=root, capture_output=True, env={**os.environ, **(env or {})})
    if proc.returncode != 0:
        raise subprocess.CalledProcessError(proc.returncode, ["git", *args], proc.stdout, proc.stderr)
    return proc.stdout
