"""`python -m tabml.report` on a registry on disk: the page, its links, and the failures a user can hit."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tabml.report.__main__ import main
from tests.tabml.report.test_runs import write_version
from tests.workspace import EXAMPLE_PARAMS


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """params.yaml and a registry holding credit v1 (archived) and v2 (production)."""
    shutil.copy(EXAMPLE_PARAMS, tmp_path / "params.yaml")
    registry = tmp_path / "registry"
    entries = [write_version(registry, 1, 0.81, "archived"), write_version(registry, 2, 0.84, "production")]
    (registry / "credit" / "index.json").write_text(json.dumps({"name": "credit", "versions": entries}))
    return tmp_path


def test_registry_versions_are_compared_with_links_to_their_packages(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = project / "reports" / "compare.html"
    assert main(["--registry", "--params", str(project / "params.yaml"), "--out", str(out)]) == 0
    assert "[report] " in capsys.readouterr().out
    html = out.read_text()
    assert "Best: v2, test auroc = 0.8400, +0.0300 better than v1 (0.8100)." in html
    assert '<a href="../registry/credit/versions/v2">credit v2 (production)</a>' in html
    assert "ROC/PR points are not kept in registry packages" in html


def test_an_unknown_version_fails_with_the_versions_that_exist(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--registry", "--versions", "9", "--params", str(project / "params.yaml")]) == 1
    assert "[report] FAILED: credit has no version(s) [9] (known: [1, 2])" in capsys.readouterr().err


def test_versions_without_registry_is_a_usage_error(project: Path) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--versions", "1", "--params", str(project / "params.yaml")])
    assert exit_info.value.code == 2


def test_a_missing_params_file_fails_cleanly(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--registry", "--params", str(tmp_path / "params.yaml")]) == 1
    assert "params.yaml: file not found" in capsys.readouterr().err
