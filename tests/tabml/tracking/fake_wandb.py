"""A stand-in W&B server on 127.0.0.1: answers the GraphQL, file-stream and upload calls `wandb sync` makes.

It accepts everything and records what it was sent, so a test can count the runs and uploads a sync made.
Only the operations wandb 0.31's sync uses are answered; anything else gets an empty `data` object.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

OPERATION = re.compile(r"(?:query|mutation)\s+(\w+)")


@dataclass
class Received:
    graphql: list[tuple[str, dict[str, Any]]] = field(default_factory=list)  # (operation, variables)
    streams: list[tuple[str, dict[str, Any]]] = field(default_factory=list)  # (run path, file_stream body)
    uploads: list[str] = field(default_factory=list)  # PUT paths
    lock: threading.Lock = field(default_factory=threading.Lock)

    def upserted_runs(self) -> list[str]:
        return [v.get("name", "") for op, v in self.graphql if op == "UpsertBucket"]

    def history_rows(self, run_id: str) -> list[dict[str, Any]]:
        rows = []
        for path, body in self.streams:
            if f"/{run_id}/file_stream" in path:
                for line in (body.get("files") or {}).get("wandb-history.jsonl", {}).get("content", []):
                    rows.append(json.loads(line))
        return rows

    def summary(self, run_id: str) -> dict[str, Any]:
        merged: dict[str, Any] = {}
        for path, body in self.streams:
            if f"/{run_id}/file_stream" in path:
                for line in (body.get("files") or {}).get("wandb-summary.json", {}).get("content", []):
                    merged |= json.loads(line)
        return merged

    def total(self) -> int:
        return len(self.graphql) + len(self.streams) + len(self.uploads)


def _bucket(received: Received, run_id: str) -> dict[str, Any] | None:
    """What a real server answers for a run it already holds: history so far, merged summary."""
    if run_id not in received.upserted_runs():
        return None
    history = received.history_rows(run_id)
    return {
        "id": f"b-{run_id}",
        "name": run_id,
        "displayName": run_id,
        "summaryMetrics": json.dumps(received.summary(run_id)),
        "logLineCount": 0,
        "historyLineCount": len(history),
        "eventsLineCount": 0,
        "historyTail": json.dumps([json.dumps(row) for row in history[-1:]]),
        "eventsTail": "[]",
        "config": "{}",
        "tags": [],
        "notes": None,
        "wandbConfig": json.dumps({"t": {}}),  # a run that has started holds `_wandb.t`
    }


def _answer(op: str, v: dict[str, Any], base: str, received: Received) -> dict[str, Any]:
    entity = {"id": "e1", "name": "tester"}
    if op == "RunResumeStatus":
        bucket = _bucket(received, v.get("name", ""))
        return {"model": {"id": "p1", "name": v.get("project"), "entity": entity, "bucket": bucket}}
    if op == "UpsertBucket":
        project = {"id": "p1", "name": v.get("project") or "tabml", "entity": entity}
        bucket = {"id": f"b-{v.get('name')}", "name": v.get("name"), "displayName": v.get("name"), "project": project}
        return {"upsertBucket": {"bucket": bucket | {"sweepName": None, "historyLineCount": 0}, "inserted": True}}
    if op == "ServerFeaturesQuery":
        return {"serverInfo": {"features": []}}
    if op == "CreateRunFiles":
        files = [{"name": n, "uploadUrl": f"{base}/upload/run/{n}"} for n in v.get("files", [])]
        return {"createRunFiles": {"runID": "r1", "uploadHeaders": [], "files": files}}
    if op == "CreateArtifact":
        return {
            "createArtifact": {
                "artifact": {"id": "a1", "state": "PENDING", "artifactSequence": {"latestArtifact": None}}
            }
        }
    if op == "CreateArtifactManifest":
        file = {"id": "f1", "uploadUrl": f"{base}/upload/manifest", "uploadHeaders": []}
        return {"createArtifactManifest": {"artifactManifest": {"id": "m1", "file": file}}}
    if op == "CreateArtifactFiles":
        edges = [
            {
                "node": {
                    "storagePath": f"store/{f['name']}",
                    "uploadUrl": f"{base}/upload/artifact/{f['name']}",
                    "uploadHeaders": [],
                    "uploadMultipartUrls": None,
                    "artifact": {"id": f["artifactID"]},
                }
            }
            for f in v["input"]["artifactFiles"]
        ]
        return {"createArtifactFiles": {"files": {"edges": edges}}}
    if op == "CommitArtifact":
        return {"commitArtifact": {"artifact": {"id": v.get("artifactID", "a1"), "digest": "digest"}}}
    return {}


def _handler(received: Received, base: list[str]) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def _body(self) -> bytes:
            length = int(self.headers.get("Content-Length") or 0)
            return self.rfile.read(length) if length else b""

        def _json(self, document: object) -> None:
            data = json.dumps(document).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_POST(self) -> None:  # noqa: N802 - http.server's naming
            body = self._body()
            if self.path.endswith("/graphql"):
                request = json.loads(body)
                match = OPERATION.search(request.get("query", ""))
                op, variables = (match.group(1) if match else "?"), request.get("variables") or {}
                with received.lock:
                    answer = _answer(op, variables, base[0], received)
                    received.graphql.append((op, variables))
                self._json({"data": answer})
            elif self.path.endswith("/file_stream"):
                with received.lock:
                    received.streams.append((self.path, json.loads(body or b"{}")))
                self._json({"exitcode": None, "limits": {}})
            else:  # SDK telemetry and anything else: accept, record nothing
                self._json({})

        def do_PUT(self) -> None:  # noqa: N802
            self._body()
            with received.lock:
                received.uploads.append(self.path)
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def do_GET(self) -> None:  # noqa: N802
            self._json({})

        def log_message(self, *args: object) -> None:
            pass

    return Handler


@contextmanager
def fake_wandb_server() -> Iterator[tuple[str, Received]]:
    """(base URL, what it received) of a server on a free 127.0.0.1 port, for as long as the block runs."""
    received, base = Received(), [""]
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(received, base))
    base[0] = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield base[0], received
    finally:
        server.shutdown()
        server.server_close()
