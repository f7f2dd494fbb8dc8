"""The suite does not depend on the checkout's table: a copy switched to another table, as the README's "Use your
own table" says, still passes the fast tests (a bounded subset: layering, params, stage params, and stage tests).

The copy's params.yaml gets the `data:` section that `tabml.data.inspect_table` suggests for a synthetic churn
table, and the example table is removed, so any test that read the checkout's params or data would fail here.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.synthetic_tables import binary_table

pytestmark = pytest.mark.slow
PROJECT = Path(__file__).resolve().parents[1]
SUBSET = [  # fast tests that build their own workspaces and would break first on a checkout's params or data
    "tests/test_layering.py",
    "tests/test_stage_params.py",
    "tests/tabml/core/test_params.py",
    "tests/tasks/test_ingest.py",
    "tests/tasks/test_preprocess.py",
    "tests/tabml/orchestration/test_summary.py",
    "tests/tools/test_plot_targets.py",
]


def copy_checkout(dest: Path) -> Path:
    """The checkout's files as a clone would have them (tracked, plus new files git does not ignore)."""
    listed = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard"], cwd=PROJECT, capture_output=True, text=True, check=True
    ).stdout.splitlines()
    for name in listed:
        source = PROJECT / name
        if source.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dest / name)
    return dest


def test_a_copy_switched_to_another_table_passes_the_fast_tests(tmp_path: Path) -> None:
    root = copy_checkout(tmp_path / "project")
    example = yaml.safe_load((root / "params.yaml").read_text())["data"]["path"]
    (root / example).unlink(missing_ok=True)  # the example table is gone: nothing may read it
    (root / "data/landing").mkdir(parents=True, exist_ok=True)
    binary_table(400, seed=3).to_csv(root / "data/landing/churn.csv", index=False)
    env = {**os.environ, "PYTHONPATH": str(root)}
    suggest = [sys.executable, "-m", "tabml.data.inspect_table", "data/landing/churn.csv", "--target", "churn"]
    suggested = subprocess.run(suggest, cwd=root, env=env, capture_output=True, text=True, check=True).stdout
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["data"] = yaml.safe_load(suggested)["data"]  # step 3: paste it into params.yaml
    assert params["data"]["name"] == "churn" and params["data"]["task"] == "binary"
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))

    pytest_args = ["-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", "not slow", *SUBSET]
    done = subprocess.run([sys.executable, *pytest_args], cwd=root, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert " passed" in done.stdout.splitlines()[-1] and "failed" not in done.stdout.splitlines()[-1]
