"""Cold end-to-end time of the example pipeline, stage by stage, and the `dvc repro` no-op time.

Run: `make bench` or `python -m bench.pipeline_timing`. Goal (issue 2): cold <= 90 s, no-op <= 3 s on 2 cores.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

from tabml.core.env import quiet_telemetry
from tests.workspace import copy_pipeline, init_repo, run

PROJECT = Path(__file__).resolve().parents[1]


def timed(*args: str, cwd: Path) -> float:
    start = time.perf_counter()
    run(sys.executable, "-m", "dvc", *args, cwd=cwd)
    return time.perf_counter() - start


def main() -> None:
    quiet_telemetry()
    with tempfile.TemporaryDirectory(prefix="tabml-bench-") as tmp:
        root = init_repo(copy_pipeline(PROJECT, Path(tmp) / "ws"), Path(tmp) / "remote")
        listing = run(sys.executable, "-m", "dvc", "stage", "list", cwd=root).stdout
        stages = [line.split()[0] for line in listing.splitlines()]
        per_stage = {stage: timed("repro", "--single-item", stage, cwd=root) for stage in stages}
        cold = sum(per_stage.values())
        noop = min(timed("repro", cwd=root) for _ in range(3))
        python_start = min(timed("--version", cwd=root) for _ in range(3))
    print("stage            seconds")
    for stage, seconds in per_stage.items():
        print(f"{stage:<16} {seconds:7.1f}")
    print(f"cold end-to-end  {cold:7.1f}   (goal <= 90 s)")
    print(f"dvc repro no-op  {noop:7.2f}   (goal <= 3 s; {noop / python_start:.1f}x a bare `dvc --version`)")


if __name__ == "__main__":
    main()
