"""Registry capabilities on a real pipeline run (dvc repro in a temp git + DVC repo): reproduce a registered
version from its anchor commit, score files with the Prefect batch-prediction flow, render the plots offline."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from tabml.core.errors import StageError
from tabml.core.params import load_params
from tests.browser import dom_after_scripts, needs_chromium
from tests.conftest import PROJECT, dvc, make_workspace, sh

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = make_workspace(tmp_path_factory.mktemp("registry") / "ws")
    dvc("repro", cwd=root)
    assert json.loads((root / "reports/registration.json").read_text())["stage"] == "production"
    return root


def test_reproduce_rebuilds_v1_in_a_clean_worktree_with_identical_weights(pipeline: Path) -> None:
    done = sh(sys.executable, "-m", "tabml.registry", "reproduce", "--version", "1", cwd=pipeline)
    assert "credit v1: reproduced: identical weights" in done.stdout
    certificate = json.loads((pipeline / "reports/reproduce/credit-v1.json").read_text())
    assert certificate["reproduced"] is True and certificate["weights"]["identical"] is True
    assert certificate["restored_from_dvc_cache"] == ["data/snapshot/accepted.parquet"]
    assert certificate["rebuilt_stages"] == ["preprocess", "train", "evaluate"]
    assert all(d == 0.0 for d in certificate["metrics"]["abs_diff"].values())
    anchor = sh("git", "rev-parse", "credit@v1.0.0^{commit}", cwd=pipeline).stdout.strip()
    assert certificate["anchor_commit"] == anchor
    assert sh("git", "worktree", "list", cwd=pipeline).stdout.count("\n") == 1  # the worktree is gone
    assert sh("git", "status", "--porcelain", "--untracked-files=no", cwd=pipeline).stdout.strip() in ("", "M dvc.lock")


def test_reproduce_refuses_a_version_without_an_anchor_or_with_a_tampered_package(pipeline: Path) -> None:
    anchor = sh("git", "rev-parse", "credit@v1.0.0^{commit}", cwd=pipeline).stdout.strip()
    sh("git", "tag", "-d", "credit@v1.0.0", cwd=pipeline)
    try:
        done = sh(sys.executable, "-m", "tabml.registry", "reproduce", "--version", "1", cwd=pipeline, check=False)
        assert done.returncode == 65 and "no GTO tag credit@v1.0.0" in done.stderr
    finally:
        sh("git", "tag", "credit@v1.0.0", anchor, cwd=pipeline)
    history = pipeline / "registry/credit/versions/v1/history.csv"
    original = history.read_bytes()
    history.write_bytes(original + b"\n")
    try:
        done = sh(sys.executable, "-m", "tabml.registry", "reproduce", "--version", "1", cwd=pipeline, check=False)
        assert done.returncode == 65 and "history.csv: sha256 does not match MANIFEST.json" in done.stderr
    finally:
        history.write_bytes(original)


@pytest.fixture(scope="module")
def prefect_server() -> Iterator[None]:
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness():
        yield


def test_the_batch_prediction_flow_scores_a_file_with_production(pipeline: Path, prefect_server: None) -> None:
    from flows.predict import batch_predict

    rows = pd.read_csv(pipeline / "data/landing/credit.csv").head(40).drop(columns=["Status"])
    rows.to_csv(pipeline / "new.csv", index=False)
    written = batch_predict("new.csv", "scored/new.parquet", root=str(pipeline))
    out = pd.read_parquet(written)
    assert len(out) == 40 and list(out.columns) == ["prediction", "proba_bad", "model_name", "model_version"]
    assert out["model_version"].eq(1).all() and set(out["prediction"]) <= {"good", "bad"}

    rows.drop(columns=["Income"]).to_csv(pipeline / "short.csv", index=False)
    with pytest.raises(StageError, match=r"missing columns \['Income'\]"):
        batch_predict("short.csv", "scored/short.csv", root=str(pipeline))
    assert not (pipeline / "scored/short.csv").exists()


@needs_chromium
def test_the_pipeline_plots_render_offline(pipeline: Path, tmp_path: Path) -> None:
    template = PROJECT / "vega_offline/dvc_plots.html"
    dvc("plots", "show", "--html-template", str(template), "-o", str(tmp_path / "plots"), cwd=pipeline, check=False)
    page = tmp_path / "plots/index.html"
    dom = dom_after_scripts(page, tmp_path / "profile", budget_ms=15_000)
    params = load_params(pipeline / "params.yaml")
    assert params.data.task == "binary"
    # training curves, ROC, PR, confusion, calibration, slices
    assert dom.count('class="vega-embed') >= 6, dom[-3000:]
