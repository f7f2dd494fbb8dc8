"""Headless Chromium (Debian package `chromium`) for the report's browser checks; offline, fresh profile."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from PIL import Image

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None,
    reason="chromium is not installed (Debian: apt-get install -y chromium); the browser check needs it",
)


def chromium(profile: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run headless Chromium; every request off the machine goes to a closed port, so the page must need none."""
    command = [
        str(CHROMIUM),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--hide-scrollbars",
        "--proxy-server=127.0.0.1:9",
        f"--user-data-dir={profile}",
        *args,
    ]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, check=True)


def screenshot(page: Path, png: Path, width: int, height: int) -> set[tuple[int, int, int]]:
    """Render `page` to `png`, check its size and that it is not blank; return the colours on screen."""
    chromium(
        png.parent / f"{png.stem}-profile", f"--window-size={width},{height}", f"--screenshot={png}", page.as_uri()
    )
    with Image.open(png) as image:
        assert image.size == (width, height)
        pixels = list(image.convert("RGB").getdata())
    drawn = sum(1 for p in pixels if p != (255, 255, 255))
    assert drawn > 0.03 * width * height, "the page rendered (almost) blank"
    return set(pixels)


def rgb(hex_colour: str) -> tuple[int, int, int]:
    return (int(hex_colour[1:3], 16), int(hex_colour[3:5], 16), int(hex_colour[5:7], 16))
