"""A real S3 API on loopback for tests and benchmarks: moto's standalone server as a subprocess.

`s3_server()` starts `python -m moto.server` on a free 127.0.0.1 port in its own session and stops it (its whole
process group) on exit. `use_s3_remote` switches a workspace's DVC remote to a bucket on it by configuration
only: `dvc remote add -d`, `dvc remote modify endpointurl`; the credentials stay in the environment
(AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY), never in .dvc/config.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

from tests.workspace import run, stop_process_group

STARTUP_TIMEOUT_SECONDS = 60
REMOTE_NAME = "s3remote"


@dataclass(frozen=True)
class S3Server:
    endpoint: str  # http://127.0.0.1:<port>
    log: Path
    # made up per server, so a test can look for them everywhere a run writes and find them nowhere
    access_key: str = field(default_factory=lambda: f"AKIATABML{uuid.uuid4().hex[:11].upper()}")
    secret_key: str = field(default_factory=lambda: f"tabml-secret-{uuid.uuid4().hex}")

    def credentials_env(self) -> dict[str, str]:
        """What a process needs to reach the bucket: credentials in the environment only."""
        return {
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "AWS_DEFAULT_REGION": "us-east-1",
        }

    def client(self):  # type: ignore[no-untyped-def]
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            region_name="us-east-1",
        )

    def create_bucket(self, name: str) -> str:
        self.client().create_bucket(Bucket=name)
        return name

    def keys(self, bucket: str, prefix: str = "") -> set[str]:
        """Every object key under `prefix` in `bucket`."""
        pages = self.client().get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        return {obj["Key"] for page in pages for obj in page.get("Contents", [])}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def s3_server(log_dir: Path) -> Iterator[S3Server]:
    """moto's S3 server on a free loopback port, stopped with everything it started on exit."""
    port = free_port()
    log = log_dir / "moto-server.log"
    server = S3Server(endpoint=f"http://127.0.0.1:{port}", log=log)
    args = [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)]
    with log.open("wb") as out:
        proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        _wait_until_up(server, proc)
        yield server
    finally:
        stop_process_group(proc, grace_seconds=10)


def _wait_until_up(server: S3Server, proc: subprocess.Popen[bytes]) -> None:
    import httpx

    deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
    while True:
        with suppress(httpx.HTTPError):
            if httpx.get(f"{server.endpoint}/moto-api/", timeout=2).status_code < 500:
                return
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"moto server did not start on {server.endpoint}:\n{server.log.read_text()[-3000:]}")
        time.sleep(0.3)


def use_s3_remote(root: Path, server: S3Server, bucket: str, prefix: str = "dvcstore") -> str:
    """Make `s3://bucket/prefix` on `server` the default DVC remote of `root` (config only); returns the URL."""
    url = f"s3://{bucket}/{prefix}"
    dvc = (sys.executable, "-m", "dvc")
    run(*dvc, "remote", "add", "-d", "-f", REMOTE_NAME, url, cwd=root)
    run(*dvc, "remote", "modify", REMOTE_NAME, "endpointurl", server.endpoint, cwd=root)
    return url
