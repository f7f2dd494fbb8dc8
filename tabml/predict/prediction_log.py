"""The prediction log: every scored row (online and batch), sampled, appended as Parquet part files per model line.

    <serve.log_dir>/<model line>/part-<UTC time>-<seq>.parquet

Each row holds the request time, the model version, the features as received (numbers as numbers, anything else
as text; the id column as its sha256 when `serve.hash_ids`), and the prediction with its probabilities. Writing
never blocks or fails a request: rows go into a bounded queue that one thread drains; when it is full the rows
are dropped and counted (`dropped`). Each part file appears with one rename, so a reader never sees half a file;
the oldest files are deleted beyond `serve.log_max_files`. tabml.monitor reads the log through `read_window`.
"""

from __future__ import annotations

import hashlib
import itertools
import queue
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeAlias

import numpy as np
import pandas as pd

from tabml.core.ops_params import ServeParams

TIME, NAME, VERSION = "_request_time", "_model_name", "_model_version"  # metadata columns; features keep names
PREDICTION_PREFIX = "_"  # prediction and proba_* columns are logged as _prediction, _proba_<label>
PART_GLOB = "part-*.parquet"


def hash_id(value: object) -> str:
    """The logged form of an id: sha256 of its text, 16 hex digits (labels files are joined through the same)."""
    return hashlib.sha256(str(value).encode()).hexdigest()[:16]


Rows: TypeAlias = pd.DataFrame | Mapping[str, Any]  # a frame, or column -> values as received


def log_rows(
    features: pd.DataFrame,
    predictions: pd.DataFrame,
    version: int,
    id_column: str | None,
    hash_ids: bool,
    at: datetime | None = None,
) -> pd.DataFrame:
    """Pure: the log rows of one scored frame (features as received, metadata, prediction)."""
    out = pd.DataFrame(index=range(len(features)))
    out[TIME] = pd.Timestamp(at or datetime.now(UTC))
    out[VERSION] = version
    for column in features.columns:
        values = features[column].reset_index(drop=True)
        if column == id_column and hash_ids:
            out[column] = values.map(hash_id)
        elif pd.api.types.is_numeric_dtype(values.dtype) and not pd.api.types.is_bool_dtype(values.dtype):
            out[column] = values.astype("float64")
        else:
            out[column] = values.map(lambda v: None if v is None or v is pd.NA or v != v else str(v)).astype(object)
    for column in predictions.columns:
        if column == "prediction" or column.startswith("proba_"):
            out[PREDICTION_PREFIX + column] = predictions[column].reset_index(drop=True)
    return out


@dataclass
class PredictionLog:
    """A bounded queue of log rows and the thread that writes them; `close()` flushes what is queued."""

    root: Path
    sample_rate: float
    hash_ids: bool
    queue_rows: int
    flush_seconds: float
    max_files: int
    seed: int | None = None
    dropped: int = 0
    written: int = 0
    _queue: queue.Queue[tuple[str, Any] | None] = field(init=False)
    _queued_rows: int = field(init=False, default=0)
    _lock: threading.Lock = field(init=False, default_factory=threading.Lock)
    _thread: threading.Thread | None = field(init=False, default=None)
    _seq: itertools.count[int] = field(init=False, default_factory=itertools.count)

    def __post_init__(self) -> None:
        self._queue = queue.Queue()
        self._rng = np.random.default_rng(self.seed)

    @classmethod
    def from_params(cls, p: ServeParams, root: Path | None = None) -> PredictionLog:
        return cls(
            root or p.log_dir, p.log_sample_rate, p.hash_ids, p.log_queue_rows, p.log_flush_seconds, p.log_max_files
        )

    def append(self, name: str, version: int, features: Rows, predictions: Rows, id_column: str | None) -> None:
        """Queue the sampled rows of one scored request; never raises, never waits (frames are built later)."""
        n = 0
        try:
            n = len(features) if isinstance(features, pd.DataFrame) else len(next(iter(dict(features).values()), []))
            keep = self._rng.random(n) < self.sample_rate
            kept = int(keep.sum())
            if not kept:
                return
            with self._lock:
                if self._queued_rows + kept > self.queue_rows:
                    self.dropped += kept
                    return
                self._queued_rows += kept
            self._start()
            self._queue.put((name, (version, datetime.now(UTC), features, predictions, id_column, keep)))
        except Exception:  # noqa: BLE001 - the log must never fail a request
            with self._lock:
                self.dropped += n

    def _rows(self, item: tuple[Any, ...]) -> pd.DataFrame:
        version, at, features, predictions, id_column, keep = item
        features, predictions = pd.DataFrame(features)[keep], pd.DataFrame(predictions)[keep]
        return log_rows(features, predictions, version, id_column, self.hash_ids, at)

    def _start(self) -> None:
        if self._thread is None:
            with self._lock:
                if self._thread is None:
                    self._thread = threading.Thread(target=self._drain, name="prediction-log", daemon=True)
                    self._thread.start()

    def _drain(self) -> None:
        pending: dict[str, list[Any]] = {}
        last_flush, stop = time.monotonic(), False
        while not stop:
            try:
                item = self._queue.get(timeout=self.flush_seconds / 4)
                if item is None:
                    stop = True
                else:
                    pending.setdefault(item[0], []).append(item[1])  # frames built here, off the request path
            except queue.Empty:
                pass
            if pending and (stop or time.monotonic() - last_flush >= self.flush_seconds):
                self._flush(pending)
                pending, last_flush = {}, time.monotonic()

    def _flush(self, pending: dict[str, list[Any]]) -> None:
        for name, items in pending.items():
            count = sum(int(item[-1].sum()) for item in items)
            try:
                rows = pd.concat([self._rows(item) for item in items], ignore_index=True)
                rows.insert(1, NAME, name)
                self._write(name, rows)
                self.written += len(rows)
            except Exception:  # noqa: BLE001 - a full disk drops log rows, never requests
                self.dropped += count
            with self._lock:
                self._queued_rows -= count

    def _write(self, name: str, rows: pd.DataFrame) -> None:
        folder = self.root / name
        folder.mkdir(parents=True, exist_ok=True)
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
        path = folder / f"part-{stamp}-{next(self._seq):06d}.parquet"
        tmp = folder / f".{path.name}.tmp"
        rows.to_parquet(tmp, index=False)
        tmp.replace(path)
        for old in sorted(folder.glob(PART_GLOB))[: -self.max_files]:
            old.unlink(missing_ok=True)

    def close(self) -> None:
        """Write what is queued and stop the thread."""
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join()
            self._thread = None


def read_window(root: Path, name: str, since: datetime | None = None) -> pd.DataFrame:
    """The logged rows of one model line (at or after `since`), oldest first; empty when there are none."""
    frames = [pd.read_parquet(p) for p in sorted((root / name).glob(PART_GLOB))]
    if not frames:
        return pd.DataFrame(columns=[TIME, NAME, VERSION])
    rows = pd.concat(frames, ignore_index=True)
    if since is not None:
        rows = rows[rows[TIME] >= pd.Timestamp(since)]
    return rows.sort_values(TIME, kind="stable").reset_index(drop=True)
