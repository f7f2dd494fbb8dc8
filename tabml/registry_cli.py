"""`python -m tabml.registry list|show|promote|rollback`: look at the registry and move its stages by hand.

Every move is one atomic index write under the registry lock, then replayed as GTO tags (when
`register.gto_tags` is on) and, when W&B is online, as aliases in the W&B model registry.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from tabml.cli import StageError
from tabml.params import DEFAULT_PARAMS, Params, ParamsError, RegisterParams, load_params
from tabml.registry import (
    MANIFEST_FILE,
    RegistryIndex,
    VersionEntry,
    load_package,
    locked,
    model_dir,
    promote,
    read_index,
    rollback,
    stage_moves,
)

SHOWN_DOCUMENTS = ("lineage.json", "gate_report.json", "input_schema.json")


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
    top.add_argument("--name", help="model line (default: data.name from params)")
    sub = top.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="versions with stage, date and test metrics")
    show = sub.add_parser("show", help="one version after verifying its files: metrics, lineage, gate report")
    which = show.add_mutually_exclusive_group()
    which.add_argument("--version", type=_version_arg)
    which.add_argument("--stage", choices=["production", "staging", "archived"])
    move = sub.add_parser("promote", help="put a version in production (or staging); the holder is archived")
    move.add_argument("version", type=_version_arg)
    move.add_argument("--stage", choices=["production", "staging"], default="production")
    sub.add_parser("rollback", help="move production back to the previous production version")
    return top


def show(registry_dir: Path, name: str, version: int | None, stage: str | None) -> dict[str, object]:
    """The index entry and the package's lineage, gate report and input schema, after verifying every file."""
    package = load_package(registry_dir, name, version, stage)  # type: ignore[arg-type]
    shown: dict[str, object] = {"name": name, "dir": str(package.path), "verified": True}
    shown |= package.entry.model_dump(mode="json")
    shown["files"] = sorted([*package.sha256, MANIFEST_FILE])
    for document in SHOWN_DOCUMENTS:
        if (package.path / document).is_file():
            shown[document.removesuffix(".json")] = json.loads((package.path / document).read_text())
    return shown


def mirror(p: RegisterParams | None, params: Params | None, registry_dir: Path, name: str, moved: tuple) -> None:
    """Replay the index change in GTO tags and W&B aliases (both best-effort)."""
    before, after = moved
    moves = stage_moves(before, after)
    if p is not None and p.gto_tags and moves:
        from tabml.gto_tags import mirror_moves

        with locked(model_dir(registry_dir, name), p.lock_timeout_seconds):
            tags = mirror_moves(Path.cwd(), name, moves)
        print(f"GTO tags: {', '.join(tags) if tags is not None else 'skipped (see warning)'}")
    if params is not None:
        from tabml.wandb_publish import link_to_model_registry

        for version, _, new in moves:
            if new in ("staging", "production"):
                entry_dir = model_dir(registry_dir, name) / f"versions/v{version}"
                link_to_model_registry(params.tracking, None, entry_dir, name, version, new)


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        params = load_params(args.params) if args.params.exists() or not (args.registry_dir and args.name) else None
        registry_dir = args.registry_dir or params.register_.registry_dir  # type: ignore[union-attr]
        name = args.name or params.data.name  # type: ignore[union-attr]
        p = params.register_ if params else None
        timeout = p.lock_timeout_seconds if p else RegisterParams.model_fields["lock_timeout_seconds"].default
        if args.command == "list":
            index = read_index(model_dir(registry_dir, name))
            print(f"{name} ({model_dir(registry_dir, name)}): {len(index.versions)} version(s)")
            print("\n".join(summary_line(entry) for entry in index.versions))
            return 0
        if args.command == "show":
            print(json.dumps(show(registry_dir, name, args.version, args.stage), indent=2))
            return 0
        if args.command == "promote":
            moved = promote(registry_dir, name, args.version, lock_timeout=timeout, stage=args.stage)
            print(f"promoted {name} v{args.version} to {args.stage}: {moves_text(*moved) or 'no change'}")
        else:
            moved = rollback(registry_dir, name, lock_timeout=timeout)
            print(f"rolled back {name}: {moves_text(*moved)}")
        mirror(p, params, registry_dir, name, moved)
    except (StageError, ParamsError) as exc:
        print(f"[registry] FAILED: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
