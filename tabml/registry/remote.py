"""The registry in object storage (`register.registry_dir: s3://bucket/prefix`): a local mirror per model line.

Every registry function works on a folder; for a bucket that folder is a mirror under the cache
(`TABML_REGISTRY_CACHE`, default `$XDG_CACHE_HOME/tabml/registry/<sha of the URL>/<name>/`), marked with
`.remote.json`. Readers `pull` it first (index.json, the event objects, each version's MANIFEST.json; a package's
other files only when it is loaded, then verified against its MANIFEST as for a local folder). Writers hold the
line's lock object, pull, write the mirror with the local code, and `push` what changed in commit order: a new
version's objects (each read back and checked against its sha256, MANIFEST.json last), then one object per new
event (`events/<seq>.json`, created with `If-None-Match: *`: the commit point, and a fence should a lease have
expired), then index.json (`If-Match` the ETag read). A crash at any point leaves what a crash leaves locally: an
orphan folder (skipped) or an index behind the log (rebuilt). Credentials and endpoint come from the environment
or the AWS config only (`AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY` or `AWS_PROFILE`; `AWS_ENDPOINT_URL_S3` or
`AWS_ENDPOINT_URL` for MinIO or moto).

Object layout under `s3://bucket/prefix/<name>/`: `index.json`, `events/<seq:010d>.json` (one line of
events.jsonl each), `versions/v<N>/<file>`, `.lock` (`{"owner", "expires_at"}`: created with `If-None-Match: *`,
deleted with `If-Match`; a holder that died is replaced once its lease of LEASE_SECONDS has run out).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import socket
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from tabml.core.errors import TransientError
from tabml.core.files import write_json_atomic
from tabml.registry.events import EVENTS_FILE, read_events
from tabml.registry.index import RegistryBusy, RegistryError
from tabml.registry.package import MANIFEST_FILE, SIGNATURE_FILE

CACHE_ENV = "TABML_REGISTRY_CACHE"
MARKER = ".remote.json"  # in a mirror folder: {"url": ..., "etags": {key: etag}}
LOCK_OBJECT = ".lock"
LEASE_SECONDS = 900.0  # longer than any registration holds the lock (build, log, GTO tags)
EVENT_KEY = re.compile(r"^events/([0-9]{10})\.json$")
VERSION_KEY = re.compile(r"^versions/(v[0-9]+)/([^/]+)$")
S3_URL = re.compile(r"^s3:/+([^/]+)/*(.*?)/*$")  # Path() folds `s3://` to `s3:/`
SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]+:/")
CONFIG_TODO = (
    "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or AWS_PROFILE) in the environment, and AWS_ENDPOINT_URL_S3 "
    "for a store that is not AWS (MinIO, moto)"
)


class RegistryUnreachable(TransientError, RegistryError):
    """The bucket did not answer (network, endpoint down): a rerun may succeed."""


def registry_url(registry_dir: Path | str) -> str | None:
    """`s3://bucket/prefix` when `registry_dir` names a bucket, None for a local folder; other schemes refused."""
    text = str(registry_dir)
    found = S3_URL.match(text)
    if found:
        return f"s3://{found[1]}" + (f"/{found[2]}" if found[2] else "")
    if SCHEME.match(text):
        raise RegistryError(f"unsupported registry URL {text!r}", "register.registry_dir", "use a folder or s3://...")
    return None


def mirror_dir(url: str, name: str) -> Path:
    """The local mirror of the model line `url/name` (created, and marked, on first use)."""
    base = os.environ.get(CACHE_ENV) or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "tabml"
    root = Path(base) / "registry" if not os.environ.get(CACHE_ENV) else Path(base)
    mdir = root / hashlib.sha256(url.encode()).hexdigest()[:16] / name
    if not (mdir / MARKER).is_file():
        mdir.mkdir(parents=True, exist_ok=True)
        write_json_atomic(mdir / MARKER, {"url": url, "etags": {}})
    return mdir


def _marker(mdir: Path) -> dict[str, Any]:
    return json.loads((mdir / MARKER).read_text())


def line_url(mdir: Path) -> str | None:
    """`s3://bucket/prefix/<name>` for a mirror folder, None for a local registry."""
    marker = Path(mdir) / MARKER
    return f"{json.loads(marker.read_text())['url']}/{Path(mdir).name}" if marker.is_file() else None


@contextmanager
def _errors(url: str) -> Iterator[None]:
    """Map the storage client's failures to one line naming the URL and what to set (65 config, 75 network)."""
    from botocore.exceptions import (
        ConnectionError,
        EndpointConnectionError,
        NoCredentialsError,
        PartialCredentialsError,
    )

    try:
        yield
    except (NoCredentialsError, PartialCredentialsError):
        raise RegistryError("no credentials for the registry's bucket", url, CONFIG_TODO) from None
    except PermissionError as exc:
        raise RegistryError(f"access to the registry's bucket refused ({exc})", url, CONFIG_TODO) from None
    except (EndpointConnectionError, ConnectionError, TimeoutError) as exc:
        todo = "check the network and AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL, then rerun"
        raise RegistryUnreachable(f"cannot reach the registry's bucket ({exc})", url, todo) from None


def _fs() -> Any:
    import s3fs

    # fresh client, no listings cache: a cached one may hold an old endpoint and hide another writer's objects
    kw = {"config_kwargs": {"connect_timeout": 10, "retries": {"max_attempts": 3}}}
    return s3fs.S3FileSystem(skip_instance_cache=True, use_listings_cache=False, **kw)


def _key(url: str) -> str:
    return url.removeprefix("s3://")


def _split(key: str) -> tuple[str, str]:
    bucket, _, path = key.partition("/")
    return bucket, path


def _listing(fs: Any, url: str) -> dict[str, dict[str, Any]]:
    """Key (relative to the line) -> object info; a missing bucket is refused."""
    base, missing = (
        _key(url),
        RegistryError("the registry's bucket does not exist", url, "create it, or fix register.registry_dir"),
    )
    try:
        found = fs.find(base, detail=True)
    except FileNotFoundError:
        raise missing from None
    if not found and not fs.exists(_split(base)[0]):
        raise missing
    return {path[len(base) + 1 :]: info for path, info in found.items() if info.get("type") != "directory"}


def _sync_file(fs: Any, url: str, key: str, info: dict[str, Any], local: Path, etags: dict[str, str]) -> None:
    """Download `key` to `local` unless the copy there came from the same object (ETag)."""
    if local.is_file() and etags.get(key) == info.get("ETag"):
        return
    local.parent.mkdir(parents=True, exist_ok=True)
    partial = local.with_name(f".{local.name}.{uuid.uuid4().hex[:8]}.part")
    try:
        partial.write_bytes(fs.cat_file(f"{_key(url)}/{key}"))
        os.replace(partial, local)
    finally:
        partial.unlink(missing_ok=True)
    etags[key] = str(info.get("ETag"))


def pull(mdir: Path) -> dict[str, dict[str, Any]]:
    """Make the mirror's index, log and version folders (MANIFEST.json) what the bucket holds; the listing."""
    url = line_url(mdir)
    if url is None:
        return {}
    marker = _marker(mdir)
    etags: dict[str, str] = marker.get("etags", {})
    fs = _fs()
    with _errors(url):
        listing = _listing(fs, url)
        events = sorted(k for k in listing if EVENT_KEY.match(k))
        for key in events:
            _sync_file(fs, url, key, listing[key], mdir / ".events" / Path(key).name, etags)
        if "index.json" in listing:
            _sync_file(fs, url, "index.json", listing["index.json"], mdir / "index.json", etags)
        else:
            (mdir / "index.json").unlink(missing_ok=True)
        remote = {m[1] for m in map(VERSION_KEY.match, listing) if m}
        folder = mdir / "versions"
        for stale in (p for p in (folder.iterdir() if folder.is_dir() else []) if p.name not in remote):
            shutil.rmtree(stale, ignore_errors=True)  # a write that never reached the bucket
        for version in remote:
            (folder / version).mkdir(parents=True, exist_ok=True)
            key = f"versions/{version}/{MANIFEST_FILE}"
            if key in listing:
                _sync_file(fs, url, key, listing[key], folder / version / MANIFEST_FILE, etags)
    log = b"".join((mdir / ".events" / Path(k).name).read_bytes() for k in events)
    tmp = mdir / f".{EVENTS_FILE}.part"
    tmp.write_bytes(log)
    os.replace(tmp, mdir / EVENTS_FILE)
    write_json_atomic(mdir / MARKER, {**marker, "etags": etags})
    return listing


def fetch_version(mdir: Path, path: str, again: bool = False) -> None:
    """Bring one package's files into the mirror (`again`: drop the local copies first, after a failed verify)."""
    url = line_url(mdir)
    if url is None:
        return
    marker, fs, folder = _marker(mdir), _fs(), mdir / path
    etags: dict[str, str] = marker.get("etags", {})
    if again:
        for file in folder.iterdir() if folder.is_dir() else []:
            file.unlink()
            etags.pop(f"{path}/{file.name}", None)
    with _errors(url):
        found = {k: v for k, v in _listing(fs, f"{url}/{path}").items() if "/" not in k}
        for name, info in found.items():
            _sync_file(fs, url, f"{path}/{name}", info, folder / name, etags)
    for extra in (p for p in (folder.iterdir() if folder.is_dir() else []) if p.name not in found):
        extra.unlink()  # not in the bucket: the package is what the bucket holds
    write_json_atomic(mdir / MARKER, {**marker, "etags": etags})


def _upload_checked(fs: Any, url: str, key: str, data: bytes) -> None:
    fs.pipe_file(f"{_key(url)}/{key}", data)
    back = fs.cat_file(f"{_key(url)}/{key}")
    if len(back) != len(data) or hashlib.sha256(back).digest() != hashlib.sha256(data).digest():
        raise RegistryUnreachable("an uploaded object reads back different", f"{url}/{key}", "rerun the write")


def push(mdir: Path, listing: dict[str, dict[str, Any]], index_before: bytes | None) -> None:
    """Upload what the write changed in the mirror: new version folders, new events, then index.json."""
    from botocore.exceptions import ClientError

    url = line_url(mdir)
    assert url is not None
    fs, remote = _fs(), {m[1] for m in map(VERSION_KEY.match, listing) if m}
    folder = mdir / "versions"
    with _errors(url):
        for version in sorted(p.name for p in (folder.iterdir() if folder.is_dir() else []) if p.name not in remote):
            last = (MANIFEST_FILE, SIGNATURE_FILE)  # the MANIFEST goes last: a folder without one is no package
            for file in sorted((folder / version).iterdir(), key=lambda p: (p.name in last, p.name)):
                _upload_checked(fs, url, f"versions/{version}/{file.name}", file.read_bytes())
        have = {int(m[1]) for m in map(EVENT_KEY.match, listing) if m}
        for event in read_events(mdir)[0]:
            if event["seq"] not in have:
                key = f"{_key(url)}/events/{event['seq']:010d}.json"
                line = json.dumps(event, sort_keys=True, separators=(",", ":")) + "\n"
                try:
                    fs.pipe_file(key, line.encode(), mode="create")
                except FileExistsError:
                    what = f"event {event['seq']} was written by another writer (this one's lock lease ran out)"
                    raise RegistryBusy(
                        what, f"{url}/events", "rerun; raise remote.LEASE_SECONDS if it recurs"
                    ) from None
        index = (mdir / "index.json").read_bytes() if (mdir / "index.json").is_file() else None
        if index is not None and index != index_before:
            etag = listing.get("index.json", {}).get("ETag")
            match = {"IfMatch": etag} if etag else {"mode": "create"}
            try:
                fs.pipe_file(f"{_key(url)}/index.json", index, **match)
            except (FileExistsError, ClientError, OSError) as exc:
                what = f"index.json changed under this writer ({exc}); readers rebuild it from the events"
                raise RegistryBusy(what, f"{url}/index.json", "run `python -m tabml.registry repair`") from None


def _take_lock(fs: Any, url: str, owner: str, timeout: float) -> str:
    """Create the lock object (If-None-Match: *), replacing a holder whose lease ran out; its ETag."""
    key, deadline = f"{_key(url)}/{LOCK_OBJECT}", time.monotonic() + timeout
    while True:
        body = json.dumps({"owner": owner, "expires_at": time.time() + LEASE_SECONDS}).encode()
        try:
            return str(fs.pipe_file(key, body, mode="create")["ETag"])
        except FileExistsError:
            pass
        try:
            info, held = fs.info(key, refresh=True), json.loads(fs.cat_file(key))
            if float(held.get("expires_at", 0)) < time.time():
                bucket, path = _split(key)
                fs.call_s3("delete_object", Bucket=bucket, Key=path, IfMatch=info["ETag"])
                continue
        except (FileNotFoundError, ValueError, OSError):
            continue  # released (or replaced) meanwhile: try again
        if time.monotonic() >= deadline:
            what = f"could not lock the registry within {timeout:g}s: {held.get('owner')} holds it"
            todo = "wait for it to finish, or raise register.lock_timeout_seconds in params.yaml"
            raise RegistryBusy(what, f"{url}/{LOCK_OBJECT}", todo)
        time.sleep(0.2)


@contextmanager
def remote_lock(mdir: Path, timeout: float) -> Iterator[Path]:
    """Hold the line's lock object and yield a private, freshly pulled mirror to write; on success push what
    changed in it, then release the lock (a failed write leaves nothing behind)."""
    url = line_url(mdir)
    assert url is not None
    fs, owner = _fs(), f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
    with _errors(url):
        etag = _take_lock(fs, url, owner, timeout)
    work = mdir.parent / f".write-{uuid.uuid4().hex[:12]}" / mdir.name  # private: readers never see it
    try:
        work.mkdir(parents=True)
        write_json_atomic(work / MARKER, {"url": _marker(mdir)["url"], "etags": {}})
        listing = pull(work)
        index_before = (work / "index.json").read_bytes() if (work / "index.json").is_file() else None
        yield work
        push(work, listing, index_before)
    finally:
        shutil.rmtree(work.parent, ignore_errors=True)
        bucket, key = _split(f"{_key(url)}/{LOCK_OBJECT}")
        with suppress(OSError):  # our lease ran out and another writer holds it now: theirs to release
            fs.call_s3("delete_object", Bucket=bucket, Key=key, IfMatch=etag)
