"""A person's follows, saved searches, digest frequency and feed secret (on SQLite and on PostgreSQL), and
what is new for them: new entries, lighthouse stage changes, only what they may read."""

from __future__ import annotations

import time
from dataclasses import replace

import pytest
from sqlalchemy import select

from kb import KnowledgeBase, Settings, evidence
from kb.access import ANONYMOUS
from kb.browse import SearchRequest
from kb.database import open_database
from kb.database.tables import Person
from kb.errors import KBError
from kb.filters import Filters
from kb.following import Following
from kb.tokens import digest
from kb.whats_new import updates
from tests.following import ADA, BO, THEME, later, write_entry

LIGHTHOUSE = "benefit-demand-modelling-from-application-data"  # a proven lighthouse in the samples


@pytest.fixture
def following(database_url, tmp_path) -> Following:
    settings = Settings(index_dir=tmp_path / "index", database=database_url)
    return Following(open_database(settings))


@pytest.fixture
def kb_state(settings, fake_embedder, database_url):
    """The sample entries and a Following over a database of each kind."""
    kb = KnowledgeBase(replace(settings, database=database_url), embedder=fake_embedder)
    kb.sync()
    return kb, Following(open_database(kb.settings))


def test_follows_and_saved_searches_are_kept_once_and_can_be_removed(following):
    following.follow(ADA, "theme", THEME)
    again = following.follow(ADA, "theme", f"  {THEME} ")
    following.follow(ADA, "organisation", "Border and Trade Agency")
    request = SearchRequest(query="data sharing", mode="keyword", facets=Filters.of(outcome=["failed"]), exact=True)
    saved = following.save_search(ADA, replace(request, page=3))
    assert following.save_search(ADA, request).id == saved.id  # the same search, another page: kept once
    profile = following.visit(ADA)
    assert [(f.kind, f.value) for f in profile.follows] == [
        ("theme", THEME),
        ("organisation", "Border and Trade Agency"),
    ]
    assert profile.follows[0].id == again.id
    assert [s.request for s in profile.searches] == [request]  # query, mode, filters and exact come back
    assert profile.organisation == "Home Affairs Department" and profile.email == ADA.email
    assert profile.frequency == "weekly"

    assert following.unfollow(ADA, "theme", THEME) and not following.unfollow(ADA, "theme", THEME)
    assert following.remove_search(ADA, saved.id)
    assert not following.remove_search(BO, saved.id)  # nobody removes someone else's
    profile = following.profile(ADA)
    assert [f.kind for f in profile.follows] == ["organisation"] and profile.searches == ()
    assert following.profile(BO) is None


def test_a_visitor_keeps_nothing_and_bad_choices_are_refused_in_words(following):
    with pytest.raises(KBError, match="sign in"):
        following.follow(ANONYMOUS, "theme", THEME)
    with pytest.raises(KBError, match="sign in"):
        following.save_search(ANONYMOUS, SearchRequest(query="x"))
    assert following.profile(ANONYMOUS) is None
    with pytest.raises(KBError, match="theme, organisation or lighthouse"):
        following.follow(ADA, "team", "x")
    with pytest.raises(KBError, match="nothing to save"):
        following.save_search(ADA, SearchRequest())
    with pytest.raises(KBError, match="weekly, daily or is off"):
        following.set_frequency(ADA, "hourly")
    following.set_frequency(ADA, "daily")
    assert following.profile(ADA).frequency == "daily"


def test_a_feed_secret_is_kept_as_its_hash_and_a_new_one_revokes_the_old(following):
    first = following.new_feed_secret(ADA)
    user, profile = following.feed_owner(first)
    assert (user.name, user.organisation, user.email) == (ADA.name, ADA.organisation, ADA.email)
    assert profile.has_feed_secret
    with following.database.session() as session:
        stored = session.scalars(select(Person.feed_secret_hash)).one()
    assert stored == digest(first) and first not in stored
    second = following.new_feed_secret(ADA)
    assert following.feed_owner(first) is None and following.feed_owner(second) is not None
    following.revoke_feed_secret(ADA)
    assert following.feed_owner(second) is None
    assert following.feed_owner("") is None and following.feed_owner("lhf_" + "x" * 500) is None


def test_new_entries_reach_who_follows_their_theme_or_organisation_and_only_if_they_may_read_them(kb_state):
    kb, following = kb_state
    since = later(seconds=-1)
    following.follow(ADA, "theme", THEME)
    following.follow(BO, "organisation", "Border and Trade Agency")
    public = write_entry(kb, "A public agreement template", themes=[THEME], organisation="Border and Trade Agency")
    hidden = write_entry(
        kb,
        "Border agency's own agreement log",
        themes=[THEME],
        organisation="Border and Trade Agency",
        partners=[],
        visibility="organisation",
    )
    draft = write_entry(kb, "A half-written agreement", themes=[THEME], status="draft", author=ADA.as_author)
    other = write_entry(kb, "Nothing Ada follows", themes=["data-quality"], organisation="Office for Public Statistics")

    for_ada = updates(kb, ADA, following.visit(ADA), since, later(seconds=1))
    assert [u.entry_id for u in for_ada] == [public.id]
    assert for_ada[0].kind == "entry" and "theme Data sharing agreements" in for_ada[0].reasons[0]
    for_bo = updates(kb, BO, following.visit(BO), since, later(seconds=1))
    assert {u.entry_id for u in for_bo} == {public.id, hidden.id}  # his organisation's own entry too
    assert draft.id not in {u.entry_id for u in for_ada + for_bo}
    assert other.id not in {u.entry_id for u in for_ada + for_bo}
    # Nothing is new before it was written, nor after the period.
    assert updates(kb, ADA, following.profile(ADA), later(seconds=5), later(seconds=10)) == []


def test_an_entry_published_after_review_is_new_then_and_a_lighthouse_s_new_stage_is_told(kb_state):
    kb, following = kb_state
    following.follow(ADA, "lighthouse", LIGHTHOUSE)
    saved = following.save_search(ADA, SearchRequest(facets=Filters.of(theme=[THEME])))
    draft = write_entry(kb, "Waiting for a reviewer", themes=[THEME], status="in-review")
    time.sleep(1.1)  # the history names a version's time to the second
    since = later()
    time.sleep(1.1)
    kb.save(replace(kb.stored(draft.id), status="published"))
    lighthouse = kb.stored(LIGHTHOUSE)
    kb.save(replace(lighthouse, lighthouse=replace(lighthouse.lighthouse, stage="replicated")))

    found = {u.entry_id: u for u in updates(kb, ADA, following.visit(ADA), since, later(seconds=1))}
    assert found[draft.id].kind == "entry" and found[draft.id].sources == {saved.key}
    stage = found[LIGHTHOUSE]
    assert stage.kind == "stage" and stage.detail == "proven → replicated"
    assert stage.reasons == ("you follow this lighthouse",)
    only = updates(kb, ADA, following.profile(ADA), since, later(seconds=1), only=[saved.key])
    assert [u.entry_id for u in only] == [draft.id]


def test_an_entry_file_copied_in_is_not_new_because_its_copy_is(kb_state):
    kb, following = kb_state
    following.follow(ADA, "theme", THEME)
    since = later(seconds=-1)
    old = kb.store.path_for("benefits-and-housing-data-sharing-pilot").read_text(encoding="utf-8")
    copied = old.replace("id: benefits-and-housing-data-sharing-pilot", "id: restored-from-a-backup")
    kb.store.path_for("restored-from-a-backup").write_text(copied, encoding="utf-8")  # written 2022-10-12, it says
    kb.sync()
    fresh = write_entry(kb, "Written today", themes=[THEME])
    found = updates(kb, ADA, following.visit(ADA), since, later(seconds=1))
    assert [u.entry_id for u in found] == [fresh.id]


def test_another_kind_of_new_thing_is_one_more_collector(kb_state, monkeypatch):
    """Evidence notes come in as one more collector: what it finds is matched and shown like the rest."""
    from kb import whats_new as module

    kb, following = kb_state
    following.follow(ADA, "organisation", "Department for Work and Welfare")
    when = later()

    def notes(kb, viewer, since, until):
        return [module.Change("note", "benefits-and-housing-data-sharing-pilot", when, "We hit this too")]

    monkeypatch.setattr(module, "COLLECTORS", (*module.COLLECTORS, notes))
    (note,) = updates(kb, ADA, following.visit(ADA), later(seconds=-5), later(seconds=5))
    assert (note.kind, note.detail, note.when) == ("note", "We hit this too", when)
    assert note.reasons == ("you follow the organisation Department for Work and Welfare",)


def test_an_evidence_note_reaches_those_who_follow_its_entry_and_an_anonymous_one_names_nobody(kb_state):
    kb, following = kb_state
    entry = "benefits-and-housing-data-sharing-pilot"  # Department for Work and Welfare's, public
    following.follow(ADA, "organisation", "Department for Work and Welfare")
    before = later(seconds=-5)
    evidence.add_note(kb, entry, text="Our council hit the same consent wall in 2023.", year=2023, viewer=BO)
    evidence.add_note(kb, entry, text="So did we, quietly.", year=2024, anonymous=True, viewer=BO)
    notes = [u for u in updates(kb, ADA, following.visit(ADA), before, later(seconds=5)) if u.kind == "note"]
    assert len(notes) == 2 and {n.entry_id for n in notes} == {entry}
    named, anonymous = sorted(notes, key=lambda n: "quietly" in n.detail)
    assert "Border and Trade Agency, 2023" in named.detail and "consent wall" in named.detail
    assert "Border and Trade Agency" not in anonymous.detail and "So did we" in anonymous.detail
    assert anonymous.reasons == ("you follow the organisation Department for Work and Welfare",)
    assert not [
        u for u in updates(kb, ADA, following.visit(ADA), later(seconds=5), later(seconds=10)) if u.kind == "note"
    ]


def test_someone_who_moved_reads_as_the_organisation_their_address_now_maps_to(following):
    from kb.following import user_of
    from kb.signin import Access

    following.follow(ADA, "theme", THEME)
    with following.database.session() as session:
        person = session.scalars(select(Person)).one()
        moved = Access(domains={"had.example.gov": "Border and Trade Agency"})
        assert user_of(person, moved).organisation == "Border and Trade Agency"
        assert user_of(person, Access()).organisation == ADA.organisation  # no mapping: as at the last visit
