"""Copy the pipeline into a fresh git + DVC repo: for tests and benchmarks.

The code and the DAG come from this checkout; params.yaml and the example table come from tests/fixtures, so
the suite never depends on what a user has put in the checkout's own params.yaml, data or registry.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from contextlib import suppress
from pathlib import Path

PIPELINE_FILES = ("dvc.yaml", ".dvcignore", "tasks", "tabml", "flows")  # from the checkout
FIXTURES = Path(__file__).resolve().parent / "fixtures"
EXAMPLE_PARAMS = FIXTURES / "params.yaml"  # the example project's params (credit table, default settings)
EXAMPLE_TABLE = FIXTURES / "credit.csv"  # its landing table, where EXAMPLE_PARAMS' data.path points
EXAMPLE_TABLE_PATH = Path("data/landing/credit.csv")


def run(*args: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run a command; on failure raise with everything it printed."""
    proc = subprocess.run([str(a) for a in args], cwd=cwd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, args))} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


def copy_pipeline(source: Path, dest: Path) -> Path:
    """The pipeline code of `source` with the example params and table, in `dest`."""
    dest.mkdir(parents=True, exist_ok=True)
    for name in PIPELINE_FILES:
        src, dst = source / name, dest / name
        if src.is_dir():
            shutil.copytree(src, dst, ignore=shutil.ignore_patterns("__pycache__"), dirs_exist_ok=True)
        else:
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dst)
    shutil.copy2(EXAMPLE_PARAMS, dest / "params.yaml")
    (dest / EXAMPLE_TABLE_PATH).parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(EXAMPLE_TABLE, dest / EXAMPLE_TABLE_PATH)
    return dest


def init_repo(root: Path, remote: Path) -> Path:
    """git + DVC in `root`, a local-directory DVC remote at `remote`, everything committed."""
    run("git", "init", "-q", "-b", "main", cwd=root)
    run(sys.executable, "-m", "dvc", "init", "-q", cwd=root)
    run(sys.executable, "-m", "dvc", "remote", "add", "-d", "local", str(remote), cwd=root)
    (root / ".gitignore").write_text("/registry/\n/checkpoints/\n/.wandb/\n*.run.json\n")  # per-run facts
    commit_all(root, "workspace")
    return root


def commit_all(root: Path, message: str) -> None:
    run("git", "add", "-A", cwd=root)
    run("git", "-c", "user.name=tabml", "-c", "user.email=tabml@localhost", "commit", "-qm", message, cwd=root)


def example_orchestration(stages: dict | None = None, **sections: dict) -> dict:
    """The example's `orchestration` section with `stages` replaced and other sub-sections updated."""
    import yaml

    orchestration = yaml.safe_load(EXAMPLE_PARAMS.read_text())["orchestration"]
    orchestration["stages"] = stages or {}
    for name, values in sections.items():
        orchestration[name] = {**orchestration[name], **values}
    return orchestration


def stop_process_group(proc: subprocess.Popen[bytes], grace_seconds: float = 15) -> None:
    """SIGTERM to the process and everything it started, then SIGKILL whatever is left."""
    if proc.poll() is not None:
        return
    with suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=grace_seconds)
    except subprocess.TimeoutExpired:
        with suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=grace_seconds)
