"""Quarantine folders: new every time, complete or absent, never in git, nothing overwritten."""

from __future__ import annotations

import json
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tabml.core.files import sha256_file
from tabml.validation.quarantine import MANIFEST, quarantine, quarantine_folder, quarantined

NOW = datetime(2026, 3, 1, 12, 30, 5, tzinfo=UTC)


def evidence(root: Path) -> list[Path]:
    (root / "in").mkdir()
    files = [root / "in/table.parquet", root / "in/validation.json", root / "in/validation.html"]
    for i, path in enumerate(files):
        path.write_text(f"content {i}")
    return files


def test_a_rejected_batch_gets_its_own_folder_with_evidence_and_manifest(tmp_path: Path) -> None:
    files = evidence(tmp_path)
    folder = quarantine_folder(tmp_path / "quarantine", "credit", NOW)
    assert folder == tmp_path / "quarantine/credit/20260301T123005Z"
    assert quarantine(folder, [*files, tmp_path / "in/absent.json"], {"errors": ["bad"]}) == folder
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        [MANIFEST, "table.parquet", "validation.json", "validation.html"]
    )
    assert (folder / "table.parquet").read_text() == "content 0"
    manifest = json.loads((folder / MANIFEST).read_text())
    assert manifest == {"errors": ["bad"], "files": ["table.parquet", "validation.json", "validation.html"]}
    assert all(p.exists() for p in files)  # copied, not moved: ingest's output stays where DVC expects it
    assert not list(folder.parent.glob(".*partial"))


def test_a_second_rejection_in_the_same_second_never_overwrites_the_first(tmp_path: Path) -> None:
    files = evidence(tmp_path)
    first = quarantine(quarantine_folder(tmp_path / "q", "credit", NOW), files, {"n": 1})
    second = quarantine(quarantine_folder(tmp_path / "q", "credit", NOW), files, {"n": 2})
    assert second.name == "20260301T123005Z-2" and json.loads((first / MANIFEST).read_text())["n"] == 1
    assert quarantined(tmp_path / "q", "credit") == [first, second]
    assert quarantined(tmp_path / "q", "other") == []


def test_quarantine_is_ignored_by_git(tmp_path: Path) -> None:
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    quarantine(quarantine_folder(tmp_path / "quarantine", "credit", NOW), evidence(tmp_path), {})
    status = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=all"], cwd=tmp_path, capture_output=True, text=True
    )
    assert "quarantine" not in status.stdout and "in/table.parquet" in status.stdout


def test_an_existing_folder_is_refused_rather_than_merged(tmp_path: Path) -> None:
    folder = quarantine(quarantine_folder(tmp_path / "q", "credit", NOW), evidence(tmp_path), {})
    with pytest.raises(FileExistsError):
        quarantine(folder, [], {})


def test_sha256_file(tmp_path: Path) -> None:
    (tmp_path / "f").write_bytes(b"abc")
    assert sha256_file(tmp_path / "f") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
