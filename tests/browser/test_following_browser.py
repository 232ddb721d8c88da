"""Following in a real browser, the whole loop: the local user follows a theme from the search page, sees it
on the Following page; a new entry in that theme arrives and they add an evidence note to another entry of
it on its page (and see its recurrence); the digest is sent to a real SMTP server (aiosmtpd on 127.0.0.1)
and holds both, the Following page shows them as new, and the feed address the page shows serves both.

Skips when /usr/bin/chromium or Playwright is absent; fails instead when CI=true.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from kb import KnowledgeBase, Settings
from kb.api import create_app
from kb.database import open_database
from kb.digest import send_digests
from kb.embedder import HashingEmbedder
from kb.signin import Access
from kb.tokens import TokenStore
from tests.browser.conftest import chromium, running_app
from tests.browser.harness import PHONE, screenshot, settle
from tests.following import MailServer, body, later, write_entry

pytestmark = pytest.mark.browser

THEME, THEME_LABEL = "data-sharing-agreements", "Data sharing agreements"
NOTED = "cross-government-data-sharing-agreement-template"  # in that theme; public and published
NOTE = "Our regional pilot met the same six legal teams and reused this template in 2024."
EMAIL = "priya@dww.example.gov"
API = "https://api.lighthouse.example"


def test_follow_a_theme_get_the_digest_and_read_the_feed(tmp_path, sample_index, shots):
    mail_server = MailServer().start()
    try:
        with (
            running_app(tmp_path, index=sample_index, KB_USER_EMAIL=EMAIL, KB_API_URL=API) as app,
            chromium() as browser,
        ):
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.set_default_timeout(30_000)
            journey(page, app, tmp_path, mail_server, shots)
    finally:
        mail_server.stop()


def journey(page, app: str, folder: Path, mail_server: MailServer, shots: Path) -> None:
    # Follow the theme chosen among the search page's filters.
    page.goto(f"{app}/?theme={THEME}")
    page.get_by_role("button", name=f"Follow theme {THEME_LABEL}").click()
    page.get_by_role("button", name=f"Following theme {THEME_LABEL}").wait_for()

    # The Following page lists it, with where the digest goes.
    page.goto(f"{app}/following")
    page.get_by_text(f"Theme: {THEME_LABEL}").wait_for()
    settle(page)
    main = page.locator("[data-testid='stMain']").inner_text()
    assert f"It goes to {EMAIL}" in main and "Nothing new in what you follow" in main

    # A new entry in that theme is written; the digest goes out a week later.
    settings = Settings(entries_dir=folder / "entries", index_dir=folder / "index", model="hashing-bow")
    kb = KnowledgeBase(settings, embedder=HashingEmbedder())
    new = write_entry(kb, "Signing data sharing agreements in weeks, not months", themes=[THEME])

    # They add their evidence to another entry of the theme, on its page, and see it counted.
    page.goto(f"{app}/entry?id={NOTED}")
    settle(page)
    page.get_by_text("We hit this too: add your evidence").click()
    page.get_by_role("textbox", name="What happened to you").fill(NOTE)
    year = page.get_by_role("spinbutton", name="Year")
    year.fill("2024")
    year.press("Tab")
    page.get_by_role("button", name="Add my evidence").click()
    page.get_by_text("Your evidence was added").wait_for()
    settle(page)
    assert "Seen in 2 organisations since" in page.evaluate("() => document.body.innerText")

    results = send_digests(
        kb, open_database(settings), mail_server.settings(), now=later(days=8), access=Access(), retry_delay=0
    )
    assert [(r.email, r.status) for r in results] == [(EMAIL, "sent")]
    (message,) = mail_server.messages
    assert message["To"] == EMAIL and new.title in body(message, "plain")
    assert "Evidence note" in body(message, "plain") and "same six legal teams" in body(message, "plain")
    assert f"https://lighthouse.example/entry?id={new.id}" in body(message, "plain")

    # The page shows it as new since the last visit, and makes the feed addresses.
    page.goto(f"{app}/following")
    page.get_by_text(new.title).first.wait_for()
    page.get_by_role("button", name="Make my feed addresses").click()
    page.get_by_text("Copy your feed addresses now").wait_for()
    settle(page)
    screenshot(page, shots / "following.png")
    addresses = [a for a in page.locator("[data-testid='stCode'] code").all_inner_texts() if "/feeds/lhf_" in a]
    theme_feed = next(a.strip() for a in addresses if "/follows/" in a)
    assert theme_feed.startswith(f"{API}/feeds/lhf_")

    # The feed at that address holds the new entry, read through the HTTP API.
    api = TestClient(create_app(kb, TokenStore(folder / "tokens.json"), database=open_database(settings)))
    feed = api.get(theme_feed.removeprefix(API))
    assert feed.status_code == 200 and feed.headers["content-type"].startswith("application/atom+xml")
    assert new.title in feed.text and "same six legal teams" in feed.text

    # On a phone, the page fits the screen.
    phone = page.context.browser.new_context(user_agent=PHONE, viewport={"width": 390, "height": 844})
    tab = phone.new_page()
    tab.set_default_timeout(30_000)
    tab.goto(f"{app}/following")
    tab.get_by_text(f"Theme: {THEME_LABEL}").wait_for()
    settle(tab)
    assert tab.evaluate("() => document.documentElement.scrollWidth") <= 390
    screenshot(tab, shots / "following-phone.png", width=390)
    phone.close()
