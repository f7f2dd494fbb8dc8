"""Checkpoint files that are whole or absent: atomic saves, and a check that sets an unreadable one aside.

Lightning's own local save streams through a temp file in the system temp folder and then copies it over the
checkpoint, so a kill during the copy leaves a truncated `last.ckpt` (every rerun then fails in torch's zip
reader). Here a checkpoint is written beside its final name, fsynced and renamed into place; a checkpoint that
still cannot be read (a full disk, a copy from elsewhere) is renamed aside with a warning and training starts over.
"""

from __future__ import annotations

import os
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO

from tabml.core.files import fsync_dir


class AtomicCheckpointIO(TorchCheckpointIO):
    """torch.save to `.<name>.<random>.tmp` beside the target, fsync, os.replace: readers see old or new, never half."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any | None = None) -> None:
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex}.tmp")
        try:
            with tmp.open("wb") as fh:
                torch.save(checkpoint, fh)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, target)
        finally:
            tmp.unlink(missing_ok=True)
        fsync_dir(target.parent)


def unreadable_reason(path: Path) -> str | None:
    """None when torch can load `path` as Lightning will (weights_only); else the error, in one short line."""
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises RuntimeError, EOFError, UnpicklingError, ... for bad bytes
        return " ".join(str(exc).split())[:160] or type(exc).__name__
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint:
        return "not a Lightning checkpoint (no state_dict)"
    return None


def set_aside_path(checkpoint: Path) -> Path:
    """Where an unreadable checkpoint goes: beside its folder, so a fresh start (which clears the folder) keeps it."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    folder = checkpoint.parent
    return folder.with_name(f"{folder.name}.unreadable") / f"{checkpoint.stem}-{stamp}{checkpoint.suffix}"


def set_aside(checkpoint: Path, dest: Path) -> None:
    """Rank 0: move the unreadable checkpoint to `dest` (a rank that reads meanwhile also decides to start over)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.replace(checkpoint, dest)
    except FileNotFoundError:  # another process moved it first
        return


def clear_temps(folder: Path) -> None:
    """Remove temp files that a killed save left (never read: a checkpoint is only ever its final name)."""
    for tmp in folder.glob(".*.tmp"):
        tmp.unlink(missing_ok=True)
