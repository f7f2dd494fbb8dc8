"""Quarantine: a rejected snapshot is set aside with the evidence of why. Nothing is deleted or overwritten."""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

MANIFEST = "quarantine.json"
GITIGNORE = "# rejected snapshots stay on disk for inspection, never in git\n*\n"


def quarantine_folder(root: Path, dataset: str, now: datetime) -> Path:
    """A folder that does not exist yet: `<root>/<dataset>/<UTC time>`, with `-2`, `-3`... within one second."""
    stamp = now.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
    folder, n = root / dataset / stamp, 1
    while folder.exists() or folder.with_name(f".{folder.name}.partial").exists():
        n += 1
        folder = root / dataset / f"{stamp}-{n}"
    return folder


def quarantine(folder: Path, files: list[Path], manifest: dict[str, Any]) -> Path:
    """Copy `files` and a manifest into the new `folder`; it appears complete or not at all."""
    if folder.exists():
        raise FileExistsError(f"{folder}: already holds a quarantined batch; pick a new folder (quarantine_folder)")
    root = folder.parent.parent
    root.mkdir(parents=True, exist_ok=True)
    if not (root / ".gitignore").exists():  # self-ignoring, so any project using this folder keeps it out of git
        (root / ".gitignore").write_text(GITIGNORE)
    staging = folder.with_name(f".{folder.name}.partial")
    staging.mkdir(parents=True)
    try:
        copied = []
        for path in files:
            if path.is_file():
                shutil.copy2(path, staging / path.name)
                copied.append(path.name)
        (staging / MANIFEST).write_text(json.dumps({**manifest, "files": copied}, indent=2, default=str) + "\n")
        staging.rename(folder)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)  # a full disk: no half-copied batch left behind
        raise
    return folder


def quarantined(root: Path, dataset: str) -> list[Path]:
    """The dataset's quarantine folders, oldest first."""
    folders = (root / dataset).glob("*/" + MANIFEST) if (root / dataset).is_dir() else []
    return sorted(p.parent for p in folders)
