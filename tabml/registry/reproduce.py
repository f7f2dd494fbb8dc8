"""Rebuild a registered version from its lineage and certify the result.

    python -m tabml.registry [--name credit] reproduce --version N [--keep-worktree]

The version's GTO anchor commit (`<name>@v<N>.0.0`) holds the code, params.yaml and dvc.lock of the run
that produced it. A clean `git worktree` is made at that commit, sharing this repo's DVC cache; the table the
preprocess stage reads (the validated snapshot) is checked out from the cache at the hash dvc.lock records,
and preprocess, train and evaluate are run again with `dvc repro --force` (no run cache; register never
runs: the reproduction writes nothing to the registry). The certificate says whether the weights came
out byte-identical (expected with `train.deterministic: true` on CPU) or, if not, whether every test metric
is within `register.reproduce.metric_tolerance` of the registered one.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from contextlib import chdir
from dataclasses import dataclass
from pathlib import Path

import yaml

from tabml.core.errors import StageError
from tabml.core.files import sha256_file, utc_now
from tabml.core.params import Params
from tabml.registry.package import LINEAGE_FILE, METRICS_FILE, signing_key
from tabml.registry.store import load_package
from tabml.training.trained_model import WEIGHTS_FILE

TARGET_STAGE = "evaluate"


@dataclass(frozen=True)
class Plan:
    restore: list[str]  # checked out from the DVC cache at the hashes dvc.lock records
    rebuild: list[str]  # stages run again, in this order


FIRST_REBUILT = "preprocess"  # the model is rebuilt from the validated table preprocess reads


def anchor_input_table(raw: object, where: Path) -> str:
    """The table preprocess read at the anchor commit: `preprocess.input`, or, in params.yaml files written
    before that key existed, `validate.accepted_snapshot` (an old commit's params need not fit today's schema)."""
    sections = raw if isinstance(raw, dict) else {}
    for section, key in (("preprocess", "input"), ("validate", "accepted_snapshot")):
        value = (sections.get(section) or {}).get(key)
        if isinstance(value, str):
            return value
    raise StageError("no preprocess.input in the anchor commit's params.yaml", where, "reproduce a newer version")


def rebuild_plan(worktree: Path, target: str = TARGET_STAGE) -> Plan:
    """Restore the table preprocess reads; rebuild preprocess and every stage between it and `target`."""
    import networkx as nx
    from dvc.repo import Repo

    from tabml.core.dag import stage_order

    order = stage_order(worktree)
    for needed in (FIRST_REBUILT, target):
        if needed not in order:
            raise StageError(f"no {needed!r} stage in dvc.yaml at the anchor commit", worktree / "dvc.yaml")
    table = anchor_input_table(yaml.safe_load((worktree / "params.yaml").read_text()), worktree / "params.yaml")
    with chdir(worktree), Repo(str(worktree)) as repo:
        graph = repo.index.graph  # edges point from a stage to the stages it depends on
        by_name = {getattr(s, "name", None): s for s in graph.nodes}
        upstream_of_target = nx.descendants(graph, by_name[target]) | {by_name[target]}
        downstream_of_first = nx.ancestors(graph, by_name[FIRST_REBUILT]) | {by_name[FIRST_REBUILT]}
        names = {s.name for s in upstream_of_target & downstream_of_first}
    return Plan([str(table)], [n for n in order if n in names])


def compare_metrics(registered: Mapping[str, float], rebuilt: Mapping[str, float], tolerance: float) -> dict:
    """Pure: per test metric, both values and |difference|; within tolerance when every metric is."""
    names = sorted(set(registered) | set(rebuilt))
    diffs = {
        n: abs(float(rebuilt[n]) - float(registered[n])) if n in rebuilt and n in registered else None for n in names
    }
    within = all(d is not None and d <= tolerance for d in diffs.values())
    return {
        "tolerance": tolerance,
        "registered": dict(registered),
        "rebuilt": dict(rebuilt),
        "abs_diff": diffs,
        "within_tolerance": within,
    }


def verdict(identical_weights: bool, metrics_within: bool) -> tuple[bool, str]:
    if identical_weights:
        return True, "reproduced: identical weights"
    if metrics_within:
        return True, "reproduced: weights differ, every test metric within tolerance"
    return False, "NOT reproduced: weights differ and test metrics are outside the tolerance"


def _run(args: list[str], cwd: Path, env: Mapping[str, str] | None = None) -> str:
    done = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-15:])
        raise StageError(f"`{' '.join(args)}` failed ({done.returncode}):\n{tail}", cwd)
    return done.stdout


def stage_env() -> dict[str, str]:
    """The stages' environment: this interpreter first on PATH, no W&B run, no flow run id, no telemetry."""
    env = {k: v for k, v in os.environ.items() if k not in ("TABML_FLOW_RUN_ID", "TABML_WANDB_RUN_ID")}
    env.update(
        PATH=os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")]),
        WANDB_MODE="disabled",
        DVC_NO_ANALYTICS="1",
        DO_NOT_TRACK="1",
    )
    return env


def anchor_commit_of(repo: Path, name: str, version: int) -> str:
    from tabml.registry.gto import anchor_of, gto_version

    anchor = anchor_of(repo, name, version)
    if anchor is None:
        raise StageError(
            f"no GTO tag {name}@{gto_version(version)}: the anchor commit holding this version's params.yaml and "
            "dvc.lock is unknown",
            repo,
            "reproduce versions registered with register.gto_tags: true, in this repository",
        )
    return anchor


def certificate_path(params: Params, name: str, version: int) -> Path:
    return params.register_.reproduce.out_dir / f"{name}-v{version}.json"


def reproduce(params: Params, name: str, version: int, repo: Path = Path("."), keep: bool = False) -> dict:
    """Rebuild `name` v`version` in a fresh worktree and return the certificate (also written to disk)."""
    started, clock = utc_now(), time.perf_counter()
    key = signing_key(params.register_)
    package = load_package(params.register_.registry_dir, name, version, key=key)  # refuses a tampered package
    lineage = package.document(LINEAGE_FILE)
    registered_metrics = package.document(METRICS_FILE)["test"]
    root = Path(_run(["git", "rev-parse", "--show-toplevel"], repo).strip())
    anchor = anchor_commit_of(root, name, version)
    worktree = Path(tempfile.mkdtemp(prefix=f"tabml-reproduce-{name}-v{version}-")) / "worktree"
    env = stage_env()
    _run(["git", "worktree", "add", "--detach", str(worktree), anchor], root)
    plan, error = Plan([], []), None
    weights: dict[str, object] = {"registered_sha256": package.sha256[WEIGHTS_FILE], "rebuilt_sha256": None}
    rebuilt_metrics: dict[str, float] = {}
    try:
        dvc = [sys.executable, "-m", "dvc"]
        _run([*dvc, "config", "--local", "cache.dir", str((root / ".dvc" / "cache").resolve())], worktree, env)
        plan = rebuild_plan(worktree)
        if plan.restore:
            _run([*dvc, "checkout", *plan.restore], worktree, env)
        for stage in plan.rebuild:
            _run([*dvc, "repro", "--force", "--single-item", stage], worktree, env)
        anchor_params = yaml.safe_load((worktree / "params.yaml").read_text())
        weights["rebuilt_sha256"] = sha256_file(worktree / anchor_params["train"]["out_dir"] / WEIGHTS_FILE)
        rebuilt_metrics = json.loads((worktree / anchor_params["evaluate"]["metrics"]).read_text())["test"]
    except StageError as exc:  # the rebuild itself failed: that is a finding, certified like the others
        error = exc.render()
    finally:
        if not keep:
            subprocess.run(["git", "worktree", "remove", "--force", str(worktree)], cwd=root, capture_output=True)
            shutil.rmtree(worktree.parent, ignore_errors=True)
    weights["identical"] = weights["rebuilt_sha256"] == weights["registered_sha256"]
    metrics = compare_metrics(registered_metrics, rebuilt_metrics, params.register_.reproduce.metric_tolerance)
    reproduced, text = verdict(bool(weights["identical"]), metrics["within_tolerance"])
    if error is not None:
        reproduced, text = False, "NOT reproduced: the rebuild failed"
    certificate = {
        "name": name,
        "version": version,
        "reproduced": reproduced,
        "verdict": text,
        "anchor_commit": anchor,
        "lineage": {"git": lineage.get("git"), "created_at": lineage.get("created_at")},
        "restored_from_dvc_cache": plan.restore,  # the data: never fetched from its source again
        "rebuilt_stages": plan.rebuild,
        "weights": weights,
        "metrics": metrics,
        "started_at": started,
        "seconds": round(time.perf_counter() - clock, 1),
        "worktree": str(worktree) if keep else None,
        "error": error,
    }
    out = certificate_path(params, name, version)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(certificate, indent=2) + "\n")
    return certificate
