"""The models being served: the production version of each model line, and the hot reload that follows the registry.

A background thread looks at every `<registry>/<name>/index.json` each `serve.reload_interval_seconds` (size, mtime
and sha256). When production changed (a promotion, a rollback, a first registration) the new version is loaded and
verified against its MANIFEST (tabml.registry.store.load_package, tabml.registry.package.load_scorer) *before* it
is swapped in with one reference assignment: a request scores with the old model or the new one, never half of
each. A version that fails to load or verify is refused; the old one keeps serving and /health says why.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from dataclasses import dataclass, field
from pathlib import Path

from tabml.core.files import utc_now
from tabml.evaluation.scorer import Scorer
from tabml.predict.batch import load_model_package
from tabml.registry.index import production_version
from tabml.registry.package import Package
from tabml.registry.store import INDEX_FILE, read_index
from tabml.serve.checks import Policy
from tabml.serve.encoding import Plan

log = logging.getLogger("tabml.serve")


@dataclass(frozen=True)
class LoadedModel:
    """A verified package and its scorer: what one request scores with."""

    package: Package
    scorer: Scorer
    plan: Plan

    @property
    def name(self) -> str:
        return self.package.name

    @property
    def version(self) -> int:
        return self.package.entry.version


@dataclass
class ModelLine:
    """One model line: the version serving now, and what the last reload attempt found."""

    name: str
    current: LoadedModel | None = None
    index_signature: tuple[int, int, str] | None = None
    refused: dict[str, object] | None = None  # {"version", "reason", "at"} of the last version refused
    loaded_at: str | None = None

    def health(self) -> dict[str, object]:
        return {
            "name": self.name,
            "version": self.current.version if self.current else None,
            "loaded_at": self.loaded_at,
            "refused": self.refused,
        }


def index_signature(path: Path) -> tuple[int, int, str] | None:
    """(mtime_ns, size, sha256) of an index file; None when it is absent."""
    try:
        stat, data = path.stat(), path.read_bytes()
    except FileNotFoundError:
        return None
    return stat.st_mtime_ns, stat.st_size, hashlib.sha256(data).hexdigest()


@dataclass
class ServedModels:
    """Every model line under `registry_dir`, kept at its production version by `refresh()`."""

    registry_dir: Path
    policy: Policy
    names: list[str] | None = None  # None: every line found in the registry
    lines: dict[str, ModelLine] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def line_names(self) -> list[str]:
        if self.names is not None:
            return self.names
        found = self.registry_dir.iterdir() if self.registry_dir.is_dir() else []
        return sorted(p.name for p in found if (p / INDEX_FILE).is_file())

    def get(self, name: str) -> LoadedModel | None:
        line = self.lines.get(name)
        return line.current if line else None

    def refresh(self) -> None:
        """Look at every index once; load, verify and swap in what changed (never raises)."""
        with self._lock:
            for name in self.line_names():
                line = self.lines.setdefault(name, ModelLine(name))
                try:
                    self._refresh_line(line)
                except Exception as exc:  # noqa: BLE001 - a broken index never stops the serving model
                    line.refused = {"version": None, "reason": _one_line(exc), "at": utc_now()}
                    log.warning("registry of %s unreadable: %s", name, line.refused["reason"])

    def _refresh_line(self, line: ModelLine) -> None:
        mdir = self.registry_dir / line.name
        signature = index_signature(mdir / INDEX_FILE)
        if signature is None or signature == line.index_signature:
            return
        line.index_signature = signature
        wanted = production_version(read_index(mdir))
        if wanted is None or (line.current is not None and line.current.version == wanted):
            return
        try:
            package, scorer = load_model_package(self.registry_dir, line.name, wanted, None)
        except Exception as exc:  # noqa: BLE001 - refused: the old version keeps serving
            line.refused = {"version": wanted, "reason": _one_line(exc), "at": utc_now()}
            log.warning("refused %s v%s: %s", line.name, wanted, line.refused["reason"])
            return
        before = line.current.version if line.current else None
        line.current, line.loaded_at, line.refused = (
            LoadedModel(package, scorer, Plan.of(scorer.state, self.policy)),
            utc_now(),
            None,
        )
        log.info("serving %s v%s (was v%s)", line.name, wanted, before)


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"


class Reloader:
    """The background thread that calls `models.refresh()` every `interval` seconds until stopped."""

    def __init__(self, models: ServedModels, interval: float) -> None:
        self.models, self.interval = models, interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="registry-reload", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.models.refresh()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=self.interval + 5)
