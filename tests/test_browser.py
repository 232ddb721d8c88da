"""The app in a real browser: `streamlit run app.py` driven by Debian's Chromium through Playwright.

Search, open an entry and see its similar projects, submit a new entry and find it, and take a screenshot
of every page. Screenshots go to the test's temporary folder, and also to KB_SCREENSHOTS_DIR when set
(`KB_SCREENSHOTS_DIR=docs/screenshots pytest -m browser` refreshes the ones in the docs).

Skips when /usr/bin/chromium or Playwright is absent; fails instead when CI=true.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote_plus

import pytest
from conftest import ROOT, SAMPLE_ENTRIES, require

from bench.browser import CHROMIUM, CHROMIUM_ARGS  # one list of the Chromium flags this closed network needs

START_SECONDS = 60
NEW_TITLE = "Finding young carers by matching school and health records"

pytestmark = pytest.mark.browser


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


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


def settle(page) -> None:
    """Wait until the app has finished running the script for the last interaction."""
    page.wait_for_selector("[data-testid='stApp']")
    page.wait_for_timeout(400)
    page.wait_for_function("() => !document.querySelector('[data-testid=\"stStatusWidget\"]')")
    page.wait_for_timeout(300)


def screenshot(page, path: Path) -> None:
    """The whole page: the viewport is stretched to the main area's height, which scrolls on its own."""
    settle(page)
    height = page.evaluate("() => document.querySelector('[data-testid=\"stMain\"]').scrollHeight")
    page.set_viewport_size({"width": 1400, "height": max(1000, min(int(height), 2400))})
    page.wait_for_timeout(800)
    page.screenshot(path=str(path))
    page.set_viewport_size({"width": 1400, "height": 1000})


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


def test_search_entry_similar_submit_and_find(page, server, shots):
    page.goto(server)
    page.get_by_text("Newest entries").wait_for()  # the first load also syncs the index
    settle(page)

    page.get_by_placeholder("Ask a question").fill("data sharing agreement took too long")
    page.get_by_role("button", name="Search", exact=True).click()
    page.get_by_text("Benefits and housing data-sharing pilot").first.wait_for()
    settle(page)
    assert "q=data+sharing+agreement" in page.url
    assert page.locator("mark").count() > 0, "the query's words are marked in the passages"

    pick(page, "Outcome", "Stopped")
    page.wait_for_url(re.compile(r"outcome=stopped"))
    pick(page, "Kind", "Experiment")  # a second filter, after the counts on the first have changed
    page.wait_for_url(re.compile(r"outcome=stopped.*kind=experiment|kind=experiment.*outcome=stopped"))
    settle(page)
    assert page.get_by_text("Failed", exact=True).count() == 0, "only stopped work is listed"
    screenshot(page, shots / "search.png")

    page.go_back()  # the URL holds the search and its filters, so back and forward step through them
    page.wait_for_url(re.compile(r"^(?!.*kind=).*outcome=stopped"))
    page.go_back()
    page.go_back()
    page.get_by_text("What to try", exact=True).wait_for()
    page.go_forward()
    page.get_by_text("Benefits and housing data-sharing pilot").first.wait_for()
    settle(page)

    page.get_by_text("Benefits and housing data-sharing pilot").first.click()
    page.get_by_text("Similar projects", exact=True).wait_for()
    settle(page)
    assert "/entry?id=benefits-and-housing-data-sharing-pilot" in page.url
    assert page.get_by_text("What links them").count() >= 3, "similar projects show the passage that links them"
    screenshot(page, shots / "entry.png")

    page.goto(f"{server}/submit")
    settle(page)
    title = page.get_by_role("textbox", name="Title", exact=True)
    title.fill(NEW_TITLE)
    title.press("Tab")
    summary = page.get_by_placeholder("One to three sentences")
    summary.fill("We matched school and health records to find young carers early. It worked in two councils.")
    summary.press("Tab")
    page.get_by_text("Add your evidence to this entry").first.wait_for()
    settle(page)
    choose(page, "Outcome", "Partial")
    lessons = page.get_by_role("textbox", name=re.compile(r"^Lessons"))
    lessons.fill("Agree the legal basis with both councils before you touch the data.")
    screenshot(page, shots / "submit.png")
    page.get_by_role("button", name="Send for review", exact=True).click()
    page.get_by_text("Sent for review").first.wait_for()
    settle(page)
    new_id = "finding-young-carers-by-matching-school-and-health-records"
    assert f"/entry?id={new_id}" in page.url

    page.goto(f"{server}/?q={quote_plus('young carers school health records')}&status=in-review")
    settle(page)
    page.get_by_text(NEW_TITLE).first.wait_for()

    page.goto(f"{server}/showcase")
    page.get_by_text("Measured benefits").first.wait_for()
    screenshot(page, shots / "showcase.png")

    page.goto(f"{server}/review")
    page.get_by_text(NEW_TITLE).first.wait_for()
    screenshot(page, shots / "review.png")

    page.goto(f"{server}/insights")
    page.get_by_text("Map of the collection", exact=True).wait_for()
    page.locator("[data-testid='stVegaLiteChart']").nth(4).wait_for()
    screenshot(page, shots / "insights.png")
