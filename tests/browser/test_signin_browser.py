"""Sign-in in a real browser: Streamlit's OpenID Connect flow against a local provider (`oidc-provider-mock`).

A provider runs on a free 127.0.0.1 port with one predefined person, Ada, whose verified e-mail address is
on a subdomain of the Home Affairs Department's domain. The app runs with an `[auth]` section in a
temporary secrets.toml and an access file that maps that domain to the organisation. Its entries are one
public and one organisation-only entry about the same thing. Chromium then checks: signed out, only the
public entry is found and the restricted one does not open; after signing in as Ada, both are found and the
restricted one opens; after signing out, it is gone again.

Uses the browser helpers of tests/browser/harness.py. Skips when /usr/bin/chromium, Playwright or
oidc-provider-mock is absent; fails instead when CI=true.
"""

from __future__ import annotations

import importlib.util
import json
import os
import secrets
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator

import pytest
import yaml

from bench.browser import CHROMIUM
from tests.browser.conftest import chromium
from tests.browser.harness import START_SECONDS, free_port, settle, stop, streamlit_command, wait_until_healthy
from tests.conftest import ROOT, SAMPLE_ENTRIES, require

pytestmark = pytest.mark.browser

ORGANISATION = "Home Affairs Department"
ADA = {
    "sub": "ada",
    "name": "Ada Lovelace",
    "email": "ada@digital.had.example.gov",
    "email_verified": True,
}
PUBLIC_ID, PUBLIC_TITLE = "quokka-census-public", "Quokka census with volunteer counts"
RESTRICTED_ID, RESTRICTED_TITLE = "quokka-census-restricted", "Quokka census from caseworker records, withdrawn"


def entry_file(entry_id: str, title: str, **fields: object) -> str:
    front = {
        "id": entry_id,
        "title": title,
        "summary": "We counted quokkas on the island to plan ranger patrols.",
        "kind": "experiment",
        "outcome": "failed",
        "organisation": ORGANISATION,
        "themes": ["data-quality"],
        "evidence": "observed",
        "visibility": "public",
        "status": "published",
        "created": "2024-05-01",
        "author": "Tom Okafor",
        **fields,
    }
    body = "## Lessons\n\nA quokka census needs the rangers' records as well as the volunteers' counts.\n"
    return f"---\n{yaml.safe_dump(front, sort_keys=False)}---\n\n{body}"


def wait_for(url: str, process: subprocess.Popen, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{process.args[2]} exited with status {process.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.3)
    raise RuntimeError(f"nothing answered at {url} within {seconds:.0f}s")


@pytest.fixture
def provider(tmp_path) -> Iterator[str]:
    """A local OpenID provider on a free port, with Ada predefined."""
    require(CHROMIUM.is_file(), f"{CHROMIUM} is absent; install it with `apt-get install chromium`")
    require(
        importlib.util.find_spec("oidc_provider_mock") is not None,
        "oidc-provider-mock is not installed; `pip install -r requirements-dev.txt`",
    )
    port = free_port()
    command = [sys.executable, "-m", "oidc_provider_mock", "--port", str(port), "--user-claims", json.dumps(ADA)]
    log = (tmp_path / "provider.log").open("w")
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(f"{url}/.well-known/openid-configuration", process, 30)
        yield url
    finally:
        stop(process)
        log.close()


@pytest.fixture
def app(tmp_path, provider) -> Iterator[str]:
    """The app with sign-in through `provider`, on the public and the restricted entry."""
    entries = tmp_path / "entries"
    entries.mkdir()
    shutil.copy(SAMPLE_ENTRIES / "vocabulary.yaml", entries / "vocabulary.yaml")
    (entries / f"{PUBLIC_ID}.md").write_text(entry_file(PUBLIC_ID, PUBLIC_TITLE), encoding="utf-8")
    restricted = entry_file(RESTRICTED_ID, RESTRICTED_TITLE, visibility="organisation", outcome="stopped")
    (entries / f"{RESTRICTED_ID}.md").write_text(restricted, encoding="utf-8")
    access = tmp_path / "access.yaml"
    access.write_text(yaml.safe_dump({"domains": {"had.example.gov": ORGANISATION}}), encoding="utf-8")

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    secrets_file = tmp_path / "secrets.toml"
    secrets_file.write_text(
        "[auth]\n"
        f'redirect_uri = "{url}/oauth2callback"\n'
        f'cookie_secret = "{secrets.token_hex(32)}"\n'
        'client_id = "lighthouse"\n'
        'client_secret = "not-a-secret"\n'
        f'server_metadata_url = "{provider}/.well-known/openid-configuration"\n',
        encoding="utf-8",
    )
    env = {
        **os.environ,
        "KB_MODEL": "hashing-bow",
        "KB_ENTRIES_DIR": str(entries),
        "KB_INDEX_DIR": str(tmp_path / "index"),
        "KB_ACCESS_FILE": str(access),
        "KB_USER_NAME": "Local operator",  # must never show: sign-in is configured
        "KB_USER_ORGANISATION": ORGANISATION,
    }
    env.pop("KB_CHROMA_URL", None)
    command = streamlit_command(port, "--secrets.files", str(secrets_file))
    log = (tmp_path / "streamlit.log").open("w")
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_until_healthy(url, process, START_SECONDS)
        yield url
    finally:
        stop(process)
        log.close()


@pytest.fixture
def page(app):
    with chromium() as browser:
        tab = browser.new_page(viewport={"width": 1400, "height": 1000})
        tab.set_default_timeout(30_000)
        yield tab


def search(page, app: str) -> str:
    """The text of the search page for "quokka census", once the public entry has been found."""
    page.goto(f"{app}/?q=quokka+census")
    page.get_by_text(PUBLIC_TITLE).first.wait_for()
    settle(page)
    return page.locator("[data-testid='stMain']").inner_text()


def sidebar(page) -> str:
    return page.locator("[data-testid='stSidebar']").inner_text()


def open_restricted(page, app: str) -> str:
    page.goto(f"{app}/entry?id={RESTRICTED_ID}")
    page.locator("[data-testid='stMain'] h1").first.wait_for()
    settle(page)
    return page.locator("[data-testid='stMain']").inner_text()


def test_sign_in_shows_the_organisation_entries_and_sign_out_hides_them(app, provider, page):
    # Signed out: a visitor sees the public entry only, and the sidebar offers to sign in.
    found = search(page, app)
    assert RESTRICTED_TITLE not in found
    assert "Not signed in" in sidebar(page) and "Local operator" not in sidebar(page)
    shown = open_restricted(page, app)
    assert "Entry not found" in shown and RESTRICTED_TITLE not in shown

    # Sign in at the provider as Ada.
    page.goto(app)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{provider}/oauth2/authorize*")
    page.get_by_role("button", name=ADA["sub"], exact=True).click()
    page.wait_for_url(f"{app}/**")
    page.get_by_text(ADA["name"]).first.wait_for()
    settle(page)
    assert ORGANISATION in sidebar(page) and "Contributor: you can" in sidebar(page)

    # Signed in: the organisation's entry is found and opens.
    found = search(page, app)
    assert RESTRICTED_TITLE in found and PUBLIC_TITLE in found
    assert RESTRICTED_TITLE in open_restricted(page, app)

    # Sign out, at the app and then at the provider.
    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url(f"{provider}/oauth2/end_session*")
    page.get_by_role("button", name="End session").click()
    page.wait_for_url(f"{app}/**")
    page.get_by_role("button", name="Sign in").wait_for()

    # Signed out again: the entry is gone.
    found = search(page, app)
    assert RESTRICTED_TITLE not in found
    assert "Not signed in" in sidebar(page)
    assert RESTRICTED_TITLE not in open_restricted(page, app)
