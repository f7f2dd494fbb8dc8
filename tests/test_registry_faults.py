"""Fault injection on the registry: real `kill -9` of `python -m tasks.register` and `python -m tabml.registry
promote` at each phase of a write, then a lost and a corrupt index. After each, `registry list`, `show` and
`gto show` agree (after `registry repair`), `registry verify` passes, and production's weights are unchanged.

The kill point is made observable with TABML_TEST_PAUSE_AT=<phase> (tabml.registry.store.PAUSE_ENV, read only
when set): the process prints `[registry] paused at <phase>` on stderr and waits to be killed. Phases:
renamed (package folder in place, not yet logged), logged (event appended, index not yet written), indexed
(index written, GTO tags not yet reconciled), assigned (a GTO stage assigned, the old one not yet unassigned).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
from contextlib import chdir
from pathlib import Path

import pytest

from tabml.core.errors import ExitCode
from tabml.core.params import Params
from tabml.registry.store import PAUSE_ENV
from tasks import register
from tests.registry_project import build_project, evaluated

pytestmark = pytest.mark.slow

REGISTER_PHASES = ["renamed", "logged", "indexed", "assigned"]
PROMOTE_PHASES = ["logged", "indexed", "assigned"]


def run(root: Path, *args: str, pause: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "WANDB_MODE": "disabled"}
    env.pop(PAUSE_ENV, None)
    if pause is None:
        return subprocess.run([sys.executable, *args], cwd=root, env=env, capture_output=True, text=True)
    env[PAUSE_ENV] = pause
    proc = subprocess.Popen([sys.executable, *args], cwd=root, env=env, stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    seen = []
    for line in proc.stderr:  # until the process says where it stopped (or exits without getting there)
        seen.append(line)
        if line.strip() == f"[registry] paused at {pause}":
            os.kill(proc.pid, signal.SIGKILL)
            break
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, f"never paused at {pause}:\n{''.join(seen)}"
    return subprocess.CompletedProcess(args, proc.returncode, "", "".join(seen))


def registry(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return run(root, "-m", "tabml.registry", *args)


def production(root: Path) -> tuple[int, str]:
    """(version, sha256 of its weights) as `registry show` reports them."""
    done = registry(root, "show", "--json")
    assert done.returncode == 0, done.stderr
    shown = json.loads(done.stdout)
    weights = root / shown["dir"] / "model.safetensors"
    return shown["version"], hashlib.sha256(weights.read_bytes()).hexdigest()


def listed(root: Path) -> dict[int, str]:
    done = registry(root, "list")
    assert done.returncode == 0, done.stderr
    rows = [line.split() for line in done.stdout.splitlines()[1:]]
    return {int(row[0][1:]): row[1] for row in rows}


def gto_shown(root: Path) -> dict[int, str]:
    from gto import api

    shown = api.show(str(root), "credit", assignments_per_version=-1, versions_per_stage=-1)
    return {
        int(v["version"][1:].split(".")[0]): next((s["stage"] for s in v["stages"] if s["is_active"]), "-")
        for v in shown
    }


def assert_consistent(root: Path) -> None:
    """repair, then verify passes and list, show and gto show tell the same story."""
    repaired = registry(root, "repair")
    assert repaired.returncode == 0, repaired.stderr
    first = repaired.stdout.strip().splitlines()[0]
    assert first.startswith(("repaired credit: ", "credit: index.json agrees with events.jsonl")), first
    verified = registry(root, "verify")
    assert verified.returncode == 0, verified.stderr
    assert verified.stdout.startswith("verified credit: ")
    stages = listed(root)
    gto = {v: s for v, s in gto_shown(root).items() if v in stages}
    assert gto == {v: s if s in ("production", "staging") else "-" for v, s in stages.items()}
    assert stages[production(root)[0]] == "production"


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Params]:
    root = tmp_path_factory.mktemp("faults") / "project"
    params = build_project(root)
    with pytest.MonkeyPatch.context() as mp, chdir(root):
        mp.setenv("WANDB_MODE", "disabled")
        register.run(evaluated(root, params, features="all"))  # v1: production
    return root, params


def test_kill_9_at_each_phase_of_register_and_promote_leaves_a_consistent_registry(
    project: tuple[Path, Params],
) -> None:
    root, params = project
    seed = 0
    for phase in REGISTER_PHASES:  # a weaker model each time: registered as staging
        seed += 1
        with chdir(root):
            evaluated(root, params, features="weak", seed=seed)
        before = production(root)
        run(root, "-m", "tasks.register", pause=phase)
        assert production(root) == before  # a staging registration never touches production
        assert_consistent(root)
        assert production(root) == before

    for phase in PROMOTE_PHASES:
        before, target = production(root), max(listed(root))
        run(root, "-m", "tabml.registry", "promote", str(target), pause=phase)
        now = production(root)
        assert now == before or now[0] == target  # the log append is the commit point
        again = registry(root, "promote", str(target))
        assert again.returncode == 0, again.stderr
        assert again.stdout.startswith(f"promoted credit v{target} to production: ")
        assert production(root)[0] == target
        assert_consistent(root)
        seed += 1
        with chdir(root):
            evaluated(root, params, features="weak", seed=seed)
        assert run(root, "-m", "tasks.register").returncode == 0  # a fresh staging version for the next round


@pytest.mark.parametrize("damage", ["delete", "corrupt"])
def test_a_lost_or_corrupt_index_is_rebuilt_with_every_version_and_stage(
    project: tuple[Path, Params], tmp_path: Path, damage: str
) -> None:
    source, _ = project
    root = tmp_path / "copy"
    shutil.copytree(source, root, symlinks=True)
    stages, before = listed(root), production(root)
    index = root / "registry/credit/index.json"
    if damage == "delete":
        index.unlink()
    else:
        index.write_bytes(index.read_bytes()[: len(index.read_bytes()) // 2])
    done = registry(root, "list")
    assert done.returncode == 0 and f"{len(stages)} version(s)" in done.stdout.splitlines()[0]
    warning = [line for line in done.stderr.splitlines() if "rebuilt" in line]
    assert len(warning) == 1 and f"rebuilt {len(stages)} version(s) from" in warning[0]
    assert listed(root) == stages and production(root) == before
    assert_consistent(root)
    assert index.is_file() and listed(root) == stages


def test_a_broken_event_log_is_refused_in_one_line_with_production_untouched(
    project: tuple[Path, Params], tmp_path: Path
) -> None:
    source, _ = project
    root = tmp_path / "copy"
    shutil.copytree(source, root, symlinks=True)
    before = production(root)
    log = root / "registry/credit/events.jsonl"
    lines = log.read_text().splitlines(keepends=True)
    log.write_text(lines[0].replace('"action":"register"', '"action":"rollback"') + "".join(lines[1:]))
    (root / "registry/credit/index.json").unlink()
    done = registry(root, "list")
    assert done.returncode == ExitCode.BAD_INPUT
    assert done.stderr.startswith("[registry] FAILED: ") and "line 1 fails its checksum chain" in done.stderr
    log.write_text("".join(lines))
    assert production(root) == before
