"""A real scoring server for tests: `python -m tabml.serve` in a subprocess on a free 127.0.0.1 port, over a
registry copied from tests/fixtures/registry-v0 (never the checkout's), always stopped."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import yaml

from tabml.registry.package import MANIFEST_FILE
from tabml.registry.store import model_dir, promote, publish, read_index
from tests.workspace import EXAMPLE_PARAMS

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "registry-v0"
PROJECT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def serve_params(root: Path, **serve: object) -> Path:
    """The example params with the prediction log under `root` and a fast reload poll."""
    raw = yaml.safe_load(EXAMPLE_PARAMS.read_text())
    raw["serve"].update({"log_dir": str(root / "predictions"), "reload_interval_seconds": 0.2, **serve})
    path = root / "params.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def fixture_registry(root: Path) -> Path:
    """registry-v0's credit line (v1 production) copied under `root`."""
    registry = root / "registry"
    shutil.copytree(FIXTURE / "credit", registry / "credit")
    return registry


def publish_copy(registry: Path, name: str = "credit", of: int = 1) -> int:
    """A new version holding the same files as v`of` (a real publish: new MANIFEST, index entry); its number."""
    source = model_dir(registry, name) / "versions" / f"v{of}"
    files = {p.name: p for p in source.iterdir() if p.name != MANIFEST_FILE}
    metrics = read_index(model_dir(registry, name)).get(of).metrics  # type: ignore[union-attr]
    entry, _, _ = publish(registry, name, files, lambda _: {}, metrics, stage=None, lock_timeout=10)
    return entry.version


def promote_to_production(registry: Path, version: int, name: str = "credit") -> None:
    promote(registry, name, version, lock_timeout=10)


@contextmanager
def running_server(registry: Path, params: Path, *extra: str) -> Iterator[httpx.Client]:
    """The server up (its /ping answers), a client for it; stopped and its log shown on failure."""
    port = free_port()
    log = params.parent / f"serve-{port}.log"
    env = {**os.environ, "PYTHONPATH": str(PROJECT)}
    command = [sys.executable, "-m", "tabml.serve", "--params", str(params), "--registry-dir", str(registry)]
    with log.open("w") as out:
        process = subprocess.Popen([*command, "--port", str(port), *extra], stdout=out, stderr=out, env=env)
    client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30)
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"the server exited with {process.returncode}: {log.read_text()[-2000:]}")
            try:
                if client.get("/ping").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"the server did not answer /ping within 60 s: {log.read_text()[-2000:]}")
            time.sleep(0.1)
        yield client
    finally:
        client.close()
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
