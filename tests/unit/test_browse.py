"""The app's library: search requests, facet counts, newest, drafting, identity."""

from __future__ import annotations

from dataclasses import replace

import pytest

from kb import Conflict, Filters, KBError, browse, review
from kb.access import ANONYMOUS, can_see, entry_meta
from kb.browse import SearchRequest
from kb.drafting import FORM_ERROR, Draft, DraftInvalid, build_entry, save_draft
from kb.duplicates import looks_similar
from kb.entry_files import parse_entry
from kb.filters import FACETS, holds
from kb.identity import DEFAULT_NAME, User, local_user, parse_roles

REVIEWER = User("Rita Reviewer", "Cabinet Digital Office", ("contributor", "reviewer"))
CONTRIBUTOR = User("Carl Contributor", "Home Affairs Department", ("contributor",))


def valid_draft(**changes) -> Draft:
    draft = Draft(
        title="Matching school and health records to find young carers",
        organisation="Test Office",
        summary="We matched records to find young carers. It worked for two councils.",
        kind="experiment",
        outcome="partial",
        themes=["record-linkage"],
        sections={"Lessons": "Agree the legal basis first."},
    )
    for name, value in changes.items():
        setattr(draft, name, value)
    return draft


# --------------------------------------------------------------------------- identity


def test_local_user_defaults_to_contributor_and_curator():
    user = local_user({})
    assert (user.name, user.organisation, user.roles, user.local) == (
        DEFAULT_NAME,
        "",
        ("contributor", "curator"),
        True,
    )
    assert user.is_reviewer and user.is_contributor and user.has_role("curator")


def test_local_user_reads_environment():
    user = local_user(
        {
            "KB_USER_NAME": " Ada ",
            "KB_USER_ORGANISATION": "Office for Tests",
            "KB_USER_ROLES": "Contributor, contributor ,",
        }
    )
    assert (user.name, user.organisation, user.roles) == ("Ada", "Office for Tests", ("contributor",))
    assert not user.is_reviewer


def test_parse_roles_blank_means_defaults():
    assert parse_roles("  ") == parse_roles(None) == ("contributor", "reviewer")


# --------------------------------------------------------------------------- search requests


def test_search_request_round_trips_through_url_parameters():
    request = SearchRequest(
        query="DSA delays",
        mode="keyword",
        facets=Filters.of(
            organisation="Cabinet Digital Office",
            theme=("data-sharing-agreements", "data-governance"),
            outcome=("failed", "stopped"),
            kind="experiment",
            evidence="measured",
            quality=("poor", "fair"),
            status="in-review",
            tag=("Mission Operations", "Software"),
            team="Goddard",
            year_from=2019,
            year_to=2023,
            lighthouse=False,
        ),
    )
    assert SearchRequest.from_params(request.to_params()) == request
    every = {f.name for f in FACETS if f.kind == "choice"}
    assert every <= set(request.to_params()), "every facet the filter model knows travels in the URL"


def test_search_request_drops_unknown_values():
    request = SearchRequest.from_params(
        {
            "q": "  x ",
            "mode": "psychic",
            "outcome": ["failed", "exploded"],
            "kind": "widget",
            "from": "19x9",
            "lighthouse": "maybe",
            "status": "gone",
            "evidence": "rumour",
        }
    )
    assert request == SearchRequest(query="x", facets=Filters.of(outcome="failed"))


def test_default_request_has_short_url_and_published_filter():
    assert SearchRequest().to_params() == {}
    assert SearchRequest().filters().status == ("published",)
    assert not SearchRequest(query="x").has_filters
    assert SearchRequest(query="x", facets=Filters.of(kind="project")).has_filters


def test_only_reviewers_look_beyond_published():
    request = SearchRequest(facets=Filters.of(status="draft"))
    assert request.for_user(CONTRIBUTOR).facets.status == ()
    assert request.for_user(CONTRIBUTOR).filters().status == ("published",)
    assert request.for_user(REVIEWER).filters().status == ("draft",)


# --------------------------------------------------------------------------- find and facets


def test_find_returns_hits_within_filters(kb):
    results = browse.find(
        kb, SearchRequest(query="data sharing agreement", facets=Filters.of(outcome=("failed", "stopped"))), REVIEWER
    )
    assert results.hits
    assert {h.outcome for h in results.hits} <= {"failed", "stopped"}
    assert "benefits-and-housing-data-sharing-pilot" in [h.id for h in results.hits]


def test_find_without_query_lists_newest(kb):
    results = browse.find(kb, SearchRequest(), REVIEWER)
    assert len(results.newest) == browse.NEWEST and not results.hits
    assert all(e.status == "published" for e in results.newest)


def test_what_the_filters_allow_is_listed_whole_across_pages(kb):
    """ "22 entries match" lists all 22: every page, in turn, newest first, each entry once."""
    request = SearchRequest(facets=Filters.of(kind="project"))
    first = browse.find(kb, request, REVIEWER)
    assert first.total == first.in_scope > browse.PAGE_SIZE, "enough entries for two pages"
    seen = []
    for page in range(1, first.pages + 1):
        results = browse.find(kb, replace(request, page=page), REVIEWER)
        assert results.page == page and results.total == first.total
        seen += [e.id for e in results.newest]
    assert len(seen) == len(set(seen)) == first.in_scope
    assert all(e.kind == "project" for e in browse.load_entries(kb, seen))
    past_the_end = browse.find(kb, replace(request, page=99), REVIEWER)
    assert past_the_end.page == first.pages and past_the_end.newest, "a stale link shows the last page"


def test_a_query_s_matches_are_listed_whole_across_pages(kb):
    request = SearchRequest(query="data", mode="keyword")
    first = browse.find(kb, request, REVIEWER)
    assert first.total > browse.PAGE_SIZE and len(first.hits) == browse.PAGE_SIZE
    pages = [browse.find(kb, replace(request, page=n), REVIEWER).hits for n in range(1, first.pages + 1)]
    ids = [h.id for hits in pages for h in hits]
    assert len(ids) == len(set(ids)) == first.total
    assert ids == [
        h.id
        for h in kb.search("data", mode="bm25", limit=browse.MAX_RESULTS, viewer=REVIEWER, filters=request.filters())
    ]


def test_the_page_is_in_the_url_and_starts_at_one():
    request = SearchRequest.from_params({"q": "DSA", "page": "3"})
    assert request.page == 3 and request.to_params() == {"q": "DSA", "page": "3"}
    for bad in ("0", "-2", "two", "", "1e9"):
        assert SearchRequest.from_params({"page": bad}).page == 1, bad
    assert "page" not in SearchRequest(query="DSA").to_params()


@pytest.mark.parametrize(
    "viewer", [None, ANONYMOUS, CONTRIBUTOR, REVIEWER], ids=["operator", "anonymous", "contributor", "reviewer"]
)
def test_every_page_counts_the_same_entries_for_the_same_person(kb, viewer):
    """The sidebar, the search page and Insights say one number: published entries this person may see."""
    from kb.insights import insights

    entries = kb.store.load().entries.values()
    expected = sum(1 for e in entries if e.status == "published" and (viewer is None or can_see(viewer, entry_meta(e))))
    assert browse.count_in_scope(kb, None, viewer) == expected
    assert browse.find(kb, SearchRequest(), viewer).in_scope == expected
    assert insights(kb, viewer=viewer).entries == expected


def test_find_reports_hits_outside_the_filters_on_zero_results(kb):
    request = SearchRequest(query="data sharing agreement", facets=Filters.of(organisation="Nobody at all"))
    results = browse.find(kb, request, REVIEWER)
    assert results.hits == [] and results.unfiltered


def test_facet_counts_agree_with_the_index(kb):
    filters = Filters.of(status="published", outcome=("failed",))
    counts = browse.facet_counts(kb, filters)
    for theme, n in counts["theme"]:
        assert n == len(kb.index.entry_ids(Filters.of(status="published", outcome=("failed",), theme=theme).where()))
    for outcome, n in counts["outcome"]:  # its own facet is counted without its own filter
        assert n == len(kb.index.entry_ids(Filters.of(status="published", outcome=outcome).where()))


def test_local_filter_matches_chroma_filter(kb):
    cases = [
        Filters.of(status="published", lighthouse=True),
        Filters.of(year_from=2020, year_to=2021),
        Filters.of(theme=("data-quality", "record-linkage"), kind="experiment"),
        Filters.of(lighthouse=False),
    ]
    for filters in cases:
        local = {r.entry_id for r in browse.rows(kb) if holds(filters.where(), r.metadata)}
        assert local == kb.index.entry_ids(filters.where()), filters


def test_the_snapshot_lasts_until_the_knowledge_base_changes_the_index(kb):
    first = browse.rows(kb)
    assert browse.rows(kb) is first
    entry = kb.get("open-data-portal-relaunch-low-usage")
    entry.title = "A renamed open data portal relaunch"
    kb.save(entry)  # nobody has to remember to drop the snapshot
    assert browse.rows(kb) is not first
    titles = {r.entry_id: r.metadata["title"] for r in browse.rows(kb)}
    assert titles[entry.id] == "A renamed open data portal relaunch"


def test_facet_counts_and_the_in_scope_count_are_kept_until_the_index_changes(kb, monkeypatch):
    """Counted once per reader and filters on the snapshot (a search, paging and Back reuse them), and
    dropped with it: a save shows at once, with no clock and nothing to invalidate."""
    filters = Filters.of(status="published")
    first = browse.facet_counts(kb, filters, viewer=CONTRIBUTOR)
    in_scope = browse.count_in_scope(kb, filters, CONTRIBUTOR)
    monkeypatch.setattr(browse, "rows", lambda *a: pytest.fail("the rows read again while the index stood"))
    monkeypatch.setattr(browse, "predicate", lambda *a: pytest.fail("counted again while the index stood"))
    assert browse.facet_counts(kb, filters, viewer=CONTRIBUTOR) == first
    assert browse.count_in_scope(kb, filters, CONTRIBUTOR) == in_scope
    first["theme"].clear()  # a caller's changes stay its own
    assert browse.facet_counts(kb, filters, viewer=CONTRIBUTOR)["theme"]
    monkeypatch.undo()

    entry = kb.get("open-data-portal-relaunch-low-usage")
    entry.tags = [*entry.tags, "okapi-tag"]
    kb.save(entry)
    assert ("okapi-tag", 1) in browse.facet_counts(kb, filters, viewer=CONTRIBUTOR)["tag"]
    entry.status = "archived"
    kb.save(entry)
    assert browse.count_in_scope(kb, filters, CONTRIBUTOR) == in_scope - 1


def test_counts_kept_by_a_running_app_follow_a_sync_by_another_process(kb, settings, fake_embedder, entries_dir):
    from kb import KnowledgeBase

    app = KnowledgeBase(settings, embedder=fake_embedder)  # e.g. the web app, already serving
    before = browse.count_in_scope(app)
    assert "Okapi Trust" not in dict(browse.facet_counts(app)["organisation"])
    (entries_dir / "okapi.md").write_text(
        "---\nid: okapi\ntitle: Okapi gritting rota\nsummary: Okapi gritting for parishes.\nkind: project\n"
        "outcome: succeeded\norganisation: Okapi Trust\nstatus: published\nvisibility: public\n---\n"
    )
    kb.sync()  # e.g. `python -m kb sync` beside the app
    assert browse.count_in_scope(app) == before + 1
    assert ("Okapi Trust", 1) in browse.facet_counts(app)["organisation"]


def test_newest_orders_by_updated_date(kb):
    entry = kb.get("open-data-portal-relaunch-low-usage")
    entry.updated = "2099-01-01"
    kb.save(entry)
    assert browse.newest(kb, limit=1)[0].id == entry.id


# --------------------------------------------------------------------------- drafting


def test_empty_draft_sent_for_review_reports_every_missing_field():
    with pytest.raises(DraftInvalid) as caught:
        build_entry(Draft(kind=""), REVIEWER, status="in-review")
    assert set(caught.value.messages) >= {"title", "summary", "kind", "outcome", "organisation", "section:Lessons"}


def test_draft_reports_library_problems_next_to_their_fields():
    draft = valid_draft(started="2021/4", title="x" * 300, links="ftp://nope", lighthouse_impact="Saved money")
    with pytest.raises(DraftInvalid) as caught:
        build_entry(draft, REVIEWER, status="in-review")
    messages = caught.value.messages
    assert "not a date" in messages["started"][0]
    assert "shorten it" in messages["title"][0]
    assert "ftp://nope" in messages["links"][0]
    assert "stage" in messages["lighthouse_stage"][0]
    assert FORM_ERROR not in messages


def test_valid_draft_builds_an_entry():
    draft = valid_draft(
        lighthouse_stage="pilot",
        lighthouse_impact="Found 300 carers.",
        lighthouse_benefits="- 300 carers found\n\n- Two councils",
        links="https://example.org/r",
    )
    entry = build_entry(draft, REVIEWER, status="in-review", today="2025-01-02")
    assert entry.id == "matching-school-and-health-records-to-find-young-carers"
    assert (entry.status, entry.author, entry.created, entry.updated) == (
        "in-review",
        "Rita Reviewer",
        "2025-01-02",
        "2025-01-02",
    )
    assert entry.lighthouse.benefits == ["300 carers found", "Two councils"]
    assert entry.links == ["https://example.org/r"]


def test_save_draft_writes_indexes_and_is_found(kb):
    entry = save_draft(kb, valid_draft(), CONTRIBUTOR, status="in-review")
    path = kb.store.path_for(entry.id)
    assert path.is_file()
    parsed, _ = parse_entry(path.read_text(), path.name)
    assert parsed.status == "in-review" and parsed.author == "Carl Contributor"
    assert entry.id in [h.id for h in kb.search("young carers school health records")]
    assert entry.id in [q.entry.id for q in review.review_queue(kb)]


def test_save_draft_never_writes_an_invalid_entry(kb):
    before = sorted(p.name for p in kb.store.files())
    with pytest.raises(DraftInvalid):
        save_draft(kb, valid_draft(summary=""), CONTRIBUTOR, status="in-review")
    with pytest.raises(DraftInvalid):
        save_draft(kb, valid_draft(title=" "), CONTRIBUTOR, status="draft")
    assert sorted(p.name for p in kb.store.files()) == before


def test_save_draft_new_entry_gets_a_fresh_id_when_the_title_is_taken(kb):
    first = save_draft(kb, valid_draft(), CONTRIBUTOR, status="draft")
    second = save_draft(kb, valid_draft(), CONTRIBUTOR, status="draft")
    assert second.id == f"{first.id}-2"
    assert kb.store.path_for(first.id).is_file() and kb.store.path_for(second.id).is_file()


OWNING_CONTRIBUTOR = User("Olu Owner", "Environment and Rural Agency", ("contributor",))
OWNING_REVIEWER = User("Rae Owner", "Environment and Rural Agency", ("contributor", "reviewer"))


def test_edit_keeps_created_author_and_detects_a_concurrent_change(kb):
    entry_id = "flood-response-data-cell"
    original = kb.get(entry_id)
    version = kb.store.version(entry_id)
    draft = Draft.from_entry(original)
    draft.summary = "A shorter summary."
    saved = save_draft(kb, draft, OWNING_REVIEWER, status="published", edit_id=entry_id, expected_version=version)
    assert (saved.created, saved.author, saved.summary) == (original.created, original.author, "A shorter summary.")
    with pytest.raises(Conflict, match="changed by someone else"):
        save_draft(kb, draft, OWNING_REVIEWER, status="published", edit_id=entry_id, expected_version=version)


def test_only_reviewers_keep_an_edited_entry_published(kb):
    draft = Draft.from_entry(kb.get("flood-response-data-cell"))
    with pytest.raises(KBError, match="reviewed before readers see it"):
        save_draft(kb, draft, OWNING_CONTRIBUTOR, status="published", edit_id="flood-response-data-cell")
    saved = save_draft(kb, draft, OWNING_REVIEWER, status="published", edit_id="flood-response-data-cell")
    assert saved.status == "published"


def test_looks_similar_finds_the_near_duplicate(kb):
    template = kb.get("cross-government-data-sharing-agreement-template")
    hits = looks_similar(kb, template.title, template.summary)
    assert hits[0].id == template.id
    assert template.id not in [h.id for h in looks_similar(kb, template.title, template.summary, exclude=template.id)]
    assert looks_similar(kb, "", "DSA") == []


def test_what_to_try_comes_from_the_collection():
    facets = {
        "theme": [("data-sharing-agreements", 9), ("legacy-infrastructure", 4)],
        "tag": [("Data sharing agreements", 3), ("Mission Operations", 2), ("Software", 2), ("Safety", 1)],
    }
    label = {"data-sharing-agreements": "Data sharing agreements", "legacy-infrastructure": "Legacy systems"}.get
    assert browse.suggested_searches(facets, label) == [
        "Data sharing agreements",  # a tag spelled like a theme is one suggestion
        "Legacy systems",
        "Mission Operations",
        "Software",
        "Safety",
    ]
    register = {"theme": [], "tag": [("Mission Operations", 40), ("Software", 12)]}  # NASA's: topics, no themes
    assert browse.suggested_searches(register, str) == ["Mission Operations", "Software"]
    assert browse.suggested_searches({}, str) == []


def test_the_empty_page_suggests_the_collection_s_own_searches(kb):
    results = browse.find(kb, SearchRequest(), REVIEWER)
    assert results.suggestions and "DSA" not in results.suggestions
    assert all(browse.find(kb, SearchRequest(query=s), REVIEWER).hits for s in results.suggestions)
