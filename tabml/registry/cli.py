"""`python -m tabml.registry list|show|promote|rollback|repair|verify|reproduce`: look at the registry, move its
stages by hand, rebuild its index from disk, check it end to end, rebuild a version from its lineage.

Every move is one logged, atomic index write under the registry lock; then the GTO tags are reconciled with the
index (when `register.gto_tags` is on) and, when W&B is online, the W&B model registry gets its aliases.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path

from tabml.core.env import quiet_telemetry
from tabml.core.errors import ExitCode, StageError
from tabml.core.params import DEFAULT_PARAMS, MODEL_NAME_PATTERN, Params, ParamsError, load_params
from tabml.registry.index import RegistryIndex, VersionEntry, stage_moves
from tabml.registry.package import DOCUMENTS, MANIFEST_FILE, signing_key
from tabml.registry.store import load_package, locked, model_dir, promote, read_index, repair, rollback, where


def model_name_arg(text: str) -> str:
    """argparse type: a model line name (`../x` and `a/b` are refused before anything is opened)."""
    import re

    if not re.fullmatch(MODEL_NAME_PATTERN, text):
        raise argparse.ArgumentTypeError(f"not a model name: {text!r} (lower-case letters, digits, '-')")
    return text


MIRROR_FILES = [DEFAULT_PARAMS, Path("dvc.lock")]  # what an anchor commit carries (tabml.registry.gto)


def _version_arg(text: str) -> int:
    digits = text.removeprefix("v")
    if not digits.isdigit():
        raise argparse.ArgumentTypeError(f"not a version: {text!r} (write 3 or v3)")
    return int(digits)


def summary_line(entry: VersionEntry) -> str:
    metrics = " ".join(f"{k}={v:.4g}" for k, v in entry.metrics.items() if v is not None)
    return f"  v{entry.version:<4} {entry.stage or '-':<11} {entry.created_at}  {metrics}"


def moves_text(before: RegistryIndex, after: RegistryIndex) -> str:
    """`v3 staging -> production, v1 production -> archived`"""
    return ", ".join(f"v{v} {old or 'none'} -> {new or 'none'}" for v, old, new in stage_moves(before, after))


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="python -m tabml.registry", description="Inspect and move registry stages.")
    top.add_argument("--params", type=Path, default=DEFAULT_PARAMS, help="params file (default: params.yaml)")
    top.add_argument("--registry-dir", type=Path, help="default: register.registry_dir from params")
    top.add_argument("--name", type=model_name_arg, help="model line (default: data.name from params)")
    top.add_argument("--lock-timeout", type=float, help="seconds to wait for the registry lock (default: params)")
    sub = top.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="versions with stage, date and test metrics")
    show = sub.add_parser("show", help="one version after verifying its files: metrics, lineage, gate report")
    which = show.add_mutually_exclusive_group()
    which.add_argument("--version", type=_version_arg)
    which.add_argument("--stage", choices=["production", "staging", "archived"])
    show.add_argument("--json", action="store_true", help="the raw record (index entry, lineage, gate report, schema)")
    move = sub.add_parser("promote", help="put a version in production (or staging); the holder is archived")
    move.add_argument("version", type=_version_arg)
    move.add_argument("--stage", choices=["production", "staging"], default="production")
    sub.add_parser("rollback", help="move production back to the previous production version")
    sub.add_parser("repair", help="rebuild index.json from the version folders and events.jsonl; reconcile GTO")
    sub.add_parser("verify", help="check every package, the index against the log, and the GTO mirror")
    rebuild = sub.add_parser("reproduce", help="rebuild a version from its lineage in a fresh worktree; certify it")
    rebuild.add_argument("--version", type=_version_arg, required=True)
    rebuild.add_argument("--keep-worktree", action="store_true", help="leave the worktree for inspection")
    return top


def show(
    registry_dir: Path, name: str, version: int | None, stage: str | None, key: bytes | None = None
) -> dict[str, object]:
    """The index entry and the package's lineage, gate report and input schema, after verifying every file."""
    package = load_package(registry_dir, name, version, stage, key)  # type: ignore[arg-type]
    shown: dict[str, object] = {"name": name, "dir": str(package.path), "verified": True}
    shown |= package.entry.model_dump(mode="json")
    shown["files"] = sorted([*package.sha256, MANIFEST_FILE])
    for document in DOCUMENTS:
        if (package.path / document).is_file():
            shown[document.removesuffix(".json")] = json.loads((package.path / document).read_text())
    return shown


def mirror(t: Target, moved: tuple[RegistryIndex, RegistryIndex]) -> None:
    """Reconcile GTO's tags with the index (even after no move: a crash may have left them behind) and give W&B
    the new aliases (both best-effort); needs params.yaml."""
    if t.params is None:
        return
    if t.params.register_.gto_tags:
        from tabml.registry.gto import reconcile

        with locked(model_dir(t.registry_dir, t.name), lock_timeout(t)):
            synced = reconcile(Path.cwd(), t.name, read_index(model_dir(t.registry_dir, t.name)), MIRROR_FILES)
        tags = synced["tags"] if synced is not None else None
        if tags != []:
            print(f"GTO tags: {', '.join(tags) if isinstance(tags, list) else 'skipped (see warning)'}")
    from tabml.tracking.model_registry import link_to_model_registry

    for version, _, new in stage_moves(*moved):
        if new in ("staging", "production"):
            entry_dir = model_dir(t.registry_dir, t.name) / f"versions/v{version}"
            link_to_model_registry(t.params.tracking, None, entry_dir, t.name, version, new)


@dataclass(frozen=True)
class Target:
    """Which registry and model line a command works on, and the params behind them (None: no params.yaml)."""

    registry_dir: Path
    name: str
    lock_timeout: float | None  # None: no params.yaml and no --lock-timeout (read-only commands need none)
    params: Params | None


def resolve_target(args: argparse.Namespace) -> Target:
    """Flags win over params.yaml; without a params file, --registry-dir and --name are needed."""
    params = load_params(args.params) if args.params.exists() or not (args.registry_dir and args.name) else None
    timeout = args.lock_timeout if args.lock_timeout is not None else None
    if timeout is None and params is not None:
        timeout = params.register_.lock_timeout_seconds
    return Target(
        registry_dir=args.registry_dir or params.register_.registry_dir,  # type: ignore[union-attr]
        name=args.name or params.data.name,  # type: ignore[union-attr]
        lock_timeout=timeout,
        params=params,
    )


def lock_timeout(t: Target) -> float:
    if t.lock_timeout is None:
        raise StageError(
            "no params.yaml here to read register.lock_timeout_seconds from",
            t.registry_dir,
            "pass --lock-timeout SECONDS, or run from the project root",
        )
    return t.lock_timeout


def list_versions(t: Target, args: argparse.Namespace) -> int:
    index = read_index(model_dir(t.registry_dir, t.name))
    print(f"{t.name} ({where(model_dir(t.registry_dir, t.name))}): {len(index.versions)} version(s)")
    print("\n".join(summary_line(entry) for entry in index.versions))
    return 0


def key_of(t: Target) -> bytes | None:
    return signing_key(t.params.register_) if t.params is not None else None


def show_version(t: Target, args: argparse.Namespace) -> int:
    from tabml.registry.show_text import show_text

    shown = show(t.registry_dir, t.name, args.version, args.stage, key_of(t))
    print(json.dumps(shown, indent=2) if args.json else show_text(shown))
    return 0


def promote_version(t: Target, args: argparse.Namespace) -> int:
    moved = promote(t.registry_dir, t.name, args.version, lock_timeout=lock_timeout(t), stage=args.stage)
    print(f"promoted {t.name} v{args.version} to {args.stage}: {moves_text(*moved) or 'no change'}")
    mirror(t, moved)
    return 0


def roll_back(t: Target, args: argparse.Namespace) -> int:
    moved = rollback(t.registry_dir, t.name, lock_timeout=lock_timeout(t))
    print(f"rolled back {t.name}: {moves_text(*moved)}")
    mirror(t, moved)
    return 0


def repair_line(t: Target, args: argparse.Namespace) -> int:
    state, index = repair(t.registry_dir, t.name, lock_timeout=lock_timeout(t))
    if state.rebuilt_because:
        print(f"repaired {t.name}: {state.rebuilt_because}; index.json rewritten with {len(index.versions)} version(s)")
    else:
        print(f"{t.name}: index.json agrees with events.jsonl ({len(index.versions)} version(s))")
    mirror(t, (index, index))
    return 0


def verify_line(t: Target, args: argparse.Namespace) -> int:
    from tabml.registry.checkup import verify_line as check

    problems, index = check(t.registry_dir, t.name, key_of(t), t.params is not None and t.params.register_.gto_tags)
    for problem in problems:
        print(f"[registry] {problem}", file=sys.stderr)
    if problems:
        raise StageError(f"{len(problems)} problem(s) in {t.name}", model_dir(t.registry_dir, t.name), REPAIR_TODO)
    production = index.in_stage("production")
    where = f"production v{production.version}" if production else "no production version"
    print(f"verified {t.name}: {len(index.versions)} version(s), {where}; every package matches its MANIFEST")
    return 0


REPAIR_TODO = "run `python -m tabml.registry repair`; a tampered package must be registered again"


def reproduce_version(t: Target, args: argparse.Namespace) -> int:
    from tabml.registry.reproduce import certificate_path, reproduce

    if t.params is None:
        raise StageError("reproduce needs the project's params.yaml", args.params, "run it from the project root")
    certificate = reproduce(t.params, t.name, args.version, keep=args.keep_worktree)
    out = certificate_path(t.params, t.name, args.version)
    print(f"{t.name} v{args.version}: {certificate['verdict']} ({certificate['seconds']}s); certificate: {out}")
    return 0 if certificate["reproduced"] else 1


COMMANDS = {
    "list": list_versions,
    "show": show_version,
    "promote": promote_version,
    "rollback": roll_back,
    "repair": repair_line,
    "verify": verify_line,
    "reproduce": reproduce_version,
}


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    quiet_telemetry()
    try:
        return COMMANDS[args.command](resolve_target(args), args)
    except (StageError, ParamsError) as exc:
        print(f"[registry] FAILED: {exc}", file=sys.stderr)
        return exc.exit_code if isinstance(exc, StageError) else ExitCode.BAD_INPUT
