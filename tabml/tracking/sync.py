"""Upload offline W&B runs once: `python -m tabml.tracking.sync [--dry-run]`.

Train, evaluate and register each write an offline folder of the same run id; `plan_sync` groups them so each
run is uploaded oldest first, and wandb's own `.synced` markers make a second sync send nothing.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from tabml.core.params import DEFAULT_PARAMS
from tabml.tracking.runs import tracking_dir

OFFLINE_RUN = re.compile(r"^offline-run-(?P<started>\d{8}_\d{6})-(?P<run_id>[\w-]+)$")
SYNCED_SUFFIX = ".synced"  # wandb writes <run>.wandb.synced after it uploaded <run>.wandb


@dataclass(frozen=True)
class OfflineRun:
    """One offline run folder: a stage's part of a W&B run (train, evaluate and register each write one)."""

    path: Path
    run_id: str
    started: str  # YYYYMMDD_HHMMSS from the folder name
    synced: bool


def find_offline_runs(wandb_dir: Path) -> list[OfflineRun]:
    """Offline run folders under `<tracking.dir>/wandb`, oldest first; `synced` from wandb's own marker file."""
    found = []
    for path in sorted(wandb_dir.glob("offline-run-*")):
        match = OFFLINE_RUN.match(path.name)
        logs = sorted(path.glob("*.wandb"))
        if not match or path.is_symlink() or not logs:
            continue
        synced = all(log.with_name(log.name + SYNCED_SUFFIX).exists() for log in logs)
        found.append(OfflineRun(path, match["run_id"], match["started"], synced))
    return sorted(found, key=lambda r: (r.started, r.path.name))


def plan_sync(runs: Sequence[OfflineRun]) -> dict[str, list[OfflineRun]]:
    """Pure: run id -> its folders still to upload, in start order; already-uploaded folders are left out."""
    plan: dict[str, list[OfflineRun]] = {}
    for run in sorted(runs, key=lambda r: (r.started, r.path.name)):
        if not run.synced:
            plan.setdefault(run.run_id, []).append(run)
    return plan


def sync_offline_runs(wandb_dir: Path, *, dry_run: bool, timeout: float, extra_args: Sequence[str] = ()) -> int:
    """`wandb sync` each run id's pending folders together (uploaded in start order); 0 when all are uploaded."""
    runs = find_offline_runs(wandb_dir)
    plan = plan_sync(runs)
    done = len([r for r in runs if r.synced])
    print(
        f"{len(runs)} offline run folder(s) in {wandb_dir}: {done} already uploaded (skipped), {len(runs) - done} to go"
    )
    for run_id, pending in plan.items():
        print(f"  run {run_id}: {', '.join(r.path.name for r in pending)}")
    if dry_run or not plan:
        return 0
    env = {**os.environ, "WANDB_ERROR_REPORTING": os.environ.get("WANDB_ERROR_REPORTING", "false")}
    failed: list[str] = []
    for run_id, pending in plan.items():
        cmd = [sys.executable, "-m", "wandb", "sync", "--yes", *extra_args, *(str(r.path) for r in pending)]
        status = _run_with_timeout(cmd, env, timeout)
        uploaded = {r.path for r in find_offline_runs(wandb_dir) if r.synced}
        if status != 0 or any(r.path not in uploaded for r in pending):
            failed.append(run_id)
    if failed:
        print(
            f"not uploaded: run(s) {', '.join(failed)} "
            f"(W&B unreachable, not logged in, or timed out after {timeout:g}s)\n"
            "  what to do: check `wandb login` and WANDB_BASE_URL, then run this again: uploaded runs are skipped",
            file=sys.stderr,
        )
        return 1
    print(f"uploaded {len(plan)} run(s)")
    return 0


def _run_with_timeout(cmd: list[str], env: Mapping[str, str], timeout: float) -> int:
    # wandb retries an unreachable server for minutes; stop it (and its wandb-core child) at the deadline.
    proc = subprocess.Popen(cmd, env=dict(env), start_new_session=True)
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        return 124


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tabml.tracking.sync",
        description="Upload offline W&B runs; folders already uploaded are skipped.",
    )
    parser.add_argument("--params", type=Path, default=DEFAULT_PARAMS, help="params file (default: params.yaml)")
    parser.add_argument("--dry-run", action="store_true", help="list what would be uploaded, upload nothing")
    parser.add_argument("--timeout", type=float, default=600, help="seconds per run before giving up (default 600)")
    parser.add_argument("--entity", help="W&B entity (team or user) to upload to; default: your default entity")
    args = parser.parse_args(argv)
    from tabml.core.params import ParamsError, load_params

    try:
        tracking = load_params(args.params).tracking
    except ParamsError as exc:
        print(f"[tracking] FAILED: {exc}", file=sys.stderr)
        return 1
    extra = ["--entity", args.entity] if args.entity else []
    return sync_offline_runs(
        tracking_dir(tracking) / "wandb", dry_run=args.dry_run, timeout=args.timeout, extra_args=extra
    )


if __name__ == "__main__":
    sys.exit(main())
