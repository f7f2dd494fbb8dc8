"""`registry verify`: every package against its MANIFEST (and signature), the index against the event log, and
the GTO tags against the index. Read-only: it reports, `registry repair` fixes what can be fixed."""

from __future__ import annotations

from pathlib import Path

from tabml.registry.events import replay
from tabml.registry.gto import GTO_STAGES, gto_stages, repo_root
from tabml.registry.index import RegistryError, RegistryIndex
from tabml.registry.package import verify
from tabml.registry.recovery import current_index
from tabml.registry.remote import fetch_version
from tabml.registry.store import model_dir, refreshed


def _gto_problems(name: str, index: RegistryIndex) -> list[str]:
    try:
        root = str(repo_root(Path.cwd()))
    except RuntimeError:  # not a git repository: there is no mirror (registration skips it too)
        return []
    actual = gto_stages(root, name)
    problems = []
    for entry in index.versions:
        wanted = {entry.stage} & set(GTO_STAGES)
        if entry.version not in actual:
            problems.append(f"GTO: v{entry.version} is not registered")
        elif actual[entry.version] != wanted:
            held = ", ".join(sorted(actual[entry.version])) or "no stage"
            problems.append(f"GTO: v{entry.version} holds {held}, the index says {entry.stage or 'no stage'}")
    for version in sorted(set(actual) - {v.version for v in index.versions}):
        if actual[version]:
            problems.append(f"GTO: v{version} holds {', '.join(sorted(actual[version]))} but is not in the index")
    return problems


def verify_line(registry_dir: Path, name: str, key: bytes | None, gto: bool) -> tuple[list[str], RegistryIndex]:
    """The problems found (empty: all agree) and the index they were checked against."""
    mdir = refreshed(model_dir(registry_dir, name))
    state = current_index(mdir)
    problems = [f"index.json: {state.rebuilt_because}"] if state.rebuilt_because else []
    if state.events and replay(name, state.events).versions != state.index.versions:
        problems.append("index.json differs from what events.jsonl records")
    for entry in state.index.versions:
        try:
            fetch_version(mdir, entry.path, again=True)  # a bucket's package: what it holds now (no-op locally)
            verify(mdir / entry.path, entry.manifest_sha256, key)
        except RegistryError as exc:
            problems.append(f"v{entry.version}: {exc.where}: {exc.what}")
    if gto:
        problems += _gto_problems(name, state.index)
    return problems, state.index
