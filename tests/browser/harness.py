"""What the browser tests share: starting the app on a free 127.0.0.1 port and driving its pages."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from bench.browser import CHROMIUM, CHROMIUM_ARGS  # one list of the Chromium flags this closed network needs
from tests.conftest import ROOT, require
from tests.servers import free_port, stop  # noqa: F401  (the browser tests take them from here)

START_SECONDS = 60
# A phone's user agent: the app lays pages out for a phone by it ("Mobi"), not by the window's width.
PHONE = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.0 Mobile/15E148 Safari/604.1"
)


def streamlit_command(port: int, *extra: str) -> list[str]:
    """`streamlit run app.py` on 127.0.0.1:port, headless, with no file watcher or usage statistics."""
    return [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        str(ROOT / "app.py"),
        "--server.port",
        str(port),
        "--server.address",
        "127.0.0.1",
        "--server.headless",
        "true",
        "--browser.gatherUsageStats",
        "false",
        "--server.fileWatcherType",
        "none",
        *extra,
    ]


# This test process's one Chromium and its Playwright, started on first use. They live here, not in
# conftest.py: pytest imports conftest.py under a name of its own, and the tests import it again as
# tests.browser.conftest, so state kept there would exist twice (and one thread runs one Playwright).
_launched: dict = {}


def shared_browser():
    """The test process's Chromium, launched the first time it is needed (again if it has gone)."""
    require(CHROMIUM.is_file(), f"{CHROMIUM} is absent; install it with `apt-get install chromium`")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        require(False, "Playwright for Python is not installed")
    browser = _launched.get("browser")
    if browser is None or not browser.is_connected():
        close_browser()
        _launched["playwright"] = sync_playwright().start()
        _launched["browser"] = _launched["playwright"].chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS
        )
    return _launched["browser"]


def close_browser() -> None:
    browser, playwright = _launched.pop("browser", None), _launched.pop("playwright", None)
    try:
        if browser is not None and browser.is_connected():
            browser.close()
    finally:
        if playwright is not None:
            playwright.stop()


def wait_until_healthy(url: str, process: subprocess.Popen, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"streamlit exited with status {process.returncode}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"streamlit did not answer at {url} within {seconds:.0f}s")


# True once the app's script has run and is not running again: Streamlit's root element carries the state
# of its script run. The status widget alone shows a run only after a delay, so on a busy machine a run
# could still be drawing its results when it was gone.
SCRIPT_DONE = """() => {
    const app = document.querySelector("[data-testid='stApp']");
    return app !== null && ["notRunning", "compilationError"].includes(app.dataset.testScriptState)
        && !document.querySelector("[data-testid='stStatusWidget']");
}"""


def settle(page) -> None:
    """Wait until the app has finished running the script for the last interaction."""
    page.wait_for_selector("[data-testid='stApp']")
    page.wait_for_timeout(400)  # an interaction asks for its run as the page handles it
    page.wait_for_function(SCRIPT_DONE)
    page.wait_for_timeout(300)


def screenshot(page, path: Path, width: int = 1400) -> None:
    """The whole page: the viewport is stretched to the main area's height, which scrolls on its own."""
    settle(page)
    before = page.viewport_size
    height = page.evaluate("() => document.querySelector('[data-testid=\"stMain\"]').scrollHeight")
    page.set_viewport_size({"width": width, "height": max(844, min(int(height), 3200))})
    if os.environ.get("KB_SCREENSHOTS_DIR"):  # the docs' pictures: room for the charts to redraw at the new size
        page.wait_for_timeout(800)
    else:  # a test's own picture: the page laid out again at the new size (two frames drawn) is enough
        page.evaluate(  # at most a second: a hidden page may draw no frames
            "() => Promise.race([new Promise(done => requestAnimationFrame(() => requestAnimationFrame(done))),"
            " new Promise(done => setTimeout(done, 1000))])"
        )
    page.screenshot(path=str(path))
    page.set_viewport_size(before or {"width": width, "height": 1000})


def choose(page, label: str, option: str) -> None:
    """Pick an option in a selectbox, found by its label."""
    page.locator("[data-testid='stSelectbox']").filter(has_text=label).first.click()
    page.get_by_role("option", name=option).first.click()


def pick(page, label: str, option: str) -> None:
    """Add an option to a multiselect filter, found by its label; options read "Name (count)"."""
    page.locator("[data-testid='stMultiSelect']").filter(has_text=label).first.click()
    page.get_by_role("option", name=re.compile(rf"^{option} \(\d+\)")).first.click()
    page.keyboard.press("Escape")
    settle(page)
