"""Online scoring: `python -m tabml.serve` against `mlflow models serve` on the same network and the same rows.

    python -m bench.serving --mlflow-python /work/bench-venv/bin/python [--seconds 15] [--requests 3000]

Both servers get the same MLflow `/invocations` body (`dataframe_split`, one row per request), from a load
generator in its own process (loopback, keep-alive connections, one thread per concurrent client), bounded by
a request count and a time per level, at concurrency 1, 8 and 64. Printed: requests/s, p50 and p99 latency and
errors per server and level, and the ratios; the two servers' answers on the rows are compared first (1e-6).
The model is the production version of `--name` in `--registry-dir` (default: the fixture line the tests use,
copied to a temporary folder). mlflow lives in its own venv (`--mlflow-python`); without it only ours is run.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd

PROJECT = Path(__file__).resolve().parents[1]
FIXTURE = PROJECT / "tests" / "fixtures" / "registry-v0"
LEVELS = (1, 8, 64)


def split_body(rows: pd.DataFrame) -> bytes:
    data = rows.astype(object).where(rows.notna(), None).values.tolist()
    return json.dumps({"dataframe_split": {"columns": list(rows.columns), "data": data}}).encode()


def load(port: int, bodies: list[bytes], concurrency: int, requests: int, seconds: float) -> dict[str, float]:
    """The load generator (run in its own process): `requests` POSTs at most, for `seconds` at most."""
    latencies: list[float] = []
    errors, lock, issued = [0], threading.Lock(), [0]
    deadline = time.monotonic() + seconds

    def client(k: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        i = k
        while time.monotonic() < deadline:
            with lock:
                if issued[0] >= requests:
                    return
                issued[0] += 1
            body = bodies[i % len(bodies)]
            i += concurrency
            start = time.perf_counter()
            try:
                conn.request("POST", "/invocations", body, {"Content-Type": "application/json"})
                response = conn.getresponse()
                response.read()
                ok = response.status == 200
            except (OSError, http.client.HTTPException):
                ok = False
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            elapsed = time.perf_counter() - start
            with lock:
                latencies.append(elapsed) if ok else None
                errors[0] += 0 if ok else 1
        conn.close()

    started = time.perf_counter()
    threads = [threading.Thread(target=client, args=(k,)) for k in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - started
    ms = np.asarray(latencies) * 1000
    return {
        "requests": len(latencies) + errors[0],
        "rps": len(latencies) / wall,
        "p50_ms": float(np.percentile(ms, 50)) if len(ms) else float("nan"),
        "p99_ms": float(np.percentile(ms, 99)) if len(ms) else float("nan"),
        "errors": errors[0],
    }


def wait_for(port: int, process: subprocess.Popen[bytes], log: Path, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"the server on port {port} exited: {log.read_text()[-2000:]}")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/ping")
            if conn.getresponse().status == 200:
                return
        except OSError:
            pass
        time.sleep(0.5)
    raise SystemExit(f"the server on port {port} did not answer /ping within {timeout:g} s: {log.read_text()[-2000:]}")


@contextmanager
def server(command: list[str], port: int, log: Path, env: dict[str, str]) -> Iterator[None]:
    with log.open("wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    try:
        wait_for(port, process, log)
        yield
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def answers(port: int, rows: pd.DataFrame) -> np.ndarray:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    conn.request("POST", "/invocations", split_body(rows), {"Content-Type": "application/json"})
    body = json.loads(conn.getresponse().read())
    frame = pd.DataFrame(body["predictions"])
    return frame[[c for c in frame.columns if c.startswith("proba_") or c == "prediction"]].iloc[:, -1].to_numpy()


def run_levels(port: int, bodies_file: Path, args: argparse.Namespace) -> dict[int, dict[str, float]]:
    """Each concurrency level in a fresh load-generator process."""
    results = {}
    for level in LEVELS:
        command = [sys.executable, "-m", "bench.serving", "loadgen", "--port", str(port), "--bodies", str(bodies_file)]
        command += ["--concurrency", str(level), "--requests", str(args.requests), "--seconds", str(args.seconds)]
        done = subprocess.run(command, capture_output=True, text=True, cwd=PROJECT, check=True)
        results[level] = json.loads(done.stdout.strip().splitlines()[-1])
    return results


def production_package(registry: Path, name: str) -> Path:
    from tabml.registry.store import load_package

    return load_package(registry, name).path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.serving", description=__doc__.split("\n")[0])
    parser.add_argument("mode", nargs="?", choices=["bench", "loadgen"], default="bench")
    parser.add_argument("--mlflow-python", type=Path, help="python of a venv with mlflow (and torch) installed")
    parser.add_argument("--registry-dir", type=Path)
    parser.add_argument("--name", default="credit")
    parser.add_argument("--rows", type=Path, help="CSV of rows to send (default: the fixture's 60 rows)")
    parser.add_argument("--requests", type=int, default=3000, help="per level at most")
    parser.add_argument("--seconds", type=float, default=15, help="per level at most")
    parser.add_argument("--port", type=int)
    parser.add_argument("--bodies", type=Path)
    parser.add_argument("--concurrency", type=int, default=1)
    args = parser.parse_args(argv)
    if args.mode == "loadgen":
        bodies = [line.encode() for line in args.bodies.read_text().splitlines() if line]
        print(json.dumps(load(args.port, bodies, args.concurrency, args.requests, args.seconds)))
        return 0
    return bench(args)


def bench(args: argparse.Namespace) -> int:
    from tabml.core.env import quiet_telemetry

    quiet_telemetry()
    tmp = Path(tempfile.mkdtemp(prefix="tabml-bench-serving-"))
    try:
        registry = args.registry_dir
        if registry is None:
            registry = tmp / "registry"
            shutil.copytree(FIXTURE / "credit", registry / "credit")
        rows = pd.read_csv(args.rows or FIXTURE / "rows.csv")
        bodies_file = tmp / "bodies.jsonl"
        bodies_file.write_text("\n".join(split_body(rows.iloc[[i]]).decode() for i in range(len(rows))) + "\n")
        env = {**os.environ, "PYTHONPATH": str(PROJECT)}
        results: dict[str, dict[int, dict[str, float]]] = {}
        ours = free_port()
        serve = [sys.executable, "-m", "tabml.serve", "--registry-dir", str(registry), "--name", args.name]
        serve += ["--port", str(ours), "--log-dir", str(tmp / "predictions"), "--params", str(PROJECT / "params.yaml")]
        with server(serve, ours, tmp / "tabml.log", env):
            ours_scores = answers(ours, rows)
            results["tabml.serve"] = run_levels(ours, bodies_file, args)
        if args.mlflow_python:
            model_dir = tmp / "mlflow-model"
            save = [str(args.mlflow_python), str(PROJECT / "bench" / "mlflow_pyfunc.py"), "save", str(model_dir)]
            subprocess.run([*save, str(production_package(registry, args.name))], env=env, check=True, cwd=tmp)
            theirs = free_port()
            mlflow = [str(args.mlflow_python), "-m", "mlflow", "models", "serve", "-m", str(model_dir)]
            mlflow += ["-h", "127.0.0.1", "-p", str(theirs), "--env-manager", "local", "-w", "1"]
            venv_bin = str(args.mlflow_python.parent)  # mlflow starts `uvicorn` from PATH: the venv's own
            with server(mlflow, theirs, tmp / "mlflow.log", {**env, "PATH": f"{venv_bin}:{env['PATH']}"}):
                diff = np.max(np.abs(answers(theirs, rows).astype(float) - ours_scores.astype(float)))
                print(f"answers on {len(rows)} rows: max |tabml - mlflow| = {diff:.2e}")
                results["mlflow models serve"] = run_levels(theirs, bodies_file, args)
        report(results)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


def report(results: dict[str, dict[int, dict[str, float]]]) -> None:
    print(f"\n{'server':<20} {'c':>3} {'requests':>9} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7}")
    for name, levels in results.items():
        for level, r in levels.items():
            print(
                f"{name:<20} {level:>3} {r['requests']:>9.0f} {r['rps']:>9.1f} {r['p50_ms']:>8.2f} "
                f"{r['p99_ms']:>8.2f} {r['errors']:>7.0f}"
            )
    if len(results) == 2:
        ours, theirs = results["tabml.serve"], results["mlflow models serve"]
        for level in LEVELS:
            ratio = ours[level]["rps"] / theirs[level]["rps"]
            p99 = f"p99 {ours[level]['p99_ms']:.1f} ms vs {theirs[level]['p99_ms']:.1f} ms"
            print(f"c={level}: throughput {ratio:.2f}x mlflow's, {p99}")


if __name__ == "__main__":
    raise SystemExit(main())
