"""Run a pipeline workspace stage by stage through DVC, measuring wall time and peak memory of each."""

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
print(json.dumps({"rc": proc.returncode, "seconds": time.perf_counter() - start,
                  "peak_mib": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024}))
"""


@dataclass(frozen=True)
class StageCost:
    stage: str
    seconds: float
    peak_mib: float


def measure_stage(root: Path, stage: str) -> StageCost:
    command = [sys.executable, "-c", MEASURE, sys.executable, "-m", "dvc", "repro", "--single-item", stage]
    proc = subprocess.run(command, cwd=root, capture_output=True, text=True)
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    if result["rc"] != 0:
        raise RuntimeError(f"stage {stage} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return StageCost(stage, result["seconds"], result["peak_mib"])


def measure_pipeline(root: Path) -> list[StageCost]:
    from tabml.core.dag import stage_order

    return [measure_stage(root, stage) for stage in stage_order(root)]


def print_costs(costs: list[StageCost], title: str) -> None:
    print(f"\n{title}\nstage            seconds   peak MiB")
    for c in costs:
        print(f"{c.stage:<16} {c.seconds:7.1f}   {c.peak_mib:8.0f}")
    print(f"{'total':<16} {sum(c.seconds for c in costs):7.1f}   {max(c.peak_mib for c in costs):8.0f} (max)")
