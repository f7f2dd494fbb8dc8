"""Cold end-to-end time of the example pipeline, stage by stage, and the `dvc repro` no-op time.

Run: `make bench` or `python -m bench.pipeline_timing`. Goal (issue 2): cold <= 90 s, no-op <= 3 s on 2 cores.
Besides wall seconds it prints each stage's CPU seconds (user + system of the processes it ran): on a machine
shared with other work, wall time grows with the load, while CPU time of these mostly single-threaded stages
stays close to what an idle machine's wall time would be.
"""

from __future__ import annotations

import resource
import sys
import tempfile
import time
from pathlib import Path

from tabml.core.env import quiet_telemetry
from tests.workspace import copy_pipeline, init_repo, run

PROJECT = Path(__file__).resolve().parents[1]


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def timed(*args: str, cwd: Path) -> tuple[float, float]:
    """Wall and CPU seconds of one `dvc` command (CPU: every process it waited for)."""
    start, cpu = time.perf_counter(), children_cpu()
    run(sys.executable, "-m", "dvc", *args, cwd=cwd)
    return time.perf_counter() - start, children_cpu() - cpu


def main() -> None:
    quiet_telemetry()
    with tempfile.TemporaryDirectory(prefix="tabml-bench-") as tmp:
        root = init_repo(copy_pipeline(PROJECT, Path(tmp) / "ws"), Path(tmp) / "remote")
        listing = run(sys.executable, "-m", "dvc", "stage", "list", cwd=root).stdout
        stages = [line.split()[0] for line in listing.splitlines()]
        per_stage = {stage: timed("repro", "--single-item", stage, cwd=root) for stage in stages}
        noop = min(timed("repro", cwd=root)[0] for _ in range(3))
        python_start = min(timed("--version", cwd=root)[0] for _ in range(3))
    print(f"stage            seconds   cpu s   (load average {Path('/proc/loadavg').read_text().split()[0]})")
    for stage, (seconds, cpu) in per_stage.items():
        print(f"{stage:<16} {seconds:7.1f} {cpu:7.1f}")
    cold, cold_cpu = (sum(v[i] for v in per_stage.values()) for i in (0, 1))
    print(f"cold end-to-end  {cold:7.1f} {cold_cpu:7.1f}   (goal <= 90 s)")
    print(f"dvc repro no-op  {noop:7.2f}   (goal <= 3 s; {noop / python_start:.1f}x a bare `dvc --version`)")


if __name__ == "__main__":
    main()
