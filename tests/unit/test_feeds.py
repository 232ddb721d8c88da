"""The Atom feeds of the HTTP API: new public entries for everyone; each person's follows and saved searches
behind their feed secret, under their access rules; a wrong or revoked secret is a plain 404."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import replace

import pytest
from fastapi.testclient import TestClient

from kb import KnowledgeBase
from kb.api import create_app
from kb.browse import SearchRequest
from kb.database import open_database
from kb.following import Following
from kb.tokens import TokenStore
from tests.following import ADA, BO, THEME, MailServer, write_entry

ATOM = "{http://www.w3.org/2005/Atom}"


@pytest.fixture
def served(settings, fake_embedder, database_url, tmp_path, monkeypatch):
    monkeypatch.setenv("KB_ACCESS_FILE", str(tmp_path / "access.yaml"))
    (tmp_path / "access.yaml").write_text("roles:\n  default: [contributor]\n")
    kb = KnowledgeBase(replace(settings, database=database_url), embedder=fake_embedder)
    kb.sync()
    database = open_database(kb.settings)
    mail = MailServer().settings()  # only its addresses: no mail is sent
    app = create_app(kb, TokenStore(tmp_path / "tokens.json"), database=database, mail=mail)
    return kb, Following(database), TestClient(app)


def titles(response) -> list[str]:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/atom+xml")
    root = ET.fromstring(response.content)
    assert root.tag == f"{ATOM}feed"
    for required in ("id", "title", "updated"):
        assert root.find(f"{ATOM}{required}") is not None
    found = []
    for entry in root.findall(f"{ATOM}entry"):
        for required in ("id", "title", "updated", "link"):
            assert entry.find(f"{ATOM}{required}") is not None, required
        found.append(entry.find(f"{ATOM}title").text)
    return found


def test_a_person_s_feeds_show_what_they_follow_as_they_may_see_it(served):
    kb, following, client = served
    theme = following.follow(ADA, "theme", THEME)
    search = following.save_search(ADA, SearchRequest(query="border agency log"))
    bo_theme = following.follow(BO, "theme", THEME)
    public = write_entry(kb, "Agreements <signed> & filed", themes=[THEME])
    own = write_entry(
        kb,
        "Border agency log of agreements",
        themes=[THEME],
        organisation="Border and Trade Agency",
        partners=[],
        visibility="organisation",
    )
    ada, bo = following.new_feed_secret(ADA), following.new_feed_secret(BO)

    assert titles(client.get(f"/feeds/{ada}/follows/{theme.id}")) == [f"New entry: {public.title}"]
    assert own.title not in client.get(f"/feeds/{ada}/all").text
    assert own.title not in client.get(f"/feeds/{ada}/searches/{search.id}").text
    assert sorted(titles(client.get(f"/feeds/{bo}/follows/{bo_theme.id}"))) == sorted(
        [f"New entry: {public.title}", f"New entry: {own.title}"]
    )
    assert "Agreements &lt;signed&gt; &amp; filed" in client.get(f"/feeds/{ada}/all").text


def test_a_feed_needs_its_owner_s_current_secret_and_answers_404_alike_otherwise(served):
    kb, following, client = served
    theme = following.follow(ADA, "theme", THEME)
    bo_theme = following.follow(BO, "theme", THEME)
    old = following.new_feed_secret(ADA)
    assert client.get(f"/feeds/{old}/follows/{theme.id}").status_code == 200
    new = following.new_feed_secret(ADA)  # a new secret revokes the old one

    unknown = client.get(f"/feeds/lhf_{'x' * 32}/follows/{theme.id}")
    revoked = client.get(f"/feeds/{old}/follows/{theme.id}")
    not_hers = client.get(f"/feeds/{new}/follows/{bo_theme.id}")  # Bo's follow with Ada's secret
    for response in (unknown, revoked, not_hers, client.get(f"/feeds/{new}/searches/999")):
        assert response.status_code == 404 and response.json() == unknown.json()
    assert client.get(f"/feeds/{new}/follows/{theme.id}").status_code == 200
    following.revoke_feed_secret(ADA)
    assert client.get(f"/feeds/{new}/all").json() == unknown.json()


def test_the_public_feed_holds_new_public_entries_only(served):
    kb, _, client = served
    public = write_entry(kb, "An open lesson", themes=[THEME])
    internal = write_entry(kb, "For staff only", visibility="internal")
    own = write_entry(kb, "For one organisation", visibility="organisation")
    draft = write_entry(kb, "Not yet written", status="draft")
    anonymous = write_entry(kb, "A quiet failure", anonymous=True, team="Hidden Team", contact="hidden@x.gov")
    response = client.get("/feeds/new")
    shown = titles(response)
    assert f"New entry: {public.title}" in shown and f"New entry: {anonymous.title}" in shown
    for hidden in (internal.title, own.title, draft.title, "Hidden Team", "hidden@x.gov"):
        assert hidden not in response.text


def test_the_feeds_are_declared_as_atom_in_the_schema(served):
    _, _, client = served
    paths = client.get("/openapi.json").json()["paths"]
    feeds = [p for p in paths if p.startswith("/feeds/")]
    assert sorted(feeds) == [
        "/feeds/new",
        "/feeds/{secret}/all",
        "/feeds/{secret}/follows/{follow_id}",
        "/feeds/{secret}/searches/{search_id}",
    ]
    for path in feeds:
        answers = paths[path]["get"]["responses"]
        assert "application/atom+xml" in answers["200"]["content"]
        assert "application/problem+json" in answers["404"]["content"]


def test_the_access_log_never_holds_a_feed_secret():
    import logging

    from kb.api.feeds import HideFeedSecrets

    record = logging.LogRecord(
        "uvicorn.access",
        logging.INFO,
        "",
        0,
        '%s - "%s %s HTTP/%s" %d',
        ("1.2.3.4", "GET", "/feeds/lhf_abc/all?days=3", "1.1", 200),
        None,
    )
    assert HideFeedSecrets().filter(record)
    assert record.getMessage() == '1.2.3.4 - "GET /feeds/***/all?days=3 HTTP/1.1" 200'
    public = logging.LogRecord("uvicorn.access", logging.INFO, "", 0, "%s", ("/feeds/new",), None)
    HideFeedSecrets().filter(public)
    assert public.getMessage() == "/feeds/new"
