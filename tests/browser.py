"""Headless Chromium (Debian package `chromium`, `make browser`) for the offline-page checks: fresh profile,
and every request off the machine fails, so a page passes only if it needs no network."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections import Counter
from pathlib import Path

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


def chromium(profile: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run headless Chromium offline with its own profile (and HOME) under `profile`."""
    assert CHROMIUM is not None
    command = [CHROMIUM, *OFFLINE_FLAGS, f"--user-data-dir={profile}", *args]
    env = {**os.environ, "HOME": str(profile.parent)}
    return subprocess.run(command, capture_output=True, text=True, timeout=180, check=check, env=env)


def screenshot(page: Path, png: Path, width: int, height: int) -> Counter[tuple[int, int, int]]:
    """Render `page` to `png`, check its size and that it is not blank; count the colours on screen."""
    profile = png.parent / f"{png.stem}-profile"
    chromium(profile, f"--window-size={width},{height}", f"--screenshot={png}", page.resolve().as_uri())
    with Image.open(png) as image:
        assert image.size == (width, height)
        colours = Counter(image.convert("RGB").get_flattened_data())  # type: ignore[arg-type]  # RGB: 3-tuples
    drawn = sum(n for colour, n in colours.items() if colour != (255, 255, 255))
    assert drawn > 0.03 * width * height, "the page rendered (almost) blank"
    return colours


def dom_after_scripts(page: Path, profile: Path, budget_ms: int = 10_000) -> str:
    """The page's DOM once its scripts have run (virtual time): what a user would see drawn."""
    done = chromium(profile, f"--virtual-time-budget={budget_ms}", "--dump-dom", page.resolve().as_uri(), check=False)
    return done.stdout


def rgb(hex_colour: str) -> tuple[int, int, int]:
    return (int(hex_colour[1:3], 16), int(hex_colour[3:5], 16), int(hex_colour[5:7], 16))
