"""Wall time and peak RSS of ingest, validate, preprocess and batch predict on a big landing CSV, before and after.

The CSV has the example table's columns (its rows resampled with noise, written in chunks). `before` is the code at
`--before` (default ca0c9b9, the commit before batched reading), exported with `git archive` into a temporary folder;
`after` is this checkout. Each stage runs as `python -m tasks.<stage> --params params.yaml` in its own workspace,
in a child process whose descendants' peak RSS (`ru_maxrss`) is reported. predict scores the same CSV with one
package (a linear model on 20,000 rows of the same table, registered by the real register stage) under each code.

    python -m bench.stage_memory [--rows 3000000]    # the issue's case (about 200 MB); --rows 1000000 is quicker
    python -m bench.stage_memory --sides before --timeout 900    # one side; a stage past 900 s is stopped

Measured (3,000,000 rows, 196 MB; shared 2-core machine, one run per side; docs/data.md has the details):
ingest 2.8 s / 855 MiB -> 4.6 s / 243 MiB (0.28x), validate 10.9 s / 992 MiB -> 11.8 s / 1079 MiB (1.09x),
preprocess 14.2 s / 1986 MiB -> 13.2 s / 1090 MiB (0.55x), predict 22.9 s / 2317 MiB -> 26.8 s / 1104 MiB (0.48x).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from contextlib import chdir
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

PROJECT = Path(__file__).resolve().parents[1]
STAGES = ("ingest", "validate", "preprocess")
MEASURE = """
import json, os, resource, signal, subprocess, sys, time
start, limit = time.perf_counter(), float(sys.argv[1]) or None
proc = subprocess.Popen(sys.argv[2:], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                        start_new_session=True)
try:
    out, finished = proc.communicate(timeout=limit)[0], True
except subprocess.TimeoutExpired:
    os.killpg(proc.pid, signal.SIGKILL)
    out, finished = proc.communicate()[0], False
usage = resource.getrusage(resource.RUSAGE_CHILDREN)
print(json.dumps({"rc": proc.returncode, "finished": finished, "seconds": time.perf_counter() - start,
                  "peak_mib": usage.ru_maxrss / 1024, "tail": out[-2000:]}))
"""


def generate(path: Path, rows: int, seed: int = 0) -> Path:
    """The example table's rows resampled with noise on the numbers, written 250,000 rows at a time."""
    from tests.workspace import EXAMPLE_TABLE

    base = pd.read_csv(EXAMPLE_TABLE, keep_default_na=False, na_values=[""])
    rng = np.random.default_rng(seed)
    with path.open("w") as out:
        for start in range(0, rows, 250_000):
            n = min(250_000, rows - start)
            chunk = base.iloc[rng.integers(0, len(base), n)].reset_index(drop=True)
            chunk["Income"] = (chunk["Income"] * rng.uniform(0.9, 1.1, n)).round(1)
            chunk["Amount"] = (chunk["Amount"] + rng.integers(-50, 50, n)).clip(lower=100)
            chunk.to_csv(out, index=False, header=start == 0)
    return path


def workspace(root: Path, table: Path, code: Path) -> Path:
    """A folder with the example params of `code` (each side's own settings), pointed at `table`; predict only
    warns (ranges and nulls of a resampled table may drift a little) and keeps no prediction log."""
    raw = yaml.safe_load((code / "tests" / "fixtures" / "params.yaml").read_text())
    raw["data"]["path"] = str(table)
    if "checks" in raw.get("predict", {}):
        raw["predict"]["checks"] = dict.fromkeys(raw["predict"]["checks"], "warn")
    raw["serve"]["log_sample_rate"] = 0.0
    root.mkdir(parents=True)
    (root / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    return root


def run_measured(code: Path, cwd: Path, timeout: float, *args: str) -> tuple[str, float]:
    """Wall time (`>N s, not finished` past `timeout` seconds, 0 = none) and peak RSS (MiB, so far when stopped)
    of `python ARGS` run with `code` first on the path."""
    env = {**os.environ, "PYTHONPATH": str(code), "WANDB_MODE": "disabled"}
    command = [sys.executable, "-c", MEASURE, str(timeout), sys.executable, *args]
    proc = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, check=True)
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    if not result["finished"]:
        return f">{timeout:.0f} s, not finished", result["peak_mib"]
    if result["rc"] != 0:  # e.g. the stage before it did not finish: said, never measured
        print(f"{args} under {code} failed:\n{result['tail']}", file=sys.stderr)
        return "failed", result["peak_mib"]
    return f"{result['seconds']:.1f}", result["peak_mib"]


def package(root: Path, table: Path, rows: int) -> Path:
    """A registry with one production package trained on the first `rows` rows of `table`."""
    from tasks import register
    from tests.registry_project import build_project, evaluated

    frame = pd.read_csv(table, nrows=rows, keep_default_na=False, na_values=[""])
    os.environ["WANDB_MODE"] = "disabled"
    params = build_project(root, frame)
    with chdir(root):
        register.run(evaluated(root, params))
    return root / params.register_.registry_dir


def export(rev: str, dest: Path) -> Path:
    """The code at `rev`, as `git archive` writes it (no worktree, nothing changed in this repository)."""
    dest.mkdir(parents=True)
    archive = subprocess.run(["git", "archive", rev], cwd=PROJECT, capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)
    return dest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.stage_memory", description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=3_000_000)
    parser.add_argument("--before", default="ca0c9b9", help="the commit measured as `before`")
    parser.add_argument("--after", default=None, help="a commit measured as `after` (default: this checkout)")
    parser.add_argument("--train-rows", type=int, default=20_000)
    parser.add_argument("--timeout", type=float, default=0, help="seconds a stage may run (0: no limit)")
    parser.add_argument("--sides", default="before,after", help="which to measure: before, after or both")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        table = generate(tmp / "big.csv", args.rows)
        registry = package(tmp / "package", table, args.train_rows)
        after = export(args.after, tmp / "after") if args.after else PROJECT
        sides = args.sides.split(",")
        codes = {"before": export(args.before, tmp / "before")} if "before" in sides else {}
        codes |= {"after": after} if "after" in sides else {}
        size = table.stat().st_size / 1e6
        print(f"{args.rows:,} rows, {size:.0f} MB CSV; before = {args.before}, after = {args.after or 'this checkout'}")
        heads = ["stage", *(f"{side} {what}" for side in codes for what in ("s", "MiB"))]
        print("".join(f"{h:>24}" for h in heads + (["after/before MiB"] if len(codes) == 2 else [])))
        roots = {label: workspace(tmp / f"ws-{label}", table, code) for label, code in codes.items()}
        scored = ["-m", "tabml.predict", str(table), "scored.csv", "--params", "params.yaml"]
        commands = {stage: ["-m", f"tasks.{stage}"] for stage in STAGES}
        commands["predict"] = [*scored, "--name", "credit", "--registry-dir", str(registry)]
        for stage, command in commands.items():  # each row printed when measured (a 3M run takes many minutes)
            measured = [run_measured(code, roots[label], args.timeout, *command) for label, code in codes.items()]
            cells = [cell for seconds, mib in measured for cell in (seconds, f"{mib:.0f}")]
            ratio = f"{measured[1][1] / measured[0][1]:.2f}" if len(measured) == 2 else ""
            print("".join(f"{c:>24}" for c in (stage, *cells, ratio)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
