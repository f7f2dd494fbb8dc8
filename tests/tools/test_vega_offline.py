"""The offline `dvc plots show` template: committed, self-contained, used by DVC, rendered by a real browser."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.browser import dom_after_scripts, needs_chromium
from tools.vega_offline import DEFAULT_OUT, MAX_BYTES, page

PROJECT = Path(__file__).resolve().parents[2]
TEMPLATE = PROJECT / DEFAULT_OUT


def test_the_committed_template_inlines_the_three_libraries_and_loads_nothing() -> None:
    html = TEMPLATE.read_text()
    provenance = json.loads((TEMPLATE.parent / "PROVENANCE.json").read_text())
    assert [p["package"] for p in provenance["inlined"]] == ["vega", "vega-lite", "vega-embed"]
    assert [p["version"].split(".")[0] for p in provenance["inlined"]] == ["5", "5", "6"]
    assert provenance["bytes"] == len(html.encode()) < MAX_BYTES
    assert html.count("{plot_divs}") == 1 and "{scripts}" not in html  # DVC's CDN tags have nowhere to go
    assert "<script src" not in html and "cdn.jsdelivr" not in html
    assert html.count('<script type="text/javascript">') == 3


def test_page_refuses_code_that_would_break_the_template() -> None:
    assert "{plot_divs}" in page({"a@1": "var a = 1;"})
    with pytest.raises(ValueError, match=r"contains \['\{plot_divs\}'\]"):
        page({"evil@1": "'{plot_divs}'"})
    with pytest.raises(ValueError, match="</script"):
        page({"evil@1": "'</SCRIPT>'"})


def show_plots(root: Path, out: str, *template: str) -> Path:
    cmd = [sys.executable, "-m", "dvc", "plots", "show", *template, "-o", out]
    subprocess.run(cmd, cwd=root, check=True, capture_output=True)
    return root / out / "index.html"


@pytest.fixture(scope="module")
def plots_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny DVC repo with one ROC-like plot."""
    root = tmp_path_factory.mktemp("plots")
    subprocess.run(["git", "init", "-q"], cwd=root, check=True)
    subprocess.run([sys.executable, "-m", "dvc", "init", "-q"], cwd=root, check=True)
    rows = [{"fpr": i / 10, "tpr": min(1.0, (i / 10) ** 0.5)} for i in range(11)]
    (root / "roc.json").write_text(json.dumps(rows))
    (root / "dvc.yaml").write_text("plots:\n  - roc.json:\n      x: fpr\n      y: tpr\n")
    return root


@pytest.fixture(scope="module")
def rendered(plots_repo: Path) -> Path:
    return show_plots(plots_repo, "offline", "--html-template", str(TEMPLATE))


def test_dvc_plots_show_fills_the_template_without_cdn_scripts(rendered: Path) -> None:
    html = rendered.read_text()
    assert "cdn.jsdelivr" not in html and "vegaEmbed(" in html and '"fpr"' in html
    assert len(html) > TEMPLATE.stat().st_size  # the template plus the plot


def test_the_project_config_makes_the_template_the_default() -> None:
    config = (PROJECT / ".dvc/config").read_text()
    assert "html_template = ../vega_offline/dvc_plots.html" in config  # relative to .dvc/, as DVC resolves it


@needs_chromium
def test_headless_chromium_draws_the_plot_offline_and_the_cdn_page_does_not(
    plots_repo: Path, rendered: Path, tmp_path: Path
) -> None:
    dom = dom_after_scripts(rendered, tmp_path / "profile")
    assert 'class="vega-embed' in dom and ("<canvas" in dom or "<svg" in dom)
    cdn_page = show_plots(plots_repo, "cdn")  # DVC's default page: scripts from jsdelivr
    assert 'class="vega-embed' not in dom_after_scripts(cdn_page, tmp_path / "profile2")
