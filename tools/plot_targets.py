"""The dvc.yaml plots this workspace has rows for, as `dvc plots show` targets: `make plots` shows exactly those.

dvc.yaml declares every task's plots; a binary run writes no residuals, a table without `evaluate.slices` no
slices. A plot whose rows file is missing or holds no rows is left out, so nothing fails to load and no chart is
empty. Usage: `python -m tools.plot_targets [--root .]` prints the plot ids, one per line.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

import yaml


def has_rows(path: Path) -> bool:
    """A JSON list with an entry, or a CSV with a row after its header."""
    if not path.is_file():
        return False
    if path.suffix == ".csv":
        with path.open(newline="") as fh:
            return sum(1 for _ in csv.reader(fh)) > 1
    try:
        rows = json.loads(path.read_text())
    except ValueError:
        return False
    return isinstance(rows, list) and bool(rows)


def plot_targets(root: Path) -> list[str]:
    """Ids of dvc.yaml's top-level plots whose every rows file has rows, in dvc.yaml's order."""
    plots = (yaml.safe_load((root / "dvc.yaml").read_text()) or {}).get("plots") or []
    targets = []
    for entry in plots:
        if not isinstance(entry, dict):
            continue
        for plot_id, spec in entry.items():
            files = list((spec or {}).get("y") or {}) if isinstance((spec or {}).get("y"), dict) else [plot_id]
            if files and all(has_rows(root / name) for name in files):
                targets.append(str(plot_id))
    return targets


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.plot_targets", description=__doc__.split("\n")[0])
    parser.add_argument("--root", type=Path, default=Path("."))
    args = parser.parse_args(argv)
    targets = plot_targets(args.root)
    if not targets:
        print("no plot has rows yet: run the pipeline first (make run)", file=sys.stderr)
        return 65
    print("\n".join(targets))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
