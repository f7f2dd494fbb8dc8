"""Where a deployment's worker gets the code and data of a run: this checkout, or a clone of its git remote.

`source: local` (orchestration.deployment) runs the flow in the deploying checkout, so the worker must share its
disk. `source: git` makes the deployment's pull steps clone `git_remote` at the deployed commit into the worker's
own working folder and `dvc pull` what that commit's dvc.lock names from the DVC remote; the run branch and the
pushed data go back after the run (orchestration.publish.git_remote). No credential is ever part of a deployment:
a URL holding one is refused, the worker's git and DVC find theirs in its own environment.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

from tabml.core.redact import URL_USERINFO

CLONE_STEP_ID = "clone"
DVC_PULL = "python -m dvc pull --allow-missing"  # --allow-missing: outputs never pushed (a first run) are not an error
# the registry's GTO tags from every earlier run (git_clone fetches only the commit): without them a second worker
# would number its versions from 1 again and its tag push would clash with the first worker's
FETCH_TAGS = "git fetch --quiet --tags origin"


class CodeSourceError(RuntimeError):
    """The deploying checkout cannot be cloned by a worker: says what and what to do."""


def pull_steps(repository: str, commit: str) -> list[dict[str, Any]]:
    """Prefect pull steps: clone `repository` at `commit` into the working folder, fetch its tags, `dvc pull`; pure."""
    return [
        {
            "prefect.deployments.steps.git_clone": {
                "id": CLONE_STEP_ID,
                "repository": repository,
                "commit_sha": commit,
            }
        },
        *(
            {
                "prefect.deployments.steps.run_shell_script": {
                    "script": script,
                    "directory": f"{{{{ {CLONE_STEP_ID}.directory }}}}",
                    "stream_output": True,
                }
            }
            for script in (FETCH_TAGS, DVC_PULL)
        ),
    ]


def git_source(root: Path, git_remote: str) -> tuple[str, str]:
    """(URL of `git_remote`, HEAD) of the checkout, once HEAD is on that remote; CodeSourceError otherwise."""
    url = _git(root, "remote", "get-url", git_remote, what=f"git remote '{git_remote}'")
    if URL_USERINFO.search(url):
        raise CodeSourceError(
            f"{root}: git remote '{git_remote}' has credentials in its URL, which the deployment would store.\n"
            "  what to do: drop them from the URL (`git remote set-url`) and give the worker a credential helper "
            "or an SSH key."
        )
    commit = _git(root, "rev-parse", "HEAD", what="HEAD")
    tips = [line.split()[0] for line in _git(root, "ls-remote", git_remote, what=url).splitlines() if line]
    if not any(_is_ancestor(root, commit, tip) for tip in tips):
        raise CodeSourceError(
            f"{root}: commit {commit[:12]} is not on git remote '{git_remote}', so a worker could not clone it.\n"
            f"  what to do: `git push {git_remote} HEAD` (and `dvc push`), then deploy again."
        )
    return url, commit


def _is_ancestor(root: Path, commit: str, tip: str) -> bool:
    proc = subprocess.run(["git", "merge-base", "--is-ancestor", commit, tip], cwd=root, capture_output=True)
    return proc.returncode == 0


def _git(root: Path, *args: str, what: str) -> str:
    proc = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True)
    if proc.returncode != 0:
        raise CodeSourceError(
            f"{root}: git {args[0]} failed for {what}: {proc.stderr.strip()}\n"
            "  what to do: set orchestration.deployment.git_remote to a remote of this checkout (`git remote -v`)."
        )
    return proc.stdout.strip()


def git_storage(repository: str, commit: str) -> Any:
    """Prefect storage whose pull steps are `pull_steps(repository, commit)`."""
    from prefect.runner.storage import GitRepository

    class GitWithData(GitRepository):
        def to_pull_step(self) -> list[dict[str, Any]]:  # type: ignore[override]
            return pull_steps(repository, commit)

    return GitWithData(url=repository, commit_sha=commit)
