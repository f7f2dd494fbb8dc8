"""The registry of record in object storage (`register.registry_dir: s3://...`) against a real S3 API server on
loopback (moto): the register stage writes into the bucket, a second workspace that shares only the bucket (its own
cache, no params.yaml) lists, shows, verifies and scores with it, a corrupted object is refused, two writers in two
processes lose no update, and a bucket that cannot be used fails in one line (65 config, 75 network)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
import yaml

from tabml.core.params import load_params
from tasks import register
from tests.registry_project import build_project, evaluated
from tests.s3_server import S3Server, free_port, s3_server
from tests.workspace import EXAMPLE_TABLE

pytestmark = pytest.mark.slow
BUCKET = "tabml-registry"
URL = f"s3://{BUCKET}/models"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    with s3_server(tmp_path_factory.mktemp("s3")) as s3:
        s3.create_bucket(BUCKET)
        yield s3


def env_for(server: S3Server, cache: Path, **extra: str) -> dict[str, str]:
    return {**os.environ, **server.credentials_env(), "AWS_ENDPOINT_URL_S3": server.endpoint,
            "TABML_REGISTRY_CACHE": str(cache), "WANDB_MODE": "disabled", **extra}  # fmt: skip


def cli(cwd: Path, env: dict[str, str], *args: str, url: str = URL) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "tabml.registry", "--registry-dir", url, "--name", "credit", *args]
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


@pytest.fixture
def in_bucket(server: S3Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A credit project whose params.yaml puts the registry in a fresh prefix of the bucket; cwd is its root."""
    root = tmp_path / "project"
    build_project(root)
    raw = yaml.safe_load((root / "params.yaml").read_text())
    raw["register"].update(registry_dir=URL, gto_tags=False)
    (root / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    monkeypatch.chdir(root)
    for key, value in env_for(server, tmp_path / "cache-writer").items():
        monkeypatch.setenv(key, value)
    client = server.client()
    for key in server.keys(BUCKET, "models/"):
        client.delete_object(Bucket=BUCKET, Key=key)
    return root


def test_two_versions_in_a_bucket_are_listed_shown_verified_and_scored_from_a_workspace_sharing_only_it(
    in_bucket: Path, server: S3Server, tmp_path: Path
) -> None:
    params = load_params(in_bucket / "params.yaml")
    register.run(evaluated(in_bucket, params))
    register.run(evaluated(in_bucket, params, features="weak"))
    keys = server.keys(BUCKET, "models/credit/")
    assert {
        "models/credit/index.json",
        "models/credit/events/0000000001.json",
        "models/credit/events/0000000002.json",
    } <= keys
    assert {"models/credit/versions/v1/MANIFEST.json", "models/credit/versions/v2/model.safetensors"} <= keys
    record = json.loads((in_bucket / "reports/registration.json").read_text())
    assert record["registry_path"] == f"{URL}/credit/versions/v2" and not (in_bucket / "models/credit").exists()

    other, env = tmp_path / "elsewhere", env_for(server, tmp_path / "cache-reader")
    other.mkdir()
    listed = cli(other, env, "list")
    assert listed.returncode == 0, listed.stderr
    assert f"credit ({URL}/credit): 2 version(s)" in listed.stdout and "production" in listed.stdout
    shown = cli(other, env, "show", "--version", "2", "--json")
    assert shown.returncode == 0, shown.stderr
    document = json.loads(shown.stdout)
    assert document["verified"] is True and document["version"] == 2 and "model.safetensors" in document["files"]
    verified = cli(other, env, "verify")
    assert verified.returncode == 0 and "verified credit: 2 version(s), production v1" in verified.stdout

    rows = pd.read_csv(EXAMPLE_TABLE).head(20)
    rows.to_csv(other / "new.csv", index=False)
    predict = [
        sys.executable,
        "-m",
        "tabml.predict",
        "new.csv",
        "scored.csv",
        "--registry-dir",
        URL,
        "--name",
        "credit",
    ]
    scored = subprocess.run(predict, cwd=other, env=env, capture_output=True, text=True, timeout=300)
    assert scored.returncode == 0, scored.stderr
    out = pd.read_csv(other / "scored.csv")
    assert len(out) == 20 and set(out["model_version"]) == {1}

    # a corrupted object in the bucket is refused, also by the reader that had verified and cached it
    server.client().put_object(Bucket=BUCKET, Key="models/credit/versions/v1/model.safetensors", Body=b"tampered")
    refused = cli(other, env, "show", "--version", "1")
    assert refused.returncode == 65
    assert "model.safetensors: sha256 does not match MANIFEST.json" in refused.stderr
    again = subprocess.run(predict, cwd=other, env=env, capture_output=True, text=True, timeout=300)
    assert again.returncode == 65 and "sha256 does not match" in again.stderr
    assert cli(other, env_for(server, tmp_path / "cache-fresh"), "verify").returncode == 65


WRITER = """
import sys
from pathlib import Path
from tabml.registry.store import publish
src = Path(sys.argv[1]); src.mkdir(parents=True, exist_ok=True)
for n in range(3):
    (src / "model.safetensors").write_bytes(f"{sys.argv[2]}-{n}".encode() * 100)
    entry, _, _ = publish(sys.argv[3], "credit", {"model.safetensors": src / "model.safetensors"},
                          lambda v: {"lineage.json": {"writer": sys.argv[2]}}, {"auroc": 0.8},
                          stage="production", lock_timeout=120)
    print(entry.version, flush=True)
"""


def test_two_writers_in_two_processes_lose_no_update(server: S3Server, tmp_path: Path) -> None:
    url = f"s3://{BUCKET}/concurrent"
    writers = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, str(tmp_path / f"src-{w}"), w, url],
            env=env_for(server, tmp_path / f"cache-{w}"),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for w in ("a", "b")
    ]
    outputs = [w.communicate(timeout=600) for w in writers]
    assert [w.returncode for w in writers] == [0, 0], [err for _, err in outputs]
    got = sorted(int(v) for out, _ in outputs for v in out.split())
    assert got == [1, 2, 3, 4, 5, 6]  # six distinct versions: no writer took another's number
    env = env_for(server, tmp_path / "cache-check")
    listed = cli(tmp_path, env, "list", url=url)
    assert listed.returncode == 0 and "6 version(s)" in listed.stdout
    assert cli(tmp_path, env, "verify", url=url).returncode == 0  # index == replay of the six events
    events = sorted(k for k in server.keys(BUCKET, "concurrent/credit/events/"))
    assert len(events) == 6 and f"concurrent/credit/{'.lock'}" not in server.keys(BUCKET, "concurrent/")


def test_a_bucket_that_cannot_be_used_fails_in_one_line(server: S3Server, tmp_path: Path) -> None:
    down = cli(
        tmp_path, env_for(server, tmp_path / "c1", AWS_ENDPOINT_URL_S3=f"http://127.0.0.1:{free_port()}"), "list"
    )
    assert down.returncode == 75 and f"{URL}/credit" in down.stderr and "AWS_ENDPOINT_URL" in down.stderr
    no_keys = {k: v for k, v in env_for(server, tmp_path / "c2").items() if not k.startswith("AWS_ACCESS") and
               not k.startswith("AWS_SECRET")}  # fmt: skip
    no_keys |= {"AWS_SHARED_CREDENTIALS_FILE": "/nonexistent", "AWS_CONFIG_FILE": "/nonexistent",
                "AWS_EC2_METADATA_DISABLED": "true"}  # fmt: skip
    missing = cli(tmp_path, no_keys, "list")
    assert missing.returncode == 65 and "no credentials" in missing.stderr and "AWS_ACCESS_KEY_ID" in missing.stderr
    nobucket = cli(tmp_path, env_for(server, tmp_path / "c3"), "list", url="s3://no-such-bucket/x")
    assert nobucket.returncode == 65 and "bucket does not exist" in nobucket.stderr
    for failed in (down, missing, nobucket):
        assert len(failed.stderr.strip().splitlines()) <= 2, failed.stderr  # FAILED line + what to do
