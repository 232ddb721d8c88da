"""One filter model, three ways to run it: Chroma, one entry's metadata (`holds`) and the entry table's
columns (`EntryTable.select`) must pick exactly the same entries for any filters and any viewer."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kb import KnowledgeBase, Settings
from kb.access import ANONYMOUS
from kb.embedder import HashingEmbedder
from kb.entries import KINDS, OUTCOMES, QUALITY_RATINGS, STATUSES, Grade, Lighthouse, SourceQuality
from kb.filters import FACETS, Filters, Scope, holds, predicate
from kb.identity import User
from kb.replica import EntryTable
from tests.unit.test_access import ORGS, PEOPLE, random_collection

THEMES = ["data-quality", "data-sharing-agreements", "legacy-infrastructure"]
TAGS = ["Mission Operations", "Software", "Safety"]
TEAMS = ["Goddard", "Marshall", "Ames"]


@pytest.fixture(scope="module")
def collection(tmp_path_factory):
    """A random collection in Chroma, and its records as the local mirror holds them."""
    folder = tmp_path_factory.mktemp("filters")
    settings = Settings(entries_dir=folder / "entries", index_dir=folder / "index", chroma_url=None, model="x")
    base = KnowledgeBase(settings, embedder=HashingEmbedder())
    entries = random_collection(seed=11, size=80)
    for n, entry in enumerate(entries):  # themes, tags, teams, years and evidence too: every facet cuts something
        entry.themes = [THEMES[n % 3]] + ([THEMES[(n + 1) % 3]] if n % 4 == 0 else [])
        entry.started = f"{2015 + n % 9}-01" if n % 7 else ""
        entry.evidence = ("anecdote", "observed", "measured", "")[n % 4]
        entry.lighthouse = Lighthouse(stage="pilot", impact="It worked.") if n % 5 == 0 else None
        entry.tags = [TAGS[n % 3]] + ([TAGS[(n + 2) % 3]] if n % 3 == 0 else []) if n % 6 else []
        entry.team = TEAMS[n % 3] if n % 5 else ""
        entry.data_sources = ["Survey", "Register"] if n % 3 else []  # graded ones give the data quality facet
        entry.data_quality = (
            {
                "Survey": SourceQuality({"accuracy": Grade(QUALITY_RATINGS[n % 4]), "timeliness": Grade("good")}),
                "Register": SourceQuality({"validity": Grade(QUALITY_RATINGS[(n + 1) % 4])}),
            }
            if n % 3 == 1
            else {}
        )
    base.sync_entries(entries)
    records = {e.entry_id: e.metadata for e in base.index.entries()}
    return base, records


filters = st.builds(
    Filters.of,
    organisation=st.lists(st.sampled_from(ORGS), max_size=2),
    theme=st.lists(st.sampled_from(THEMES), max_size=2),
    tag=st.lists(st.sampled_from(TAGS), max_size=2),
    team=st.lists(st.sampled_from(TEAMS), max_size=2),
    kind=st.lists(st.sampled_from(KINDS), max_size=1),
    outcome=st.lists(st.sampled_from(OUTCOMES), max_size=2),
    status=st.lists(st.sampled_from(STATUSES), max_size=2),
    evidence=st.lists(st.sampled_from(["anecdote", "observed", "measured"]), max_size=2),
    quality=st.lists(st.sampled_from(QUALITY_RATINGS), max_size=2),
    lighthouse=st.sampled_from([None, True, False]),
    year_from=st.sampled_from([None, 2016, 2020]),
    year_to=st.sampled_from([None, 2018, 2023]),
)
viewers = st.one_of(
    st.none(),
    st.just(ANONYMOUS),
    st.builds(
        User,
        name=st.sampled_from([*PEOPLE, "Zed"]),
        organisation=st.sampled_from([*ORGS, ""]),
        roles=st.sampled_from([(), ("contributor",), ("reviewer",)]),
        local=st.just(False),
    ),
)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(chosen=filters, viewer=viewers)
def test_chroma_the_entry_table_and_holds_pick_the_same_entries(collection, chosen, viewer):
    base, records = collection
    where = Scope(chosen, viewer).where()
    by_holds = {entry_id for entry_id, meta in records.items() if holds(where, meta)}
    assert EntryTable(records).ids_where(where) == by_holds
    assert base.index.entry_ids(where) == by_holds


def test_a_clause_outside_the_language_is_refused_as_it_is_read():
    for clause in ({"$not": {"year": 2020}}, {"themes": {"$eq": "data-sharing"}}):
        with pytest.raises(ValueError):
            predicate(clause)
    assert not predicate({"title": {"$regex": "x"}})({})  # a missing field matches nothing, as in Chroma
    with pytest.raises(ValueError):
        predicate({"title": {"$regex": "x"}})({"title": "x"})


def test_every_facet_cuts_something_in_the_collection(collection):
    """Otherwise the property test above would prove nothing for that facet."""
    _, records = collection
    for facet in FACETS:
        if facet.kind == "range":
            chosen = Filters.of(year_from=2020)
        elif facet.kind == "flag":
            chosen = Filters.of(lighthouse=True)
        else:
            value = next(v for meta in records.values() if (v := meta.get(facet.field)))
            chosen = Filters.of(**{facet.name: value[0] if isinstance(value, list) else value})
        picked = sum(holds(chosen.where(), meta) for meta in records.values())
        assert 0 < picked < len(records), facet.name


def test_true_is_not_one_and_a_missing_field_matches_nothing():
    assert holds({"lighthouse": True}, {"lighthouse": True})
    assert not holds({"lighthouse": True}, {"lighthouse": 1})
    assert not holds({"year": {"$gte": 2020}}, {})
    assert not holds({"organisation": {"$ne": "A"}}, {})
    assert holds({"partners": {"$contains": "A"}}, {"partners": ["A", "B"]})


def test_an_anonymous_entry_adds_no_team_to_the_filters(collection):
    _, records = collection
    anonymous = [meta for meta in records.values() if meta.get("anonymous")]
    assert anonymous and all("team" not in meta for meta in anonymous)
    assert any("team" in meta for meta in records.values()), "other entries name theirs"


def test_the_data_quality_facet_is_the_worst_grade_of_any_source(collection):
    """An entry's "Data quality" is the lowest rating any of its sources got; an ungraded entry has none."""
    _, records = collection
    qualities = {meta.get("quality") for meta in records.values()}
    assert qualities == {None, "poor", "fair", "good"}  # "excellent" never is the worst: a source rated "good" too
    graded = [meta for meta in records.values() if meta.get("quality")]
    assert len(graded) == len([n for n in range(80) if n % 3 == 1])
    poor = sum(holds(Filters.of(quality="poor").where(), meta) for meta in records.values())
    assert poor == len(
        [n for n in range(80) if n % 3 == 1 and "poor" in (QUALITY_RATINGS[n % 4], QUALITY_RATINGS[(n + 1) % 4])]
    )
