"""Headless Chromium (Debian package `chromium`, `make browser`) for the offline-page checks: fresh profile,
and every request off the machine fails, so a page passes only if it needs no network.

Pages served by a test's own servers on 127.0.0.1 (the Prefect UI, the reports server) are opened with `LIVE_FLAGS`
(loopback reachable, nothing else) and, where a page must be clicked or waited for, driven over the DevTools
protocol (`live_page`). `keep` copies a screenshot to the checkout's reports/screenshots/ for review.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None, reason="chromium is not installed: `make browser` (apt-get install -y chromium)"
)
OFFLINE_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--no-first-run",
    "--no-default-browser-check",
    "--hide-scrollbars",
    "--force-color-profile=srgb",  # exact colours in screenshots
    "--host-resolver-rules=MAP * ~NOTFOUND",  # no name resolves
    "--proxy-server=127.0.0.1:9",  # and anything else goes to a closed port
)
# the test's own servers on loopback answer (Chromium never proxies loopback), still no name resolves
LIVE_FLAGS = tuple(
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1" if f.startswith("--host-") else f for f in OFFLINE_FLAGS
)
SCREENSHOTS_ENV = "TABML_SCREENSHOTS_DIR"  # where `keep` copies screenshots; default: the checkout's
CHECKOUT_SCREENSHOTS = Path(__file__).resolve().parents[1] / "reports" / "screenshots"  # git-ignored


def chromium(
    profile: Path, *args: str, check: bool = True, flags: tuple[str, ...] = OFFLINE_FLAGS
) -> subprocess.CompletedProcess[str]:
    """Run headless Chromium offline with its own profile (and HOME) under `profile`."""
    assert CHROMIUM is not None
    command = [CHROMIUM, *flags, f"--user-data-dir={profile}", *args]
    env = {**os.environ, "HOME": str(profile.parent)}
    return subprocess.run(command, capture_output=True, text=True, timeout=180, check=check, env=env)


def screenshot(page: Path | str, png: Path, width: int, height: int) -> Counter[tuple[int, int, int]]:
    """Render `page` (a file, or an http URL on loopback) to `png`, check its size and that it is not blank; count
    the colours on screen."""
    profile = png.parent / f"{png.stem}-profile"
    where, flags = (page, LIVE_FLAGS) if isinstance(page, str) else (page.resolve().as_uri(), OFFLINE_FLAGS)
    budget = ("--virtual-time-budget=10000",) if isinstance(page, str) else ()  # a served page's scripts: let them run
    chromium(profile, f"--window-size={width},{height}", *budget, f"--screenshot={png}", where, flags=flags)
    return colours_of(png, width, height)


def colours_of(png: Path, width: int, height: int) -> Counter[tuple[int, int, int]]:
    """Check a screenshot's size and that it is not blank; count its colours."""
    with Image.open(png) as image:
        assert image.size == (width, height)
        colours = Counter(image.convert("RGB").get_flattened_data())  # type: ignore[arg-type]  # RGB: 3-tuples
    drawn = sum(n for colour, n in colours.items() if colour != (255, 255, 255))
    assert drawn > 0.03 * width * height, "the page rendered (almost) blank"
    return colours


def dom_after_scripts(page: Path | str, profile: Path, budget_ms: int = 10_000) -> str:
    """The page's DOM once its scripts have run (virtual time): what a user would see drawn. `page`: a file, or an
    http URL on loopback."""
    where, flags = (page, LIVE_FLAGS) if isinstance(page, str) else (page.resolve().as_uri(), OFFLINE_FLAGS)
    done = chromium(profile, f"--virtual-time-budget={budget_ms}", "--dump-dom", where, check=False, flags=flags)
    return done.stdout


def keep(png: Path) -> Path:
    """Copy a screenshot to $TABML_SCREENSHOTS_DIR (default: the checkout's reports/screenshots/), for review."""
    folder = Path(os.environ.get(SCREENSHOTS_ENV) or CHECKOUT_SCREENSHOTS)
    folder.mkdir(parents=True, exist_ok=True)
    return Path(shutil.copy2(png, folder / png.name))


class LivePage:
    """One browser tab driven over the DevTools protocol: navigate, wait for what a user would wait for, click,
    read the DOM, take a screenshot."""

    def __init__(self, socket: Any) -> None:
        self._socket = socket
        self._last_id = 0

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        self._last_id += 1
        self._socket.send(json.dumps({"id": self._last_id, "method": method, "params": params}))
        while True:  # events in between are not asked for: skip them
            message = json.loads(self._socket.recv(timeout=120))
            if message.get("id") == self._last_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return dict(message.get("result") or {})

    def evaluate(self, expression: str) -> Any:
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression[:80]}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def goto(self, url: str) -> None:
        self.call("Page.navigate", url=url)

    def wait_for(self, condition: str, what: str, timeout: float = 90) -> None:
        """Until the JS `condition` holds; the bound only detects a page that never shows `what`."""
        deadline = time.monotonic() + timeout
        while not self.evaluate(f"Boolean({condition})"):
            if time.monotonic() > deadline:
                raise AssertionError(f"the page never showed {what}; it shows:\n{self.text()[:3000]}")
            time.sleep(0.25)

    def text(self) -> str:
        return str(self.evaluate("document.body ? document.body.innerText : ''"))

    def html(self) -> str:
        return str(self.evaluate("document.documentElement.outerHTML"))

    def screenshot(self, png: Path, full_page: bool = False) -> Path:
        shot = self.call("Page.captureScreenshot", format="png", captureBeyondViewport=full_page)
        png.write_bytes(base64.b64decode(shot["data"]))
        return png


@contextmanager
def live_page(profile: Path, width: int, height: int, before_scripts: str = "") -> Iterator[LivePage]:
    """A headless Chromium (loopback only) with one tab; `before_scripts` runs in every document before its own."""
    import httpx
    from websockets.sync.client import connect

    from tests.workspace import stop_process_group

    assert CHROMIUM is not None
    profile.mkdir(parents=True, exist_ok=True)
    command = [CHROMIUM, *LIVE_FLAGS, f"--user-data-dir={profile}", f"--window-size={width},{height}"]
    env = {**os.environ, "HOME": str(profile.parent)}
    browser = subprocess.Popen(
        [*command, "--remote-debugging-port=0", "about:blank"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
        start_new_session=True,  # its helper processes are stopped with it
    )
    try:
        port_file, deadline = profile / "DevToolsActivePort", time.monotonic() + 60
        while not (port_file.is_file() and port_file.read_text().strip()):
            assert browser.poll() is None and time.monotonic() < deadline, "chromium did not open its DevTools port"
            time.sleep(0.1)
        port = int(port_file.read_text().split()[0])
        targets = httpx.get(f"http://127.0.0.1:{port}/json/list", timeout=30).json()
        tab = next(t for t in targets if t.get("type") == "page")
        with connect(tab["webSocketDebuggerUrl"], max_size=None, open_timeout=30) as socket:
            page = LivePage(socket)
            page.call(
                "Emulation.setDeviceMetricsOverride", width=width, height=height, deviceScaleFactor=1, mobile=False
            )
            if before_scripts:
                page.call("Page.enable")  # without it, the script is not added to the next documents
                page.call("Page.addScriptToEvaluateOnNewDocument", source=before_scripts)
            yield page
    finally:
        stop_process_group(browser)  # type: ignore[arg-type]  # Popen[bytes] with no pipes


def rgb(hex_colour: str) -> tuple[int, int, int]:
    return (int(hex_colour[1:3], 16), int(hex_colour[3:5], 16), int(hex_colour[5:7], 16))
