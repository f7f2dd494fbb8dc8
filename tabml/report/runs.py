"""The runs a report compares, read from DVC experiments (any git revision) or from registry versions.

A DVC experiment holds everything a run wrote: its params.yaml, metrics, training history, ROC/PR points,
the gate's record and the validation report, all read at the experiment's commit through DVC's file system
(DVC-cached outputs come from the local cache). A registry version holds metrics, history and lineage (the
params) but no curves. Every file is optional: what is missing becomes a note on the run, never an error.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from tabml.evaluation.outputs import DETAILS_FILE, PLOTS_DIR
from tabml.evaluation.plots import PRECISION_RECALL, ROC
from tabml.registry.record import record_facts_file, with_run_facts
from tabml.training.trained_model import HISTORY_FILE, PER_RUN_FIELDS, RUN_INFO_FILE, run_facts_file

Source = Literal["experiment", "commit", "workspace", "registry"]
CURVES = (ROC, PRECISION_RECALL)


class RunSelectionError(ValueError):
    """The runs asked for cannot be found; says which and what exists."""


@dataclass(frozen=True)
class Run:
    name: str
    source: Source
    rev: str | None = None
    created: str | None = None
    params: dict[str, Any] = field(default_factory=dict)  # flattened: "train.lr" -> 0.001
    metrics: dict[str, Any] = field(default_factory=dict)  # metrics.json (test{}, threshold) + details.json
    history: list[dict[str, float]] = field(default_factory=list)  # history.csv rows
    curves: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # plots/<name>.json -> rows
    registration: dict[str, Any] | None = None  # reports/registration.json
    validation: dict[str, Any] | None = None  # reports/validation.json
    run_info: dict[str, Any] | None = None  # models/train/run_info.json (W&B run id)
    notes: tuple[str, ...] = ()
    failed: bool = False  # a DVC experiment whose run failed (no outputs)

    @property
    def test(self) -> dict[str, float]:
        test = self.metrics.get("test")
        return {k: float(v) for k, v in test.items() if isinstance(v, int | float)} if isinstance(test, dict) else {}

    @property
    def task(self) -> str | None:
        return self.metrics.get("task") or self.params.get("data.task")

    @property
    def dataset(self) -> str | None:
        return self.params.get("data.name")


def flatten(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """`{"train": {"lr": 1}}` -> `{"train.lr": 1}`; lists stay values."""
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            flat |= flatten(value, f"{name}.")
        else:
            flat[name] = value
    return flat


def parse_history(text: str) -> list[dict[str, float]]:
    """history.csv rows as floats; cells that are not numbers are left out."""
    rows = []
    for raw in csv.DictReader(io.StringIO(text)):
        row = {}
        for key, value in raw.items():
            try:
                row[key] = float(value)
            except (TypeError, ValueError):
                continue
        rows.append(row)
    return rows


def _get(tree: Mapping[str, Any], dotted: str) -> str | None:
    """A path from that run's params.yaml (no default of our own: a run without the key recorded no such file)."""
    node: Any = tree
    for part in dotted.split("."):
        node = node.get(part) if isinstance(node, Mapping) else None
    return str(node) if node else None


ReadText = Callable[[str], str | None]


def _facts(read: ReadText, path: str | None, facts_file: Callable[[Path], Path]) -> Any:
    """The per-run facts beside `path` (git-ignored: only the workspace has them; no note when absent)."""
    text = read(facts_file(Path(path)).as_posix()) if path else None
    with contextlib.suppress(ValueError):
        return json.loads(text) if text else None
    return None


def _with_train_facts(info: Any, read: ReadText, train_dir: str | None) -> Any:
    facts = _facts(read, train_dir, run_facts_file)
    if not isinstance(info, dict) or not isinstance(facts, dict) or facts.get("fingerprint") != info.get("fingerprint"):
        return info
    return info | {key: facts.get(key) for key in PER_RUN_FIELDS}


def read_run(name: str, source: Source, read: ReadText, rev: str | None = None, created: str | None = None) -> Run:
    """Assemble a run from the files `read` returns (None: absent); paths come from that run's params.yaml."""
    notes: list[str] = []

    def load_json(path: str | None, what: str) -> Any:
        if path is None:
            notes.append(f"no {what} (its path is not in this run's params.yaml)")
            return None
        text = read(path)
        if text is None:
            notes.append(f"no {what} ({path})")
            return None
        try:
            return json.loads(text)
        except ValueError:
            notes.append(f"{what} is not valid JSON ({path})")
            return None

    raw_params = yaml.safe_load(read("params.yaml") or "{}") or {}
    train_dir, evaluate_dir = _get(raw_params, "train.out_dir"), _get(raw_params, "evaluate.out_dir")
    metrics = load_json(_get(raw_params, "evaluate.metrics"), "metrics") or {}
    details_text = read(f"{evaluate_dir}/{DETAILS_FILE}") if evaluate_dir else None  # task, n_test, baselines
    with contextlib.suppress(ValueError):  # runs from before details.json kept these in metrics.json
        details = json.loads(details_text) if details_text else {}
        metrics = {**details, **metrics} if isinstance(details, dict) and isinstance(metrics, dict) else metrics
    history_text = read(f"{train_dir}/{HISTORY_FILE}") if train_dir else None
    if history_text is None:
        where = f"{train_dir}/{HISTORY_FILE}" if train_dir else "train.out_dir is not in this run's params.yaml"
        notes.append(f"no training history ({where})")
    curves = {}
    if metrics.get("task") in ("binary", "multiclass") and evaluate_dir:
        rows_of = {c: load_json(f"{evaluate_dir}/{PLOTS_DIR}/{c}", c) for c in CURVES}
        curves = {c: rows for c, rows in rows_of.items() if isinstance(rows, list)}
    record = _get(raw_params, "register.record")
    info_path = f"{train_dir}/{RUN_INFO_FILE}" if train_dir else None
    return Run(
        name=name,
        source=source,
        rev=rev,
        created=created,
        params=flatten(raw_params),
        metrics=metrics if isinstance(metrics, dict) else {},
        history=parse_history(history_text) if history_text else [],
        curves=curves,
        registration=with_run_facts(load_json(record, "gate record"), _facts(read, record, record_facts_file)),
        validation=load_json(_get(raw_params, "validate.report"), "validation report"),
        run_info=_with_train_facts(load_json(info_path, "run info"), read, train_dir),
        notes=tuple(notes),
    )


# ---- DVC experiments ------------------------------------------------------------------------------


@dataclass(frozen=True)
class ExpRef:
    name: str
    rev: str  # full sha, or "workspace"
    created: str | None
    source: Source
    failed: bool = False


def list_experiments(root: Path) -> list[ExpRef]:
    """Baselines and experiments from `dvc exp show --json` (DVC's documented machine-readable listing)."""
    proc = subprocess.run(
        [sys.executable, "-m", "dvc", "exp", "show", "--json"], cwd=root, capture_output=True, text=True
    )
    if proc.returncode != 0:
        raise RunSelectionError(f"`dvc exp show --json` failed in {root}: {proc.stderr.strip() or proc.stdout}")
    return parse_exp_show(json.loads(proc.stdout or "[]"))


def parse_exp_show(shown: Sequence[Mapping[str, Any]]) -> list[ExpRef]:
    refs: list[ExpRef] = []
    for baseline in shown:
        rev = baseline.get("rev", "")
        data = baseline.get("data") or {}
        if rev == "workspace":
            refs.append(ExpRef("workspace", "workspace", None, "workspace"))
        else:
            refs.append(ExpRef(baseline.get("name") or rev[:7], rev, data.get("timestamp"), "commit"))
        for exp in baseline.get("experiments") or []:
            state = (exp.get("executor") or {}).get("state")
            if state in ("queued", "running"):
                continue
            for exp_rev in exp.get("revs") or []:
                exp_data = exp_rev.get("data") or {}
                failed = state == "failed" or bool(exp_rev.get("error"))
                name = exp_rev.get("name") or exp.get("name") or exp_rev["rev"][:7]
                refs.append(ExpRef(name, exp_rev["rev"], exp_data.get("timestamp"), "experiment", failed))
    return refs


def select_experiments(refs: Sequence[ExpRef], names: Sequence[str] | None, last: int | None) -> list[ExpRef]:
    """`names` (experiment names, branch names, sha prefixes, `workspace`) or the `last` N experiments plus the
    baseline commit they branch from, as a reference."""
    if names:
        chosen = []
        for name in names:
            match = next(
                (r for r in refs if name in (r.name, r.rev) or (len(name) >= 6 and r.rev.startswith(name))), None
            )
            if match is None:
                known = ", ".join(r.name for r in refs) or "none"
                raise RunSelectionError(f"no experiment or revision named {name!r} (known: {known})")
            chosen.append(match)
        return chosen
    experiments = sorted((r for r in refs if r.source == "experiment"), key=lambda r: r.created or "", reverse=True)
    baseline = next((r for r in refs if r.source == "commit"), None)
    return [*experiments[: last or len(experiments)], *([baseline] if baseline else [])]


def experiment_runs(root: Path, names: Sequence[str] | None = None, last: int | None = None) -> list[Run]:
    """Read each selected experiment's files at its commit (DVC outputs from the cache)."""
    refs = list_experiments(root)
    chosen = select_experiments(refs, names, last)
    if not chosen:
        raise RunSelectionError(f"no DVC experiments or commits in {root}: run `dvc exp run` first, or use --registry")
    return [_read_ref(root, ref) for ref in chosen]


def _read_ref(root: Path, ref: ExpRef) -> Run:
    if ref.failed:
        return Run(
            ref.name, ref.source, ref.rev, ref.created, notes=(f"failed: see `dvc queue logs {ref.name}`",), failed=True
        )
    if ref.source == "workspace":
        return read_run(ref.name, ref.source, workspace_reader(root), None, ref.created)
    from dvc.api import DVCFileSystem

    fs = DVCFileSystem(str(root), rev=ref.rev)

    def read(path: str) -> str | None:
        try:
            return fs.read_text(path)
        except Exception:  # noqa: BLE001 - absent at that revision, or its data is not in the cache
            return None

    return read_run(ref.name, ref.source, read, ref.rev, ref.created)


def workspace_reader(root: Path) -> ReadText:
    def read(path: str) -> str | None:
        try:
            return (root / path).read_text()
        except OSError:
            return None

    return read
