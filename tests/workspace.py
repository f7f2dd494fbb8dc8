"""Copy the pipeline (code, DAG, params, example data) into a fresh git + DVC repo: for tests and benchmarks."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

PIPELINE_FILES = ("dvc.yaml", "params.yaml", ".dvcignore", "tasks", "tabml", "flows", "data/landing")


def run(*args: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run a command; on failure raise with everything it printed."""
    proc = subprocess.run([str(a) for a in args], cwd=cwd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, args))} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


def copy_pipeline(source: Path, dest: Path) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    for name in PIPELINE_FILES:
        src, dst = source / name, dest / name
        if src.is_dir():
            shutil.copytree(src, dst, ignore=shutil.ignore_patterns("__pycache__"), dirs_exist_ok=True)
        else:
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dst)
    return dest


def init_repo(root: Path, remote: Path) -> Path:
    """git + DVC in `root`, a local-directory DVC remote at `remote`, everything committed."""
    run("git", "init", "-q", "-b", "main", cwd=root)
    run(sys.executable, "-m", "dvc", "init", "-q", cwd=root)
    run(sys.executable, "-m", "dvc", "remote", "add", "-d", "local", str(remote), cwd=root)
    (root / ".gitignore").write_text("/registry/\n/checkpoints/\n/.wandb/\n")
    commit_all(root, "workspace")
    return root


def commit_all(root: Path, message: str) -> None:
    run("git", "add", "-A", cwd=root)
    run("git", "-c", "user.name=tabml", "-c", "user.email=tabml@localhost", "commit", "-qm", message, cwd=root)
