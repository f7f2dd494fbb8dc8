"""What the Prefect flow costs on top of DVC, on a fully cached pipeline, against a running local Prefect server.

Baselines side by side in one process, on one workspace where every stage is up to date:
  - `dvc repro` no-op, as a user runs it (a new process) and in-process (`Repo.reproduce()`, imports warm);
  - the flow (`training_pipeline`), in-process and as `python -m flows.pipeline`; goal <= 1.5x `dvc repro`
    in-process, the two timed in turns (a busy machine's drift then hits both sides alike)
    (flow-run heartbeats off, as `python -m flows.pipeline` runs it; with them on, as a deployment run does);
  - per stage: a bare `reproduce_stage` on an up-to-date stage, the same wrapped in a Prefect task, an empty
    flow run, and the one-pass status check (`plan_pipeline`) that spares up-to-date stages their tasks;
  - the previous design (one task per stage, each opening DVC) for comparison.

Run: `python -m bench.orchestration_overhead [--repeats 5]`. Setup (a cold `dvc repro` and a server start) takes
a few minutes; the figures are medians.
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import chdir, contextmanager, suppress
from pathlib import Path

from tabml.core.env import quiet_telemetry
from tests.workspace import copy_pipeline, init_repo, run

PROJECT = Path(__file__).resolve().parents[1]


def median_seconds(fn: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def interleaved_medians(a: Callable[[], object], b: Callable[[], object], repeats: int) -> tuple[float, float]:
    """Medians of `a` and `b` timed in turns (a, b, a, b, ...): a loaded machine's drift hits both sides alike."""
    times_a: list[float] = []
    times_b: list[float] = []
    for _ in range(repeats):
        for fn, times in ((a, times_a), (b, times_b)):
            start = time.perf_counter()
            fn()
            times.append(time.perf_counter() - start)
    return statistics.median(times_a), statistics.median(times_b)


def cached_workspace(tmp: Path) -> Path:
    """The project's pipeline, as committed, in a fresh git + DVC repo, run once so every stage is up to date."""
    root = copy_pipeline(PROJECT, tmp / "ws")
    init_repo(root, tmp / "remote")
    run(sys.executable, "-m", "dvc", "repro", cwd=root)
    return root


@contextmanager
def prefect_server(home: Path) -> Iterator[str]:
    """`prefect server start` on a free loopback port with its own SQLite; stopped (process group) on exit."""
    import signal
    import socket

    import httpx

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {**os.environ, "PREFECT_HOME": str(home), "PREFECT_UI_ENABLED": "false"}
    env.pop("PREFECT_API_URL", None)
    args = [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port", str(port)]
    with (home / "server.log").open("wb") as log:
        proc = subprocess.Popen(args, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    api = f"http://127.0.0.1:{port}/api"
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            with suppress(httpx.HTTPError):
                if httpx.get(f"{api}/health", timeout=2).status_code == 200:
                    break
            time.sleep(0.5)
        else:
            raise RuntimeError(f"Prefect server did not start:\n{(home / 'server.log').read_text()[-2000:]}")
        yield api
    finally:
        with suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)


def measure(root: Path, api: str, repeats: int) -> dict[str, float]:
    from dvc.repo import Repo
    from prefect import flow
    from prefect.settings import PREFECT_API_URL, PREFECT_LOGGING_LEVEL, temporary_settings

    from flows.pipeline import manual_run_settings, run_stage, training_pipeline
    from tabml.core.dag import stage_order
    from tabml.orchestration.dvc_stages import plan_pipeline, reproduce_stage

    stages = stage_order(root)
    last = stages[-1]

    def dvc_repro_in_process() -> None:
        with chdir(root), Repo(str(root)) as repo:
            repo.reproduce()

    @flow(name="bench-empty")
    def empty_flow() -> None:
        return None

    @flow(name="bench-one-stage")
    def one_stage_task() -> None:
        run_stage(str(root), last, False, {})

    @flow(name="bench-task-per-stage")
    def task_per_stage() -> None:  # the design before the status check: every stage a task opening DVC
        for name in stages:
            run_stage.with_options(name=name)(str(root), name, False, {})

    logging.getLogger("dvc").setLevel(logging.WARNING)  # "Stage 'x' didn't change, skipping" x many
    figures: dict[str, float] = {}
    figures["dvc repro (new process)"] = median_seconds(
        lambda: run(sys.executable, "-m", "dvc", "repro", cwd=root), repeats
    )
    dvc_repro_in_process()  # warm imports and the state db
    figures["dvc repro (in-process)"] = median_seconds(dvc_repro_in_process, repeats)
    figures["reproduce_stage, bare"] = median_seconds(lambda: reproduce_stage(root, last), repeats)
    figures["plan_pipeline (all stages)"] = median_seconds(lambda: plan_pipeline(root), repeats)
    pipeline = lambda: training_pipeline(root=str(root))  # noqa: E731
    with temporary_settings({PREFECT_API_URL: api, PREFECT_LOGGING_LEVEL: "WARNING"}):
        pipeline()  # warm: flow and task registration, API client
        figures["training_pipeline, heartbeats on"] = median_seconds(pipeline, repeats)  # as a deployment run
        with manual_run_settings():  # as `python -m flows.pipeline` / `make run`
            figures["empty flow run"] = median_seconds(empty_flow, repeats)
            figures["flow with one stage task"] = median_seconds(one_stage_task, repeats)
            figures["flow, task per stage (before)"] = median_seconds(task_per_stage, repeats)
            # the headline ratio: both sides in turns, twice the repeats
            dvc_side, flow_side = interleaved_medians(dvc_repro_in_process, pipeline, 2 * repeats)
            figures["dvc repro (in-process, in turns)"] = dvc_side
            figures["training_pipeline (in-process)"] = flow_side
    env = {**os.environ, "PREFECT_API_URL": api}
    command = [sys.executable, "-m", "flows.pipeline", "--root", str(root)]
    figures["python -m flows.pipeline"] = median_seconds(
        lambda: subprocess.run(command, env=env, capture_output=True, check=True), max(1, repeats // 2)
    )
    return figures


def report(figures: dict[str, float], n_stages: int) -> None:
    print(f"{'':36} seconds")
    for name, seconds in figures.items():
        print(f"{name:36} {seconds:7.3f}")
    in_process = figures["training_pipeline (in-process)"] / figures["dvc repro (in-process, in turns)"]
    cli = figures["python -m flows.pipeline"] / figures["dvc repro (new process)"]
    before = figures["flow, task per stage (before)"] / figures["dvc repro (in-process)"]
    task = figures["flow with one stage task"] - figures["empty flow run"] - figures["reproduce_stage, bare"]
    check, bare = figures["plan_pipeline (all stages)"] / n_stages, figures["reproduce_stage, bare"]
    print()
    print(f"flow / dvc repro, in-process:    {in_process:5.2f}x  (timed in turns; goal <= 1.5x)")
    print(f"task per stage / dvc repro:      {before:5.2f}x  (the design before the status check)")
    print(f"flow / dvc repro, as commands:   {cli:5.2f}x  (the flow's process also imports Prefect)")
    print(f"per stage: Prefect task          {task * 1000:6.0f} ms  (paid only by a stage that has to run)")
    print(f"per stage: status check          {check * 1000:6.0f} ms  (one DVC pass for all stages)")
    print(f"per stage: bare DVC single-item  {bare * 1000:6.0f} ms  (opens DVC each time)")
    print(f"per run:   empty flow run        {figures['empty flow run'] * 1000:6.0f} ms  (create, run, complete)")
    heartbeat = figures["training_pipeline, heartbeats on"] - figures["training_pipeline (in-process)"]
    print(f"per run:   heartbeat thread join {heartbeat * 1000:6.0f} ms  (deployment runs keep heartbeats)")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.orchestration_overhead", description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    quiet_telemetry()
    os.environ.setdefault("WANDB_MODE", "offline")
    os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"  # `python` in dvc.yaml
    with tempfile.TemporaryDirectory(prefix="tabml-bench-") as tmp:
        os.environ["DVC_SITE_CACHE_DIR"] = str(Path(tmp) / "site-cache")
        os.environ["PREFECT_HOME"] = str(Path(tmp) / "prefect-client")  # before Prefect is imported
        root = cached_workspace(Path(tmp))
        home = Path(tmp) / "prefect"
        home.mkdir()
        with prefect_server(home) as api:
            from tabml.core.dag import stage_order

            figures = measure(root, api, args.repeats)
            report(figures, len(stage_order(root)))


if __name__ == "__main__":
    main()
