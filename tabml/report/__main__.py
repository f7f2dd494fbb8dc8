"""python -m tabml.report: compare runs on one self-contained HTML page (docs/experiments.md).

python -m tabml.report                      # the last 5 DVC experiments and their baseline commit
python -m tabml.report --last 3
python -m tabml.report --exp lr-3e-3 wide main workspace
python -m tabml.report --registry --last 5  # registered versions of data.name (no ROC/PR curves)
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from tabml.core.errors import StageError
from tabml.core.params import DEFAULT_PARAMS, ParamsError, load_params
from tabml.registry.store import model_dir, read_index
from tabml.report.compare import compare
from tabml.report.html import Link, RunLinks, render
from tabml.report.registry_runs import registry_runs
from tabml.report.runs import Run, RunSelectionError, experiment_runs

DEFAULT_LAST = 5


def _href(target: Path, out_dir: Path) -> str:
    return Path(os.path.relpath(target.resolve(), out_dir.resolve())).as_posix()


def model_link(run: Run, registry_dir: Path, out_dir: Path) -> Link | None:
    """The registry version the run produced, linked only if this registry holds that exact package."""
    record = run.registration or {}
    version, dataset = record.get("version"), run.dataset or record.get("dataset")
    if version is None or not dataset:
        return None
    try:
        entry = read_index(model_dir(registry_dir, dataset)).get(int(version))
    except (StageError, ValueError, TypeError):
        entry = None
    recorded = record.get("manifest_sha256")  # per run: only the workspace's record has it (registration.run.json)
    if entry is None or (recorded is not None and entry.manifest_sha256 != recorded):
        return Link(f"{dataset} v{version} (not in {registry_dir.name}/: registered in another workspace)")
    if recorded is None:
        return Link(f"{dataset} v{version} (this revision does not record which package: see `tabml.registry show`)")
    stage = entry.stage or "no stage"
    return Link(f"{dataset} v{version} ({stage})", _href(model_dir(registry_dir, dataset) / entry.path, out_dir))


def data_docs_link(run: Run, root: Path, out_dir: Path, current_report: dict | None) -> Link | None:
    """validation.json's `data_docs` page; the file on disk is the workspace's, so say when it is not this run's."""
    target = (run.validation or {}).get("data_docs")
    if not target:
        return None
    target = str(target)
    if target.startswith(("http://", "https://")):
        return Link("Data Docs", target)
    path = Path(target) if Path(target).is_absolute() else root / target
    if not path.is_file():
        return Link(f"Data Docs: {target} not found")
    same = current_report is not None and run.validation == current_report
    return Link("Data Docs" if same else "Data Docs (workspace copy)", _href(path, out_dir))


def wandb_link(run: Run) -> Link | None:
    run_id = (run.run_info or {}).get("wandb_run_id")
    return Link(str(run_id)) if run_id else None


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tabml.report", description=__doc__.split("\n")[0])
    pick = parser.add_mutually_exclusive_group()
    pick.add_argument("--last", type=int, metavar="N", help=f"the N newest runs (default {DEFAULT_LAST})")
    pick.add_argument("--exp", nargs="+", metavar="NAME", help="experiments, branches, commits or `workspace`")
    pick.add_argument("--versions", nargs="+", type=int, metavar="N", help="registry versions (with --registry)")
    parser.add_argument("--registry", action="store_true", help="compare registered versions of data.name")
    parser.add_argument("--out", type=Path, default=Path("reports/compare.html"), help="(default: %(default)s)")
    parser.add_argument("--params", type=Path, default=DEFAULT_PARAMS, help="params file (default: params.yaml)")
    parser.add_argument("--title", default=None, help="page title")
    args = parser.parse_args(argv)
    if args.versions and not args.registry:
        parser.error("--versions needs --registry")
    root = args.params.resolve().parent
    try:
        params = load_params(args.params)
        registry_dir = root / params.register_.registry_dir
        if args.registry:
            runs = registry_runs(registry_dir, params.data.name, args.versions, args.last or DEFAULT_LAST)
            source = f"registry {registry_dir / params.data.name}"
        else:
            runs = experiment_runs(root, args.exp, None if args.exp else args.last or DEFAULT_LAST)
            source = f"DVC experiments in {root}"
    except (ParamsError, RunSelectionError) as exc:
        print(f"[report] FAILED: {exc}", file=sys.stderr)
        return 1
    out_dir = args.out.resolve().parent
    out_dir.mkdir(parents=True, exist_ok=True)
    comparison = compare(runs)
    current = _read(root / params.validate_.report)
    links = {
        r.name: RunLinks(model_link(r, registry_dir, out_dir), data_docs_link(r, root, out_dir, current), wandb_link(r))
        for r in runs
    }
    generated = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    title = args.title or f"{params.data.name}: which run is best, and why"
    counted = f"{len(runs)} run{'s' * (len(runs) != 1)}"
    subtitle = f"{counted} from {source} · ranked by test {comparison.primary} · generated {generated}"
    args.out.write_text(render(comparison, links, title=title, subtitle=subtitle))
    print(f"[report] {args.out}: {counted}; {comparison.verdict[0]}")
    return 0


def _read(path: Path) -> dict | None:
    try:
        document = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return document if isinstance(document, dict) else None


if __name__ == "__main__":
    sys.exit(main())
