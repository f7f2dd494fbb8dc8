"""Wall time and peak RSS of ingest, validate, preprocess and batch predict on a big landing CSV, before and after.

The CSV has the example table's columns (its rows resampled with noise, written in chunks). `before` is the code at
`--before` (default ca0c9b9, the commit before batched reading), exported with `git archive` into a temporary folder;
`after` is this checkout. Each stage runs as `python -m tasks.<stage> --params params.yaml` in its own workspace,
in a child process whose descendants' peak RSS (`ru_maxrss`) is reported. predict scores the same CSV with one
package (a linear model on 20,000 rows of the same table, registered by the real register stage) under each code.

    python -m bench.stage_memory [--rows 3000000]    # the issue's case (about 200 MB); --rows 1000000 is quicker
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
import json, resource, subprocess, sys, time
start = time.perf_counter()
proc = subprocess.run(sys.argv[1:], capture_output=True, text=True)
usage = resource.getrusage(resource.RUSAGE_CHILDREN)
print(json.dumps({"rc": proc.returncode, "seconds": time.perf_counter() - start, "peak_mib": usage.ru_maxrss / 1024,
                  "tail": (proc.stdout + proc.stderr)[-2000:]}))
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


def workspace(root: Path, table: Path) -> Path:
    """A folder with the example params, pointed at `table`; predict only warns (ranges and nulls of a resampled
    table may drift a little) and keeps no prediction log."""
    from tests.workspace import EXAMPLE_PARAMS

    raw = yaml.safe_load(EXAMPLE_PARAMS.read_text())
    raw["data"]["path"] = str(table)
    raw["predict"]["checks"] = dict.fromkeys(raw["predict"]["checks"], "warn")
    raw["serve"]["log_sample_rate"] = 0.0
    root.mkdir(parents=True)
    (root / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    return root


def run_measured(code: Path, cwd: Path, *args: str) -> tuple[float, float]:
    """Wall seconds and peak RSS (MiB) of `python ARGS` run with `code` first on the path."""
    env = {**os.environ, "PYTHONPATH": str(code), "WANDB_MODE": "disabled"}
    command = [sys.executable, "-c", MEASURE, sys.executable, *args]
    proc = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, check=True)
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    if result["rc"] != 0:
        raise RuntimeError(f"{args} under {code} failed:\n{result['tail']}")
    return result["seconds"], result["peak_mib"]


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
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        table = generate(tmp / "big.csv", args.rows)
        registry = package(tmp / "package", table, args.train_rows)
        after = export(args.after, tmp / "after") if args.after else PROJECT
        codes = {"before": export(args.before, tmp / "before"), "after": after}
        size = table.stat().st_size / 1e6
        print(f"{args.rows:,} rows, {size:.0f} MB CSV; before = {args.before}, after = {args.after or 'this checkout'}")
        print(f"{'stage':<12}{'before s':>10}{'after s':>10}{'before MiB':>12}{'after MiB':>12}{'after/before':>14}")
        roots = {label: workspace(tmp / f"ws-{label}", table) for label in codes}
        scored = ["-m", "tabml.predict", str(table), "scored.csv", "--params", "params.yaml"]
        commands = {stage: ["-m", f"tasks.{stage}"] for stage in STAGES}
        commands["predict"] = [*scored, "--name", "credit", "--registry-dir", str(registry)]
        for stage, command in commands.items():  # each row printed when measured (a 3M run takes many minutes)
            (bs, bm), (as_, am) = (run_measured(code, roots[label], *command) for label, code in codes.items())
            print(f"{stage:<12}{bs:>10.1f}{as_:>10.1f}{bm:>12.0f}{am:>12.0f}{am / bm:>14.2f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
