"""Every page a user looks at, rendered in headless Chromium and checked for what it must show, each kept as a
screenshot in reports/screenshots/ (the workspace's, and the checkout's for review: tests/browser.py `keep`).

One pipeline run per module, in a temp workspace, reported to `python -m flows.deploy server` (what `make server`
runs: the Prefect API and UI, and the reports server) on free loopback ports; then one `dvc exp run`, `make plots`'s
`dvc plots show` and `make report`'s compare page. The Prefect UI is its own JS app: the run graph is drawn on a
canvas, so the six stages are counted there as drawn task-run bars and named from the Task Runs tab's list.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import yaml
from PIL import Image

from flows.pipeline import training_pipeline
from tabml.orchestration.reports_server import REPORTS_URL_ENV
from tests.browser import dom_after_scripts, keep, live_page, needs_chromium, screenshot
from tests.conftest import PROJECT, dvc, edit_params, make_workspace, sh
from tests.flows.conftest import STARTUP_TIMEOUT_SECONDS, free_port, started
from tests.flows.test_pipeline_dag import task_run_states
from tests.workspace import commit_all
from tools.plot_targets import plot_targets

pytestmark = [pytest.mark.slow, needs_chromium]
STAGES = ["ingest", "validate", "preprocess", "train", "evaluate", "register"]
EXPERIMENT = "lr-3e-3"
MIN_BAR_PIXELS = 40  # at half scale; a one-second stage is ~10 x 15 here, a label edge a few pixels
COMPLETED_GREEN = (33, 157, 75)  # the UI's colour of a Completed task run (a Skipped one too: its type is Completed)
# The plots page as the user gets it, drawn with Vega's SVG renderer instead of canvas so that its titles and axis
# titles are text in the DOM: the same charts from the same specs, only drawn differently.
SVG_RENDERER = """(() => { let embed; Object.defineProperty(window, 'vegaEmbed', { configurable: true,
  get() { return embed; },
  set(real) { embed = (el, spec, opts) => real(el, spec, { ...(opts || {}), renderer: 'svg' }); } }); })();"""


@dataclass(frozen=True)
class Site:
    root: Path  # the workspace
    ui: str  # the Prefect UI, http://127.0.0.1:<port>
    reports: str  # the reports server
    flow_run_id: str  # the run that ran every stage
    cached_run_id: str  # a later run that found every stage up to date
    shots: Path  # the workspace's reports/screenshots/

    def shot(self, page: str) -> Path:
        return self.shots / f"{page}.png"

    def profile(self, name: str) -> Path:
        """A fresh Chromium profile, outside the served folders."""
        return self.root.parent / "chromium" / name


def wait_until_up(url: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        with suppress(httpx.HTTPError):
            if httpx.get(url, timeout=2).status_code == 200:
                return
        assert proc.poll() is None, log.read_text()[-3000:]
        time.sleep(0.5)
    pytest.fail(f"{url} did not come up:\n{log.read_text()[-3000:]}")


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    from prefect.logging.handlers import APILogHandler
    from prefect.settings import PREFECT_API_URL, temporary_settings

    tmp = tmp_path_factory.mktemp("pages")
    root = make_workspace(tmp / "ws")
    ui_port, reports_port = free_port(), free_port()
    edit_params(root, orchestration={"reports_server": {"host": "127.0.0.1", "port": reports_port}})
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_") and k != REPORTS_URL_ENV}
    env |= {
        "PREFECT_HOME": str(tmp / "prefect"),
        "PREFECT_UI_ENABLED": "true",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    }
    server = [sys.executable, "-m", "flows.deploy", "--root", ".", "server", "--port", str(ui_port)]
    ui, api, reports = (
        f"http://127.0.0.1:{ui_port}",
        f"http://127.0.0.1:{ui_port}/api",
        f"http://127.0.0.1:{reports_port}",
    )
    with started(server, cwd=root, env=env, log=tmp / "server.log") as proc, pytest.MonkeyPatch.context() as patch:
        wait_until_up(f"{api}/health", proc, tmp / "server.log")
        patch.delenv(REPORTS_URL_ENV, raising=False)  # the summary's links then come from params, as for a user
        with temporary_settings({PREFECT_API_URL: api}):
            state = training_pipeline(root=str(root), return_state=True)
            APILogHandler().flush()
            assert state.is_completed(), state.message
            flow_run_id = str(state.state_details.flow_run_id)
            assert len(task_run_states(flow_run_id, len(STAGES))) == len(STAGES)  # recorded before the UI reads them
        commit_all(root, "the pipeline's first run")
        dvc("exp", "run", "-n", EXPERIMENT, "-S", "train.lr=0.003", cwd=root)  # a second row for the compare page
        with temporary_settings({PREFECT_API_URL: api}):  # and a flow run with nothing to do: six Skipped stages
            cached = training_pipeline(root=str(root), return_state=True)
            APILogHandler().flush()
            cached_run_id = str(cached.state_details.flow_run_id)
            assert set(task_run_states(cached_run_id, len(STAGES)).values()) == {("COMPLETED", "Skipped")}
        template = PROJECT / "vega_offline/dvc_plots.html"  # the checkout's .dvc/config names it; this repo's none
        dvc("plots", "show", *plot_targets(root), "--html-template", str(template), cwd=root)  # `make plots`
        sh(sys.executable, "-m", "tabml.report", "--last", "2", cwd=root)  # `make report`
        shots = root / "reports" / "screenshots"
        shots.mkdir(parents=True)
        yield Site(root, ui, reports, flow_run_id=flow_run_id, cached_run_id=cached_run_id, shots=shots)


def drawn_bars(png: Path, box: tuple[int, int, int, int]) -> int:
    """Separate areas of Completed green inside `box` (the graph, less its state bar): the task-run bars drawn.
    Specks (anti-aliased label edges) are not bars."""
    with Image.open(png) as image:
        crop = image.convert("RGB").crop(box).reduce(2)
    width, height = crop.size
    pixels = crop.load()
    green = {(x, y) for x in range(width) for y in range(height) if _near(pixels[x, y], COMPLETED_GREEN)}
    sizes = []
    while green:
        todo, size = [green.pop()], 1
        while todo:
            x, y = todo.pop()
            for neighbour in ((x + 1, y), (x - 1, y), (x, y + 1), (x, y - 1)):
                if neighbour in green:
                    green.remove(neighbour)
                    todo.append(neighbour)
                    size += 1
        sizes.append(size)
    return sum(size >= MIN_BAR_PIXELS for size in sizes)


def _near(pixel: object, colour: tuple[int, int, int]) -> bool:
    return isinstance(pixel, tuple) and all(abs(int(a) - b) <= 12 for a, b in zip(pixel, colour, strict=False))


TAB = "[...document.querySelectorAll('[role=tablist] li')].find(e => e.textContent.trim() === 'Task Runs')"
TASK_RUN_LINKS = "[...document.querySelectorAll('a[href*=\"/runs/task-run/\"]')]"


def test_the_flow_run_page_draws_six_stages_and_lists_them_as_named_task_runs(site: Site) -> None:
    with live_page(site.profile("ui"), 1400, 1000) as page:
        page.goto(f"{site.ui}/runs/flow-run/{site.flow_run_id}")
        page.wait_for(f"{TAB} && document.querySelector('canvas')", "the run graph and tabs")
        box = page.evaluate(
            "(() => { const r = document.querySelector('canvas').getBoundingClientRect();"
            " return [r.left, r.top, r.right, r.bottom - 24].map(Math.round); })()"
        )
        deadline, bars = time.monotonic() + 90, 0
        while bars != len(STAGES) and time.monotonic() < deadline:  # the graph lays its nodes out after loading
            bars = drawn_bars(page.screenshot(site.shot("prefect-flow-run-graph")), tuple(box))
        assert bars == len(STAGES), f"the run graph shows {bars} task-run bars, not one per stage"
        assert f"{len(STAGES)} Task runs" in page.text()
        page.evaluate(f"{TAB}.click()")
        page.wait_for(f"{TASK_RUN_LINKS}.length >= {len(STAGES)}", "the task-run list")
        listed = page.evaluate(f"{TASK_RUN_LINKS}.map(a => a.textContent.trim())")
        page.screenshot(site.shot("prefect-task-runs"))
    assert sorted(listed) == sorted(STAGES)
    keep(site.shot("prefect-flow-run-graph"))
    keep(site.shot("prefect-task-runs"))


def test_a_run_with_nothing_to_do_lists_six_task_runs_each_skipped(site: Site) -> None:
    with live_page(site.profile("cached"), 1400, 1000) as page:
        page.goto(f"{site.ui}/runs/flow-run/{site.cached_run_id}")
        page.wait_for(TAB, "the tabs")
        page.evaluate(f"{TAB}.click()")
        page.wait_for(f"{TASK_RUN_LINKS}.length >= {len(STAGES)}", "the task-run list")
        rows = page.evaluate(  # each task run's row: its name link and its state badge
            f"Object.fromEntries({TASK_RUN_LINKS}.map(a => [a.textContent.trim(),"
            " (a.closest('.state-list-item') || a.parentElement.parentElement).innerText]))"
        )
        page.screenshot(site.shot("prefect-task-runs-skipped"))
    assert sorted(rows) == sorted(STAGES)
    for name, row in rows.items():  # a row of its own: its name first, then its state
        assert row.split()[:2] == [name, "Skipped"], row
    keep(site.shot("prefect-task-runs-skipped"))


def run_artifacts(flow_run_id: str, api: str) -> dict[str, dict]:
    body = {"artifacts": {"flow_run_id": {"any_": [flow_run_id]}}}
    return {a["key"]: a for a in httpx.post(f"{api}/artifacts/filter", json=body, timeout=30).json()}


def test_the_summary_artifact_shows_every_section_and_its_links_open(site: Site) -> None:
    artifacts = run_artifacts(site.flow_run_id, f"{site.ui}/api")
    page = f"{site.ui}/artifacts/artifact/{artifacts['pipeline-summary']['id']}"
    dom = dom_after_scripts(page, site.profile("summary"), budget_ms=20_000)
    for heading in ("Training pipeline: succeeded", "Validation", "Evaluation (test split)", "Registration", "Pages"):
        assert f">{heading}</h" in dom, heading
    assert all(re.search(rf"<td[^>]*>\s*{stage}\s*</td>", dom) for stage in STAGES), "a stage is missing"
    assert "auroc" in dom and "version: 1" in dom
    written = re.findall(r"\]\((http[^)]+)\)", str(artifacts["pipeline-summary"]["data"]))  # the Markdown's links
    assert written and f"{site.reports}/validation.html" in written and "file://" not in dom
    assert all(f'href="{link}"' in dom for link in written)  # drawn as links on the page
    assert f"({site.reports}/validation.html)" in str(artifacts["data-docs"]["data"])  # and as a link artifact
    for link in written:  # every link opens: the reports server answers it with the page
        response = httpx.get(link, timeout=30)
        assert response.status_code == 200 and response.text.lstrip().lower().startswith("<!doctype html"), link
    screenshot(page, site.shot("prefect-summary-artifact"), 1400, 1400)  # rendered, not blank
    keep(site.shot("prefect-summary-artifact"))


def test_dvc_plots_show_draws_each_plot_with_its_title_and_axis_titles(site: Site) -> None:
    specs = {k: v for entry in yaml.safe_load((site.root / "dvc.yaml").read_text())["plots"] for k, v in entry.items()}
    targets = plot_targets(site.root)
    assert "residuals" not in targets and "roc" in targets  # a binary task: exactly its plots
    with live_page(site.profile("plots"), 1400, 1000, before_scripts=SVG_RENDERER) as page:
        page.goto(f"{site.reports}/dvc_plots/index.html")
        page.wait_for(f"document.querySelectorAll('.vega-embed svg.marks').length === {len(targets)}", "every plot")
        texts = page.evaluate(
            "Object.fromEntries([...document.querySelectorAll('.vega-embed')]"
            ".map(d => [d.id, [...d.querySelectorAll('svg.marks text')].map(t => t.textContent)]))"
        )
    assert sorted(texts) == sorted(targets)
    for plot in targets:
        for key in ("x_label", "y_label"):
            assert specs[plot][key] in texts[plot], f"{plot}: no axis title {specs[plot][key]!r} in {texts[plot]}"
        assert any(specs[plot]["title"].startswith(t) for t in texts[plot] if len(t) > 10), f"{plot}: no title"
    screenshot(f"{site.reports}/dvc_plots/index.html", site.shot("dvc-plots"), 1400, 1300)
    keep(site.shot("dvc-plots"))


def test_data_docs_show_every_expectation_of_the_run(site: Site) -> None:
    import json

    report = json.loads((site.root / "reports/validation.json").read_text())
    dom = dom_after_scripts(f"{site.reports}/validation.html", site.profile("docs"))
    assert "validation passed" in dom and f"All checks ({len(report['checks'])})" in dom
    for check in report["checks"]:
        assert str(check["name"]) in dom and str(check.get("column") or "") in dom, check
    screenshot(f"{site.reports}/validation.html", site.shot("data-docs"), 1280, 1600)
    keep(site.shot("data-docs"))


def test_the_compare_page_has_a_row_per_run_and_the_param_they_differ_in(site: Site) -> None:
    dom = dom_after_scripts(f"{site.reports}/compare.html", site.profile("compare"))
    runs = set(re.findall(r'<tr data-run="([^"]+)"', dom))
    assert EXPERIMENT in runs and len(runs) == 2, runs  # the experiment and the commit it started from
    assert "<code>train.lr</code>" in dom and dom.count("<svg") >= 5
    screenshot(f"{site.reports}/compare.html", site.shot("compare"), 1400, 2000)
    keep(site.shot("compare"))
