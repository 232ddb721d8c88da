"""Fixtures of the browser tests: the app in a subprocess and a Chromium tab (Playwright) on it.

Skip when /usr/bin/chromium or Playwright is absent; fail instead when CI=true.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.browser import CHROMIUM, CHROMIUM_ARGS  # one list of the Chromium flags this closed network needs
from tests.browser.harness import START_SECONDS, free_port, streamlit_command, wait_until_healthy
from tests.conftest import ROOT, SAMPLE_ENTRIES, require


@pytest.fixture
def server(tmp_path) -> Iterator[str]:
    """The app on a free 127.0.0.1 port, on a copy of the sample entries.

    The fake embedder keeps the test quick; refreshing the docs' screenshots uses the real model, so
    the pictures show real results.
    """
    require(CHROMIUM.is_file(), f"{CHROMIUM} is absent; install it with `apt-get install chromium`")
    entries = tmp_path / "entries"
    shutil.copytree(SAMPLE_ENTRIES, entries, dirs_exist_ok=True)
    port = free_port()
    env = {
        **os.environ,
        "KB_MODEL": "all-MiniLM-L6-v2" if os.environ.get("KB_SCREENSHOTS_DIR") else "hashing-bow",
        "KB_ENTRIES_DIR": str(entries),
        "KB_INDEX_DIR": str(tmp_path / "index"),
        "KB_USER_NAME": "Priya Natarajan",
        "KB_USER_ORGANISATION": "Department for Work and Welfare",
        "KB_USER_ROLES": "contributor,reviewer",
    }
    env.pop("KB_CHROMA_URL", None)
    command = streamlit_command(port)
    log = (tmp_path / "streamlit.log").open("w")
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_healthy(url, process, START_SECONDS)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
        log.close()


@pytest.fixture
def page(server):
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        require(False, "Playwright for Python is not installed")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            tab = browser.new_page(viewport={"width": 1400, "height": 1000})
            tab.set_default_timeout(30_000)
            yield tab
        finally:
            browser.close()


@pytest.fixture
def shots(tmp_path) -> Path:
    folder = Path(os.environ.get("KB_SCREENSHOTS_DIR") or tmp_path / "screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder
