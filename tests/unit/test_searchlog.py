"""The search log (kb.searchlog): searches counted once where people search, normalised, with no one's
identity, kept for a configurable time, off at 0, and never in the way of a search; and the curators'
view of it."""

from __future__ import annotations

import datetime as dt
import json
import logging
import threading
import time
from dataclasses import replace

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient
from sqlalchemy import inspect, select

import kb.searchlog as searchlog
from kb import KnowledgeBase, browse
from kb.access import ANONYMOUS
from kb.api import create_app
from kb.browse import SearchRequest
from kb.cli import cli
from kb.database import open_database
from kb.database.tables import EntryActivity, SearchCount
from kb.duplicates import looks_similar
from kb.errors import Forbidden, KBError
from kb.identity import User
from kb.relevance import CLOSE_SIMILARITY
from kb.searchlog import looked_for, normalise_query, search_log
from kb.tokens import TokenStore

ADA = User("Ada Lovelace", "Home Affairs Department", ("contributor",), local=False, email="ada@home.example.gov")
CURATOR = User("Cleo Curator", "Beta Agency", ("curator",), local=False, email="cleo@beta.example.gov")
CONTRIBUTOR = User("Carl Contributor", "Beta Agency", ("contributor",), local=False)
ORG_ONLY = "chatbot-for-policy-guidance-withdrawn"  # visibility organisation: Home Affairs Department
PUBLIC = "benefits-and-housing-data-sharing-pilot"


@pytest.fixture
def logged(settings, fake_embedder, database_url) -> KnowledgeBase:
    """The sample entries, their search log in a database of each kind."""
    base = KnowledgeBase(replace(settings, database=database_url), embedder=fake_embedder)
    base.sync()
    return base


def rows(kb: KnowledgeBase, table=SearchCount) -> list:
    search_log(kb.settings).flush()  # counts are written on the log's own thread
    with open_database(kb.settings).session() as session:
        return list(session.scalars(select(table)).all())


def counts(kb: KnowledgeBase) -> dict[tuple[str, str], int]:
    return {(r.query, r.mode): r.searches for r in rows(kb)}


@pytest.mark.parametrize(
    ("typed", "kept"),
    [
        ("  Data   SHARING agreement?! ", "data sharing agreement"),
        ('"DSA"', "dsa"),
        ("(mainframe)…", "mainframe"),
        ("ask ada@home.example.gov about it", None),
        ("case 0123456789", None),
        ("call 07700 900123", None),
        ("   ?!  ", None),
        ("census 2021 and 2011", "census 2021 and 2011"),  # years are not personal data
    ],
)
def test_a_query_is_kept_normalised_and_personal_data_is_not_kept(typed, kept):
    assert normalise_query(typed) == kept


def test_a_long_query_is_cut_at_a_word():
    kept = normalise_query("sharing " * 100)
    assert kept is not None and len(kept) <= 200 and kept.endswith("sharing")


def test_a_search_is_counted_once_per_visit_and_page_and_the_app_s_own_searches_are_not(logged):
    request = SearchRequest(query="Data sharing agreement")
    first = browse.find(logged, request, ADA, visit="visit-1")
    assert counts(logged) == {("data sharing agreement", "hybrid"): 1}
    browse.find(logged, request, ADA, visit="visit-1")  # the page again: a rerun, Back
    browse.find(logged, replace(request, page=2), ADA, visit="visit-1")  # paging on
    browse.find(logged, replace(request, page=2), ADA, visit="visit-2")
    browse.every_match(logged, request, ADA)  # a download of the results is no new search
    logged.similar(PUBLIC, viewer=ADA)
    looks_similar(logged, "Data sharing agreement", "took a year", viewer=ADA)
    browse.find(logged, SearchRequest(query="one\ntwo", mode="plan"), ADA)  # a whole plan is not a search term
    browse.ranked(logged, SearchRequest(query="data sharing agreement"), ADA)  # a saved search run for a digest
    assert counts(logged) == {("data sharing agreement", "hybrid"): 1}
    browse.find(logged, request, None, visit="visit-2")
    browse.find(logged, replace(request, mode="keyword"), None)
    assert counts(logged) == {("data sharing agreement", "hybrid"): 2, ("data sharing agreement", "keyword"): 1}
    (row,) = [r for r in rows(logged) if r.mode == "hybrid"]
    anyone = browse.find(logged, request, ANONYMOUS).total  # counted as anyone would see it (below)
    assert row.results == anyone <= first.total and row.day == dt.datetime.now(dt.UTC).date()  # days are UTC's


def test_no_identity_is_stored(logged, tmp_path):
    browse.find(logged, SearchRequest(query="data sharing"), ADA, visit="secret-visit-key")
    browse.download(logged, [PUBLIC], "csv", ADA, visit="secret-visit-key")
    engine = open_database(logged.settings).engine
    assert {c["name"] for c in inspect(engine).get_columns("search_counts")} == {
        *("id", "day", "query", "mode", "searches", "results", "close_match")
    }
    assert {c["name"] for c in inspect(engine).get_columns("entry_activity")} == {
        *("id", "day", "entry_id", "opened", "reused")
    }
    stored = " ".join(str(vars(r)) for table in (SearchCount, EntryActivity) for r in rows(logged, table))
    for identity in ("Ada", "Lovelace", "ada@", "Home Affairs", "secret-visit-key"):
        assert identity.lower() not in stored.lower()
    assert rows(logged, EntryActivity)[0].reused == 1


def test_a_query_that_looks_like_personal_data_is_not_recorded(logged):
    browse.find(logged, SearchRequest(query="ada@home.example.gov"), ADA)
    browse.find(logged, SearchRequest(query="claim 20231234567"), ADA)
    assert rows(logged) == []


def test_no_close_match_is_recorded_and_listed_for_curators(logged, monkeypatch):
    monkeypatch.setitem(CLOSE_SIMILARITY, logged.embedder.name, 0.3)
    browse.find(logged, SearchRequest(query="data sharing agreement"), ADA)
    browse.find(logged, SearchRequest(query="zzqx flurble wibbleton"), ADA)
    browse.find(logged, SearchRequest(query="zzqx flurble wibbleton", mode="keyword"), ANONYMOUS)
    seen = looked_for(logged, CURATOR)
    assert [(s.query, s.searches) for s in seen.top][0] == ("zzqx flurble wibbleton", 2)
    assert {s.query for s in seen.top} == {"zzqx flurble wibbleton", "data sharing agreement"}
    assert [s.query for s in seen.unmatched] == ["zzqx flurble wibbleton"]
    assert seen.kept_days == 180
    with pytest.raises(Forbidden):
        looked_for(logged, CONTRIBUTOR)
    with pytest.raises(Forbidden):
        looked_for(logged, ANONYMOUS)


def test_entries_opened_and_reused_are_shown_only_where_the_curator_may_see_them(logged):
    log = search_log(logged.settings)
    for entry_id in (ORG_ONLY, ORG_ONLY, ORG_ONLY, PUBLIC):
        log.record_entry(entry_id)
    browse.download(logged, [PUBLIC], "csv", None)
    browse.download(logged, None, "csv", None)  # the whole collection: nothing in particular reused
    outsider = looked_for(logged, CURATOR)  # of another organisation
    assert [(i, u.opened, u.reused) for i, _, u in outsider.entries] == [(PUBLIC, 1, 1)]
    assert outsider.entries[0][1] == logged.get(PUBLIC).title
    home = looked_for(logged, replace(CURATOR, organisation="Home Affairs Department"))
    assert [i for i, _, _ in home.entries] == [ORG_ONLY, PUBLIC]


def test_old_days_are_deleted_when_a_search_is_recorded(logged):
    today = dt.date.today()
    with open_database(logged.settings).session() as session:
        for age in (179, 180, 400):
            day = today - dt.timedelta(days=age)
            session.add(SearchCount(day=day, query=f"aged {age}", mode="hybrid", searches=1, results=0))
            session.add(EntryActivity(day=day, entry_id=f"aged-{age}", opened=1, reused=0))
    browse.find(logged, SearchRequest(query="data sharing"), ADA)
    assert {r.query for r in rows(logged)} == {"aged 179", "data sharing"}
    assert {r.entry_id for r in rows(logged, EntryActivity)} == {"aged-179"}


def test_a_shorter_period_and_the_prune_command(logged):
    short = replace(logged.settings, search_log="7")
    with open_database(logged.settings).session() as session:
        session.add(SearchCount(day=dt.date.today() - dt.timedelta(days=8), query="old", mode="hybrid"))
        session.add(SearchCount(day=dt.date.today() - dt.timedelta(days=6), query="recent", mode="hybrid"))
    result = CliRunner().invoke(
        cli, ["--index", str(short.index_dir), "searches", "--prune"], env=env_of(short), catch_exceptions=False
    )
    assert result.exit_code == 0 and "deleted 1 day counts (kept 7 days)" in result.output
    assert [r.query for r in rows(logged)] == ["recent"]


def env_of(settings) -> dict[str, str]:
    return {"KB_DATABASE_URL": settings.database_url, "KB_SEARCH_LOG_DAYS": settings.search_log or ""}


def test_zero_days_records_nothing_and_deletes_what_was_kept(logged):
    browse.find(logged, SearchRequest(query="data sharing"), ADA)
    search_log(logged.settings).record_entry(PUBLIC)
    assert rows(logged) and rows(logged, EntryActivity)
    off = KnowledgeBase(replace(logged.settings, search_log="0"), embedder=logged.embedder)
    assert browse.find(off, SearchRequest(query="mainframe"), ADA).total
    assert search_log(off.settings).record_entry(PUBLIC) is False
    search_log(off.settings).flush()
    assert rows(logged) == [] and rows(logged, EntryActivity) == []


def test_a_bad_period_is_one_clear_message_and_never_breaks_a_search(kb, caplog):
    bad = KnowledgeBase(replace(kb.settings, search_log="six months"), embedder=kb.embedder)
    with caplog.at_level(logging.WARNING, logger="kb.searchlog"):
        assert browse.find(bad, SearchRequest(query="data sharing"), ADA).total
    assert "KB_SEARCH_LOG_DAYS must be a whole number of days" in caplog.text
    with pytest.raises(KBError, match="KB_SEARCH_LOG_DAYS"):
        bad.settings.search_log_days  # noqa: B018
    result = CliRunner().invoke(cli, ["searches"], env={"KB_SEARCH_LOG_DAYS": "-3"})
    assert result.exit_code == 1 and "Traceback" not in result.output and "KB_SEARCH_LOG_DAYS" in result.output


def test_a_database_that_is_down_never_breaks_a_search_and_is_logged_once(kb, caplog):
    down = KnowledgeBase(
        replace(kb.settings, database="postgresql+psycopg://nobody@127.0.0.1:1/lighthouse"), embedder=kb.embedder
    )
    with caplog.at_level(logging.WARNING, logger="kb.searchlog"):
        for query in ("data sharing", "mainframe", "census"):
            assert browse.find(down, SearchRequest(query=query), ADA).total
        assert browse.download(down, [PUBLIC], "csv", ADA)
        search_log(down.settings).flush()
    warnings = [r for r in caplog.records if r.name == "kb.searchlog"]
    assert len(warnings) == 1 and "not being counted" in warnings[0].getMessage()


def test_the_api_counts_a_search_on_its_first_page_and_an_entry_read(logged, tmp_path):
    client = TestClient(create_app(logged, TokenStore(tmp_path / "tokens.json")), raise_server_exceptions=False)
    assert client.get("/search", params={"q": "Data sharing", "limit": 2}).status_code == 200
    assert client.get("/search", params={"q": "Data sharing", "limit": 2, "page": 2}).status_code == 200
    assert client.get(f"/entries/{PUBLIC}").status_code == 200
    assert client.get(f"/entries/{ORG_ONLY}").status_code == 404  # hidden: not counted
    assert counts(logged) == {("data sharing", "hybrid"): 1}
    assert [(r.entry_id, r.opened) for r in rows(logged, EntryActivity)] == [(PUBLIC, 1)]


def test_the_searches_command_lists_the_top_and_the_unmatched(logged, monkeypatch):
    monkeypatch.setitem(CLOSE_SIMILARITY, logged.embedder.name, 0.3)
    for query in ("data sharing agreement", "data sharing agreement", "zzqx flurble wibbleton"):
        browse.find(logged, SearchRequest(query=query), ADA)
    run = CliRunner()
    env = env_of(logged.settings)
    index = ["--index", str(logged.settings.index_dir)]
    top = run.invoke(cli, [*index, "searches", "--json"], env=env, catch_exceptions=False)
    assert [(s["query"], s["searches"]) for s in json.loads(top.output)] == [
        ("data sharing agreement", 2),
        ("zzqx flurble wibbleton", 1),
    ]
    missing = run.invoke(cli, [*index, "searches", "--no-match", "--days", "7"], env=env, catch_exceptions=False)
    assert "zzqx flurble wibbleton" in missing.output and "data sharing agreement" not in missing.output


def test_a_search_never_waits_for_a_database_that_hangs(kb, monkeypatch):
    released = threading.Event()

    def hanging(settings):
        released.wait(10)
        raise KBError("cannot open the database: timed out")

    monkeypatch.setattr(searchlog, "open_database", hanging)
    started = time.perf_counter()
    assert browse.find(kb, SearchRequest(query="data sharing"), ADA).total
    assert browse.find(kb, SearchRequest(query="mainframe"), ADA).total
    assert time.perf_counter() - started < 5, "a search waited for the search log"
    released.set()
    search_log(kb.settings).flush()


def test_a_search_is_counted_as_anyone_would_see_it(logged):
    """Curators read the counts: what a searcher saw of their own organisation's entries is not in them."""
    words = "caseworker policy guidance chatbot"
    hits = browse.find(logged, SearchRequest(query=words, mode="keyword"), ADA, visit="v")
    assert ORG_ONLY in [h.id for h in hits.hits], "Ada's organisation's own entry is found for her"
    public = browse.find(logged, SearchRequest(query=words, mode="keyword"), ANONYMOUS).total
    (row,) = [r for r in rows(logged) if r.query == words]
    assert row.results == public < hits.total
