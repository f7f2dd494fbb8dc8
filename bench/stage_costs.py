"""Run a pipeline workspace stage by stage through DVC, measuring wall time, CPU time (user + system of every
process the stage ran: on a shared machine, close to an idle machine's wall time for single-threaded stages) and
peak memory of each."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

# A child interpreter runs the stage and reports its descendants' peak RSS (ru_maxrss, KiB on Linux).
MEASURE = """
import json, resource, subprocess, sys, time
start = time.perf_counter()
proc = subprocess.run(sys.argv[1:])
usage = resource.getrusage(resource.RUSAGE_CHILDREN)
print(json.dumps({"rc": proc.returncode, "seconds": time.perf_counter() - start,
                  "cpu_seconds": usage.ru_utime + usage.ru_stime, "peak_mib": usage.ru_maxrss / 1024}))
"""


@dataclass(frozen=True)
class StageCost:
    stage: str
    seconds: float
    cpu_seconds: float
    peak_mib: float


def measure_stage(root: Path, stage: str) -> StageCost:
    command = [sys.executable, "-c", MEASURE, sys.executable, "-m", "dvc", "repro", "--single-item", stage]
    proc = subprocess.run(command, cwd=root, capture_output=True, text=True)
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    if result["rc"] != 0:
        raise RuntimeError(f"stage {stage} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return StageCost(stage, result["seconds"], result["cpu_seconds"], result["peak_mib"])


def measure_pipeline(root: Path) -> list[StageCost]:
    from tabml.core.dag import stage_order

    return [measure_stage(root, stage) for stage in stage_order(root)]


def print_costs(costs: list[StageCost], title: str) -> None:
    load = Path("/proc/loadavg").read_text().split()[0] if Path("/proc/loadavg").exists() else "?"
    print(f"\n{title}\nstage            seconds    cpu s   peak MiB   (load average {load})")
    for c in costs:
        print(f"{c.stage:<16} {c.seconds:7.1f}  {c.cpu_seconds:7.1f}   {c.peak_mib:8.0f}")
    total, cpu = sum(c.seconds for c in costs), sum(c.cpu_seconds for c in costs)
    print(f"{'total':<16} {total:7.1f}  {cpu:7.1f}   {max(c.peak_mib for c in costs):8.0f} (max)")
