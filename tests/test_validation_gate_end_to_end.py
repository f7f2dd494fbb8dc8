"""The validate stage as the pipeline's guard, through `dvc repro` in a real git + DVC repo.

A bad batch stops the run at validate, lands in quarantine with its evidence, and leaves the accepted
snapshot, every later stage's outputs and the registered model exactly as they were.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd
import pytest
import yaml

from tests.conftest import PROJECT, dvc, make_workspace, sh

pytestmark = pytest.mark.slow
STAGES = ["ingest", "validate", "preprocess", "train", "evaluate", "register"]
LANDING = Path("data/landing/credit.csv")
ACCEPTED = Path("data/snapshot/accepted.parquet")


def ran_stages(output: str) -> list[str]:
    return re.findall(r"Running stage '([\w-]+)'", output)


def untouched_state(root: Path) -> dict[str, object]:
    """What a rejected batch must not change: accepted snapshot, downstream lock entries, registry."""
    lock = yaml.safe_load((root / "dvc.lock").read_text())["stages"]
    return {
        "accepted": (root / ACCEPTED).read_bytes(),
        "downstream": {s: lock[s] for s in STAGES[2:]},
        "registry": (root / "registry/credit/index.json").read_text(),
        "model": (root / "models/train/model.safetensors").read_bytes(),
    }


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = make_workspace(tmp_path_factory.mktemp("gate") / "ws")
    assert ran_stages(dvc("repro", cwd=root).stdout) == STAGES
    return root


def test_a_drifted_batch_with_an_unseen_category_is_quarantined(repo: Path) -> None:
    before = untouched_state(repo)
    good = (repo / LANDING).read_bytes()
    bad = pd.read_csv(PROJECT / LANDING)
    bad["Income"] = bad["Income"] * 1.6
    bad.loc[5, "Home"] = "castle"
    bad.to_csv(repo / LANDING, index=False)

    proc = dvc("repro", cwd=repo, check=False)
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0 and ran_stages(output) == ["ingest", "validate"], output
    assert "[validate] FAILED" in output and "unseen categories, e.g. 'castle'" in output
    assert "column 'Income': distribution shifted, PSI" in output
    folder = repo / re.search(r"quarantined: (quarantine/credit/\d{8}T\d{6}Z)/", output).group(1)  # type: ignore[union-attr]
    evidence = {"table.parquet", "validation.json", "validation.html", "quarantine.json"}
    assert {p.name for p in folder.iterdir()} == evidence
    report = json.loads((repo / "reports/validation.json").read_text())
    assert not report["success"] and report["quarantine"] == str(folder.relative_to(repo))
    assert report["data_docs"] == "reports/validation.html" and (repo / report["data_docs"]).is_file()
    assert untouched_state(repo) == before  # accepted snapshot, later stages and the registered model
    status = sh("git", "status", "--porcelain", "--untracked-files=all", cwd=repo).stdout
    assert "quarantine" not in status  # kept on disk, out of git

    (repo / LANDING).write_bytes(good)
    proc = dvc("repro", cwd=repo)  # the good batch again: accepted snapshot unchanged, so nothing downstream reruns
    assert ran_stages(proc.stdout) == ["ingest", "validate"], proc.stdout
    assert untouched_state(repo) == before and folder.is_dir()
    assert ran_stages(dvc("repro", cwd=repo).stdout) == []


def test_a_ragged_csv_stops_at_ingest_with_the_fix(repo: Path) -> None:
    before = untouched_state(repo)
    good = (repo / LANDING).read_bytes()
    (repo / LANDING).write_bytes(good + b"bad," + b"1," * 20 + b"1\n")  # a row with too many fields
    proc = dvc("repro", cwd=repo, check=False)
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0 and ran_stages(output) == ["ingest"], output
    assert f"[ingest] FAILED: {LANDING}: rows do not all have the same number of fields" in output
    assert "what to do: fix the ragged rows" in output
    assert untouched_state(repo) == before
    (repo / LANDING).write_bytes(good)  # DVC removed the snapshot before the failed ingest; it comes back identical
    assert ran_stages(dvc("repro", cwd=repo).stdout) == ["ingest"]
    assert untouched_state(repo) == before
