"""What the server tells its operators: Prometheus metrics (/metrics) and one JSON access-log line per request.

The access log names the route, status, latency, model and version and the row count, never a feature value.
Each app has its own CollectorRegistry, so two servers in one process (tests) do not share counters.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class ServerMetrics:
    """The server's Prometheus collectors."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter("tabml_requests", "Requests by route and status", ["route", "status"], registry=r)
        self.errors = Counter("tabml_request_errors", "Refused or failed requests", ["route", "status"], registry=r)
        self.latency = Histogram(
            "tabml_request_latency_seconds", "Request latency", ["route"], buckets=LATENCY_BUCKETS, registry=r
        )
        self.rows = Counter("tabml_rows_scored", "Rows scored", ["model"], registry=r)
        self.version = Gauge("tabml_model_version", "Version being served", ["model"], registry=r)
        self.refused = Gauge("tabml_model_refused_version", "Last version refused (0: none)", ["model"], registry=r)
        self.warnings = Counter("tabml_input_warnings", "Cells scored with a warning", ["model", "column"], registry=r)
        self.log_dropped = Gauge("tabml_prediction_log_dropped_rows", "Rows the prediction log dropped", registry=r)
        self.log_written = Gauge("tabml_prediction_log_written_rows", "Rows the prediction log wrote", registry=r)
        self.batches = Gauge("tabml_scored_batches", "Batches the micro-batcher scored", registry=r)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


def access_logger() -> logging.Logger:
    """`tabml.serve.access`: one JSON object per line on stderr."""
    logger = logging.getLogger("tabml.serve.access")
    if not logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False
    return logger


def access_line(
    method: str, path: str, status: int, seconds: float, model: str | None, version: int | None, rows: int | None
) -> str:
    """Pure: the access-log line of one request (no feature values)."""
    return json.dumps(
        {
            "time": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "method": method,
            "path": path,
            "status": status,
            "latency_ms": round(seconds * 1000, 3),
            "model": model,
            "version": version,
            "rows": rows,
        }
    )
