"""A real `dvc exp run -S` grid in a temp workspace: DVC shows and plots it, the report compares it, W&B groups it.

One module-scoped grid (two learning rates, queued, then `--run-all`) feeds every test; it is the slow part.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tabml.tracking import runs as tracking
from tabml.tracking.sync import find_offline_runs
from tests.browser import CHROMIUM, screenshot
from tests.conftest import dvc, make_workspace, sh
from tests.tabml.tracking.fake_wandb import fake_wandb_server

pytestmark = pytest.mark.slow
LEARNING_RATES = ("0.003", "0.01")


@dataclass(frozen=True)
class Grid:
    root: Path
    experiments: dict[str, dict]  # name -> its `dvc exp show --json` data
    seconds: float


@pytest.fixture(scope="module")
def grid(tmp_path_factory: pytest.TempPathFactory) -> Grid:
    root = make_workspace(tmp_path_factory.mktemp("grid") / "ws")
    started = time.perf_counter()
    dvc("exp", "run", "--queue", "-S", f"train.lr={','.join(LEARNING_RATES)}", cwd=root)
    dvc("exp", "run", "--run-all", cwd=root)
    seconds = time.perf_counter() - started
    print(f"\n2-experiment grid ran in {seconds:.0f}s")
    shown = json.loads(dvc("exp", "show", "--json", cwd=root).stdout)
    experiments = {
        rev["name"]: rev["data"]
        for baseline in shown
        for exp in baseline.get("experiments") or []
        for rev in exp["revs"]
    }
    return Grid(root, experiments, seconds)


def test_the_grid_is_two_experiments_with_their_params_and_metrics(grid: Grid) -> None:
    assert len(grid.experiments) == 2
    rates = sorted(str(e["params"]["params.yaml"]["data"]["train"]["lr"]) for e in grid.experiments.values())
    assert rates == sorted(LEARNING_RATES)
    for data in grid.experiments.values():
        assert data["metrics"]["reports/metrics.json"]["data"]["test"]["auroc"] > 0.7


def test_dvc_plots_diff_overlays_the_experiments(grid: Grid) -> None:
    names = sorted(grid.experiments)
    out = dvc("plots", "diff", *names, "--json", cwd=grid.root)
    plots = json.loads(out.stdout)["data"]
    for plot in ("roc", "precision_recall", "training_curves"):
        assert sorted(plots[plot][0]["revisions"]) == names, plot
        assert {row["rev"] for row in plots[plot][0]["content"]["data"]["values"]} == set(names)


def test_queued_experiments_track_into_the_project_one_wandb_run_each_grouped_by_name(grid: Grid) -> None:
    parts = find_offline_runs(grid.root / ".wandb" / "wandb")  # not the deleted temp copies they ran in
    run_ids = {p.run_id for p in parts}
    assert len(run_ids) == 2 and len(parts) >= 6  # train, evaluate, register of each experiment
    env = {**os.environ, "WANDB_API_KEY": "k" * 40}
    with fake_wandb_server() as (url, received):
        command = [sys.executable, "-m", "tabml.tracking.sync"]
        sync = subprocess.run(
            command, cwd=grid.root, env={**env, "WANDB_BASE_URL": url}, capture_output=True, text=True
        )
        assert sync.returncode == 0, sync.stdout + sync.stderr
        groups = {
            v["name"]: v.get("groupName") for op, v in received.graphql if op == "UpsertBucket" and v.get("groupName")
        }
    assert set(groups) == run_ids
    assert set(groups.values()) == set(grid.experiments)  # W&B group = the DVC experiment's name


def test_the_report_compares_the_grid_on_one_page(grid: Grid, tmp_path: Path) -> None:
    out = tmp_path / "compare.html"
    command = [sys.executable, "-m", "tabml.report", "--last", "2", "--out", str(out)]
    proc = subprocess.run(command, cwd=grid.root, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    best = max(
        grid.experiments, key=lambda n: grid.experiments[n]["metrics"]["reports/metrics.json"]["data"]["test"]["auroc"]
    )
    assert f"Best: {best}, test auroc" in proc.stdout
    html = out.read_text()
    assert all(f'<tr data-run="{name}"' in html for name in grid.experiments)
    assert "<code>train.lr</code>" in html and html.count("<svg") >= 5  # curves of both runs
    for data in grid.experiments.values():  # `dvc exp run` registers nothing unless register.in_experiments
        shown = sh("git", "show", f"{data['rev']}:reports/registration.json", cwd=grid.root).stdout
        assert json.loads(shown)["version"] is None and "in_experiments" in json.loads(shown)["skipped"]
    if CHROMIUM is not None:
        screenshot(out, tmp_path / "compare.png", 1400, 2000)


def test_an_unknown_experiment_name_fails_the_report_with_the_names_that_exist(grid: Grid) -> None:
    command = [sys.executable, "-m", "tabml.report", "--exp", "no-such-exp"]
    proc = subprocess.run(command, cwd=grid.root, capture_output=True, text=True)
    assert proc.returncode == 1
    assert "no experiment or revision named 'no-such-exp'" in proc.stderr
    assert all(name in proc.stderr for name in grid.experiments)


@pytest.fixture(params=["own service", "parent's service"])
def wandb_service(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[dict[str, str]]:
    """The stage's environment without WANDB_SERVICE, or with this process's running wandb-core service in it
    (what a stage inherits when its parent used wandb): a failed online stream stays registered there."""
    import wandb

    if request.param == "own service":
        yield {key: value for key, value in os.environ.items() if key != tracking.SHARED_SERVICE_ENV}
        return
    run = wandb.init(project="parent", dir=str(tmp_path), mode="offline", settings=wandb.Settings(silent=True))
    run.finish()
    try:
        assert tracking.SHARED_SERVICE_ENV in os.environ
        yield dict(os.environ)
    finally:
        wandb.teardown()
        os.environ.pop(tracking.SHARED_SERVICE_ENV, None)


def test_a_stage_still_succeeds_quickly_when_wandb_is_online_but_unreachable(
    grid: Grid, wandb_service: dict[str, str]
) -> None:
    name = sorted(grid.experiments)[0]
    dvc("exp", "apply", name, cwd=grid.root)  # its outputs into the workspace, for evaluate to read
    offline = grid.root / ".wandb" / "wandb"
    before = {run.path for run in find_offline_runs(offline)}
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    env = {
        **wandb_service,
        "WANDB_MODE": "online",
        "WANDB_BASE_URL": f"http://127.0.0.1:{closed}",
        "WANDB_API_KEY": "k" * 40,
        tracking.INIT_TIMEOUT_ENV: "3",
    }
    proc = subprocess.run(
        [sys.executable, "-m", "tasks.evaluate"], cwd=grid.root, env=env, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr
    assert "test auroc=" in proc.stdout
    waits = [float(w) for w in re.findall(r"W&B online run could not start after ([\d.]+)s", proc.stderr)]
    # one online attempt, given up after about WANDB_INIT_TIMEOUT (3 s), not the default 30 s; then offline
    assert len(waits) == 1 and waits[0] < tracking.INIT_TIMEOUT_SECONDS / 2, proc.stderr
    # the experiment's model folder came from DVC without its per-run facts (models/train.run.json), so evaluate
    # tracks under a run of its own: it is there, offline, after the online attempt gave up
    assert [run for run in find_offline_runs(offline) if run.path not in before], proc.stderr


def readme_exp_show() -> list[str]:
    """The `dvc exp show` line of the README, as arguments."""
    import shlex

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    (line,) = [line for line in readme.splitlines() if line.startswith("dvc exp show --only-changed")]
    return shlex.split(line.split("  #")[0])[1:]  # without "dvc"


def test_the_readmes_exp_show_fits_120_columns_and_shows_the_changed_param_and_the_test_auroc(grid: Grid) -> None:
    for extra in ([], ["--md"]):
        command = [sys.executable, "-m", "dvc", *readme_exp_show(), "--no-pager", *extra]
        env = {**os.environ, "COLUMNS": "120"}  # a 120-column terminal
        proc = subprocess.run(command, cwd=grid.root, env=env, capture_output=True, text=True, check=True)
        lines = proc.stdout.splitlines()
        assert max(len(line) for line in lines) <= 120, proc.stdout
        header = next(line for line in lines if "Experiment" in line)
        assert "train.lr" in header and "test.auroc" in header, proc.stdout
        assert all(rate in proc.stdout for rate in LEARNING_RATES)
