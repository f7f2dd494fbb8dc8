"""What W&B tracking adds to a stage: evaluate's and register's tracking hook under each mode, side by side.

Each measurement is a fresh interpreter running `tabml.tracking.track_stage` on small stage outputs, the way
the stage runs it at its end; `disabled` is the baseline (import and params only). `online-unreachable` is
W&B online with the server down and WANDB_INIT_TIMEOUT=3: the cost of falling back to offline.

    python -m bench.tracking_overhead [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests.workspace import EXAMPLE_PARAMS

HOOK = """
import json, sys
from pathlib import Path
from tabml.core.params import load_params
from tabml.tracking.stage_reports import evaluation_summary, registration_summary, track_stage
from tasks.evaluate import charts_of
params = load_params(Path(sys.argv[1]))
plots = {p.name: json.loads(p.read_text()) for p in Path("reports/evaluate/plots").glob("*.json")}
metrics, validation = (json.loads(Path(f"reports/{f}.json").read_text()) for f in ("metrics", "validation"))
config = {"dataset": "credit"}
track_stage(params.tracking, "evaluate", "bench001", config, evaluation_summary(metrics, validation), charts_of(plots))
record = json.loads(Path("reports/registration.json").read_text())
track_stage(params.tracking, "register", "bench001", config, registration_summary(record))
"""
OUTPUTS = {
    "models/train/run_info.json": {"wandb_run_id": "bench001"},
    "reports/metrics.json": {"task": "binary", "n_test": 891, "test": {"auroc": 0.85, "f1": 0.66}, "threshold": 0.43},
    "reports/validation.json": {"success": True, "rows": 4454, "errors": [], "warnings": []},
    "reports/evaluate/plots/roc.json": [
        {"fpr": i / 199, "tpr": (i / 199) ** 0.3, "threshold": 1 - i / 199} for i in range(200)
    ],
    "reports/evaluate/plots/precision_recall.json": [
        {"recall": 1 - i / 199, "precision": 0.3 + 0.6 * i / 199} for i in range(200)
    ],
    "reports/evaluate/plots/confusion.json": [
        {"actual": "bad" if i % 4 else "good", "predicted": "bad" if i % 3 else "good"} for i in range(891)
    ],
    "reports/registration.json": {"passed": True, "version": 1, "stage": "production", "reasons": ["auroc: ok"]},
}


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def measure(root: Path, env: dict[str, str]) -> float:
    started = time.perf_counter()
    command = [sys.executable, "-c", HOOK, str(EXAMPLE_PARAMS)]
    proc = subprocess.run(command, cwd=root, env={**os.environ, **env}, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr[-2000:])
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    modes = {
        "disabled": {"WANDB_MODE": "disabled"},
        "offline": {"WANDB_MODE": "offline"},
        "online-unreachable": {
            "WANDB_MODE": "online",
            "WANDB_BASE_URL": f"http://127.0.0.1:{closed_port()}",
            "WANDB_API_KEY": "k" * 40,
            "WANDB_INIT_TIMEOUT": "3",
        },
    }
    base = {"WANDB_SILENT": "true", "WANDB_ERROR_REPORTING": "false", "DO_NOT_TRACK": "1"}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for path, document in OUTPUTS.items():
            (root / path).parent.mkdir(parents=True, exist_ok=True)
            (root / path).write_text(json.dumps(document))
        times: dict[str, list[float]] = {mode: [] for mode in modes}
        for _ in range(args.repeats):  # interleaved, so machine load hits every mode alike
            for mode, env in modes.items():
                times[mode].append(measure(root, {**base, **env}))
    baseline = statistics.median(times["disabled"])
    print(f"evaluate + register tracking hooks, median of {args.repeats} (fresh interpreter each):")
    for mode, values in times.items():
        median = statistics.median(values)
        print(f"  {mode:<20} {median:6.2f}s  x{median / baseline:4.1f} vs disabled  (+{median - baseline:.2f}s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
