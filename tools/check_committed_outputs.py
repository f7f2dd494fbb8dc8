"""CI check: the committed dvc.lock and reports are what the committed code and data produce.

    python -m tools.check_committed_outputs            # dvc.lock's deps and params match this checkout (seconds)
    python -m tools.check_committed_outputs --rerun    # and `dvc repro` in a fresh clone of HEAD changes nothing
                                                       # tracked, dvc.lock included

A stale dvc.lock (code edited, lock not regenerated) fails the first; a report that changes on every run (a clock
time in it) fails the second. Either says what to do: `make run`, then commit dvc.lock and reports/.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

# Nothing tracked is per run: the W&B run id, durations and resume point are in `models/train.run.json`, the GTO
# commit and package hash in `reports/registration.run.json`, both git-ignored and outside DVC's outputs (README
# "A clean checkout stays clean"). So a rerun on the committed code, data and params rewrites every tracked file,
# dvc.lock and its output hashes included, byte for byte; a fresh clone has an empty registry (git-ignored), so
# the committed lock must come from a fresh clone too (`make check-outputs RERUN=1` says so when it does not).
PER_RUN: frozenset[str] = frozenset()
TODO = "what to do: `make run` (or `dvc repro`), then commit dvc.lock and reports/"


def _run(args: list[str], cwd: Path) -> str:
    done = subprocess.run(args, cwd=cwd, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed in {cwd} ({done.returncode}):\n{done.stdout}{done.stderr}")
    return done.stdout


def stale_entries(root: Path) -> list[str]:
    """`stage: path` for every dep or param of dvc.lock that differs from the checkout (missing outs are fine)."""
    status = json.loads(_run([sys.executable, "-m", "dvc", "status", "--json"], root) or "{}")
    stale = []
    for stage, changes in status.items():
        for change in changes if isinstance(changes, list) else []:
            if not isinstance(change, dict):
                stale.append(f"{stage}: {change}")  # "always changed" and the like
                continue
            for kind in ("changed deps", "changed params"):
                for path, how in (change.get(kind) or {}).items():
                    if how != "deleted":
                        stale.append(f"{stage}: {kind.removeprefix('changed ')} {path} {how}")
    return stale


def lock_inputs(lock_text: str) -> dict[str, object]:
    """dvc.lock without outputs: the code, data and params each stage ran on (deps that are another stage's outs
    are left out with the outs), to say which part of a changed lock differs."""
    stages = (yaml.safe_load(lock_text) or {}).get("stages") or {}
    produced = {out["path"] for stage in stages.values() for out in stage.get("outs") or []}
    return {
        name: {
            "cmd": stage.get("cmd"),
            "params": stage.get("params"),
            "deps": [dep for dep in stage.get("deps") or [] if dep.get("path") not in produced],
        }
        for name, stage in stages.items()
    }


def rerun_changes(root: Path) -> list[str]:
    """What `dvc repro` in a fresh clone of HEAD changes: any tracked file, dvc.lock's output hashes included."""
    with tempfile.TemporaryDirectory(prefix="tabml-check-") as tmp:
        clone = Path(tmp) / "clone"
        _run(["git", "clone", "-q", str(root), str(clone)], root)
        committed = (clone / "dvc.lock").read_text() if (clone / "dvc.lock").exists() else ""
        _run([sys.executable, "-m", "dvc", "repro", "-q"], clone)
        changed = [line[3:] for line in _run(["git", "status", "--porcelain"], clone).splitlines()]
        problems = [f"{path}: changed by a rerun" for path in changed if path not in PER_RUN]
        rerun_lock = (clone / "dvc.lock").read_text()
        if lock_inputs(committed) != lock_inputs(rerun_lock):
            problems.append("dvc.lock: a rerun records other deps or params than the committed lock")
        elif committed != rerun_lock:
            problems.append("dvc.lock: a rerun writes other output hashes (a per-run value in an output?)")
        return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.check_committed_outputs", description=__doc__.split("\n")[0])
    parser.add_argument("--root", type=Path, default=Path("."))
    parser.add_argument("--rerun", action="store_true", help="also rerun the pipeline in a fresh clone of HEAD")
    args = parser.parse_args(argv)
    problems = [f"dvc.lock is stale: {entry}" for entry in stale_entries(args.root)]
    if args.rerun and not problems:
        problems += rerun_changes(args.root.resolve())
    for problem in problems:
        print(problem, file=sys.stderr)
    if problems:
        print(TODO, file=sys.stderr)
        return 1
    print("committed dvc.lock and reports match the code and data" + (" (rerun in a fresh clone)" * args.rerun))
    return 0


if __name__ == "__main__":
    sys.exit(main())
