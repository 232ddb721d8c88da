"""Fixtures of the browser tests: the app in a subprocess and a Chromium tab (Playwright) on it.

Skip when /usr/bin/chromium or Playwright is absent; fail instead when CI=true.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from bench.browser import CHROMIUM
from tests.browser.harness import (
    START_SECONDS,
    close_browser,
    free_port,
    shared_browser,
    stop,
    streamlit_command,
    wait_until_healthy,
)
from tests.conftest import ROOT, SAMPLE_ENTRIES, require


@contextmanager
def running_app(folder: Path, *extra: str, index: Path | None = None, **settings: str) -> Iterator[str]:
    """The app on a free 127.0.0.1 port, on a copy of the sample entries in `folder`; yields its URL.

    `index` is a ready index of the sample entries to start from (the first page then has nothing to
    sync); `extra` are more `streamlit run` options; `settings` are more environment variables. The fake
    embedder keeps the test quick; refreshing the docs' screenshots uses the real model, so the pictures
    show real results.
    """
    require(CHROMIUM.is_file(), f"{CHROMIUM} is absent; install it with `apt-get install chromium`")
    entries = folder / "entries"
    shutil.copytree(SAMPLE_ENTRIES, entries, dirs_exist_ok=True)
    if index is not None:
        shutil.copytree(index, folder / "index")
    port = free_port()
    env = {
        **os.environ,
        "KB_MODEL": "all-MiniLM-L6-v2" if os.environ.get("KB_SCREENSHOTS_DIR") else "hashing-bow",
        "KB_ENTRIES_DIR": str(entries),
        "KB_INDEX_DIR": str(folder / "index"),
        "KB_USER_NAME": "Priya Natarajan",
        "KB_USER_ORGANISATION": "Department for Work and Welfare",
        "KB_USER_ROLES": "contributor,reviewer",
        **settings,
    }
    env.pop("KB_CHROMA_URL", None)
    if index is None and env["KB_MODEL"] != "hashing-bow":  # the real model's first sync outlasts a page's wait
        subprocess.run([sys.executable, "-m", "kb", "sync"], cwd=ROOT, env=env, check=True, capture_output=True)
    command = streamlit_command(port, *extra)
    log = (folder / "streamlit.log").open("w")
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_healthy(url, process, START_SECONDS)
        yield url
    finally:
        stop(process)
        log.close()


@pytest.fixture(scope="module")
def shared_app(tmp_path_factory) -> Iterator[str]:
    """The app on a copy of the sample entries, for the tests of one module marked `reads_only`."""
    with running_app(tmp_path_factory.mktemp("app")) as url:
        yield url


@pytest.fixture
def server(request, tmp_path) -> Iterator[str]:
    """The app on a copy of the sample entries, for one test. A test marked `reads_only` (it never saves,
    signs in or changes what another test reads: no entry, note, vocabulary, following, setting or file;
    its searches count in the app's search log, which none of them reads) shares one with the other such
    tests of its module; each test still has a browser context of its own."""
    if request.node.get_closest_marker("reads_only"):
        yield request.getfixturevalue("shared_app")
        return
    with running_app(tmp_path) as url:
        yield url


@pytest.fixture(scope="module", autouse=True)
def _one_chromium_per_module() -> Iterator[None]:
    """Chromium starts once per test module (a second or two each time) and is closed at the module's end:
    the sync Playwright keeps an event loop running on this thread, which must not outlive the browser
    tests (a later test on this worker calling asyncio.run would fail)."""
    yield
    close_browser()


@contextmanager
def chromium() -> Iterator:
    """Debian's Chromium through Playwright, with the flags this network needs. The browser is shared by
    the tests of one process; every context (cookies, storage, tabs) opened through it inside the `with`
    is closed on leaving it, so no test sees another's."""
    browser = shared_browser()
    before = list(browser.contexts)
    try:
        yield browser
    finally:
        if browser.is_connected():
            for context in browser.contexts:
                if context not in before:
                    context.close()


@pytest.fixture
def page(server):
    with chromium() as browser:
        tab = browser.new_page(viewport={"width": 1400, "height": 1000})
        tab.set_default_timeout(30_000)
        yield tab


@pytest.fixture
def shots(tmp_path) -> Path:
    folder = Path(os.environ.get("KB_SCREENSHOTS_DIR") or tmp_path / "screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder
