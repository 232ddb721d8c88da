"""Filtered search that stays fast on big collections gives exactly what Chroma's filtered query gives.

While every vector fits in memory the vector side is an exact search over them. Beyond that (these
tests set the limit to nothing unless they say otherwise) it asks Chroma for more neighbours without
the clause and keeps the allowed ones, falling back to the filtered query when too few survive; the
keyword side keeps one mask per reader and filters until the index changes; quoted phrases are
answered from word positions.
"""

from __future__ import annotations

import threading

import pytest

from kb import Filters, KnowledgeBase
from kb.access import ANONYMOUS, member_of
from kb.filters import Scope
from kb.nearest import DEEPER_FETCH, OVERFETCH
from kb.passages import PassageId
from kb.search import MODES

QUERIES = [
    "data sharing agreement took too long",
    "chatbot for benefit claims",
    "legacy system migration failed",
    "predictive model for inspections",
]


@pytest.fixture(autouse=True)
def vectors_too_many_for_memory(monkeypatch):
    monkeypatch.setattr("kb.replica.reads.EXACT_BYTES", 0)


def _where(filters, viewer, extra=()):
    """The clause a search with these filters, by this viewer, runs under: the filters and the access rule."""
    return Scope(filters or Filters(), viewer).where(extra)


def _ids(results):
    return [[m.passage_id for m in matches] for matches in results]


def _assert_same_ranking(got, expected, k, tolerance=1e-6):
    """The same passages in the same order with the same similarities, except that passages whose
    similarities differ by float rounding alone (ties) may come in either order, and a tie at the
    cut-off may keep either of them."""
    assert len(got) == len(expected)
    for mine, theirs in zip(got, expected, strict=True):
        assert [m.similarity for m in mine] == pytest.approx([m.similarity for m in theirs], abs=tolerance)
        breaks = [i + 1 for i in range(len(theirs) - 1) if theirs[i].similarity - theirs[i + 1].similarity > tolerance]
        runs = list(zip([0, *breaks], [*breaks, len(theirs)], strict=True))
        if len(theirs) == k:
            runs = runs[:-1]  # the last tie may continue past the cut-off
        for start, end in runs:
            assert {m.passage_id for m in mine[start:end]} == {m.passage_id for m in theirs[start:end]}


@pytest.mark.parametrize(
    "filters, viewer",
    [
        (None, ANONYMOUS),  # most entries allowed: answered from the wider unfiltered query
        (None, member_of("Revenue and Customs Office")),
        (Filters.of(outcome="failed"), ANONYMOUS),
        (Filters.of(theme="data-quality", kind="experiment"), member_of("Home Affairs Department")),  # narrow
    ],
)
@pytest.mark.parametrize("in_memory", [True, False])
def test_nearest_passages_match_chromas_filtered_query(kb, fake_embedder, monkeypatch, filters, viewer, in_memory):
    if in_memory:
        monkeypatch.setattr("kb.replica.reads.EXACT_BYTES", 1 << 30)
    where = _where(filters, viewer)
    vectors = fake_embedder.embed(QUERIES)
    for k in (5, 20):
        expected = kb.index.query(vectors, k, where)
        _assert_same_ranking(kb.retriever.nearest.find(vectors, k, where, entries_where=where), expected, k)


def _recording(kb, monkeypatch):
    calls = []
    query = kb.index.query
    monkeypatch.setattr(
        kb.index,
        "query",
        lambda v, k, w=None, ids=None, **light: calls.append((k, w, ids)) or query(v, k, w, ids, **light),
    )
    return calls


@pytest.mark.parametrize(
    "filters, viewer",
    [(None, None), (None, ANONYMOUS), (Filters.of(outcome="failed"), member_of("Home Affairs Department"))],
)
def test_vectors_that_fit_in_memory_are_searched_there_exactly_without_asking_chroma(
    kb, fake_embedder, monkeypatch, filters, viewer
):
    monkeypatch.setattr("kb.replica.reads.EXACT_BYTES", 1 << 30)
    where = _where(filters, viewer)
    kb.search("warm up", viewer=ANONYMOUS)
    vectors = fake_embedder.embed(QUERIES)
    keep = lambda m: m.section == "Evidence and links"  # noqa: E731 -- as `similar` turns down sections
    expected = [[m for m in r if keep(m)][:5] for r in kb.index.query(vectors, 2000, where)]
    calls = _recording(kb, monkeypatch)
    got = kb.retriever.nearest.find(vectors, 5, where, entries_where=where, keep=keep)
    plain = kb.retriever.nearest.find(vectors, 10, where, entries_where=where)
    assert calls == [], "Chroma is not asked"
    _assert_same_ranking(got, expected, 5)
    _assert_same_ranking(plain, kb.index.query(vectors, 10, where), 10)
    assert all(m.text and m.section for r in got + plain for m in r), "text and section filled in"


def test_a_narrow_filter_is_searched_exactly_over_the_local_copy_of_its_vectors(kb, fake_embedder, monkeypatch):
    where = _where(Filters.of(theme="data-quality", outcome="failed"), ANONYMOUS)
    kb.search("warm up", viewer=ANONYMOUS)  # the entry mirror is current after a search
    assert kb.replica.has_vectors
    vectors = fake_embedder.embed(QUERIES)
    expected = kb.index.query(vectors, 10, where)
    calls = _recording(kb, monkeypatch)
    got = kb.retriever.nearest.find(vectors, 10, where, entries_where=where)
    assert calls == [], "Chroma is not asked"
    _assert_same_ranking(got, expected, 10)
    filled = {m.passage_id: (m.entry_id, m.section, m.text) for r in got for m in r}
    assert filled == {
        m.passage_id: (m.entry_id, m.section, m.text) for r in expected for m in r if m.passage_id in filled
    }


def test_a_narrow_filter_whose_passage_test_turns_down_most_neighbours_is_still_answered_locally(
    kb, fake_embedder, monkeypatch
):
    entries_where = _where(Filters.of(theme="data-quality"), ANONYMOUS)  # more passages than the first fetch
    where = {"$and": [entries_where, {"section": {"$in": ["Evidence and links"]}}]}  # about one passage an entry
    kb.search("warm up", viewer=ANONYMOUS)
    chosen = kb.mirror.narrow_choice(entries_where).passages
    assert chosen > 20 * OVERFETCH
    vectors = fake_embedder.embed(QUERIES)
    expected = kb.index.query(vectors, 20, where)
    calls, fetched = _recording(kb, monkeypatch), []
    nearest = kb.replica.nearest  # the exact search over the local copy of the vectors
    monkeypatch.setattr(kb.replica, "nearest", lambda v, ids, k, **o: fetched.append(k) or nearest(v, ids, k, **o))
    got = kb.retriever.nearest.find(
        vectors, 20, where, entries_where=entries_where, keep=lambda m: m.section == "Evidence and links"
    )
    assert calls == [], "neither Chroma's filter nor its graph"
    assert fetched == [20 * OVERFETCH, chosen], "the nearest first, then every chosen passage"
    _assert_same_ranking(got, expected, 20)


def _keep_without_vectors(replica):
    """Write the replica's folder again with its passages and entry records but no vectors, as a folder
    kept without them, still mirroring the same index."""
    table = replica.table()
    with replica.additions() as added:
        added.add_passages(
            (passage_id, PassageId.entry_of(passage_id), section, text)
            for passage_id, section, text in replica.passages()
        )
        added.add_records({entry_id: table.record(position) for entry_id, position in table.position.items()})
        replica.rebuild(added, dict(replica.hashes), replica.generation)


def test_without_a_local_copy_of_the_vectors_chroma_searches_among_the_narrow_filters_ids(
    kb, fake_embedder, monkeypatch
):
    where = _where(Filters.of(theme="data-quality", outcome="failed"), ANONYMOUS)
    kb.search("warm up", viewer=ANONYMOUS)
    _keep_without_vectors(kb.replica)
    assert not kb.replica.has_vectors
    calls = _recording(kb, monkeypatch)
    vectors = fake_embedder.embed(QUERIES[:1])
    got = kb.retriever.nearest.find(vectors, 10, where, entries_where=where)
    ((k, clause, ids),) = calls
    assert k == 10 and clause is None, "no Chroma where clause"
    allowed = kb.index.entry_ids(where)
    assert ids and {i.split("#")[0] for i in ids} == allowed
    _assert_same_ranking(got, kb.index.query(vectors, 10, where), 10)


def test_a_broad_filter_asks_for_more_neighbours_without_the_clause(kb, fake_embedder, monkeypatch):
    where = _where(None, ANONYMOUS)
    monkeypatch.setattr("kb.mirror.NARROW_PASSAGES", 10)  # too many passages for the exact path
    kb.search("warm up", viewer=ANONYMOUS)
    calls = _recording(kb, monkeypatch)
    kb.retriever.nearest.find(fake_embedder.embed(QUERIES[:1]), 10, where, entries_where=where)
    assert calls == [(10 * OVERFETCH, None, None)]


def test_when_too_few_neighbours_are_allowed_a_deeper_walk_answers_before_chromas_filter(
    kb, fake_embedder, monkeypatch
):
    where = _where(Filters.of(theme="data-quality", kind="experiment"), member_of("Home Affairs Department"))
    monkeypatch.setattr("kb.mirror.NARROW_PASSAGES", 10)  # force the broad path on a narrow filter
    kb.search("warm up", viewer=ANONYMOUS)
    vectors = fake_embedder.embed(QUERIES)
    expected = kb.index.query(vectors, 20, where)
    calls = _recording(kb, monkeypatch)
    got = kb.retriever.nearest.find(vectors, 20, where, entries_where=where)
    assert calls == [(20 * OVERFETCH, None, None), (20 * OVERFETCH * DEEPER_FETCH, None, None)], "never the clause"
    _assert_same_ranking(got, expected, 20)


def test_a_filter_allowing_most_passages_takes_the_broad_path_even_when_they_are_few(kb, fake_embedder, monkeypatch):
    where = _where(None, ANONYMOUS)
    kb.search("warm up", viewer=ANONYMOUS)  # the entry mirror is current after a search
    table = kb.mirror.table()
    allowed = table.column("passages")[table.select(where)].sum()
    assert allowed <= 50_000 and allowed > 0.5 * table.column("passages").sum()
    calls = _recording(kb, monkeypatch)
    kb.retriever.nearest.find(fake_embedder.embed(QUERIES[:1]), 10, where, entries_where=where)
    assert calls == [(10 * OVERFETCH, None, None)]


def test_without_a_current_mirror_chroma_answers_the_clause(kb, fake_embedder, monkeypatch):
    where = _where(Filters.of(outcome="failed"), ANONYMOUS)
    monkeypatch.setattr("kb.mirror.NARROW_PASSAGES", 10)
    monkeypatch.setattr(kb.replica, "generation", None)  # as if another process changed the index
    monkeypatch.setattr(kb.mirror, "refresh", lambda: None)
    kb.mirror.version += 1  # a new snapshot: no clause kept from before
    vectors = fake_embedder.embed(QUERIES)
    assert _ids(kb.retriever.nearest.find(vectors, 20, where, entries_where=where)) == _ids(
        kb.index.query(vectors, 20, where)
    )


def test_similar_projects_match_the_filtered_query_too(kb):
    entry_id = sorted(kb.index.entry_ids())[3]
    viewer = member_of("Revenue and Customs Office")
    hits = kb.similar(entry_id, limit=8, viewer=viewer)
    passages, vectors = kb.index.passages(entry_id)
    keep = [i for i, p in enumerate(passages) if p.section != "Evidence and links"]
    where = _where(None, viewer, [{"entry_id": {"$ne": entry_id}}, {"section": {"$nin": ["Evidence and links"]}}])
    best: dict[str, float] = {}
    for matches in kb.index.query(vectors[keep], 80, where):
        for m in matches:
            best[m.entry_id] = max(best.get(m.entry_id, -1.0), m.similarity)
    expected = [e for e, _ in sorted(best.items(), key=lambda kv: (-kv[1], kv[0]))[:8]]
    assert [h.id for h in hits] == expected
    assert entry_id not in expected


def test_a_visibility_change_reaches_the_next_search_at_once(kb):
    outsider = member_of("Home Affairs Department")
    hit = kb.search("data sharing agreement", mode="bm25", viewer=outsider)[0]
    entry = kb.get(hit.id)
    entry.visibility, entry.organisation, entry.partners = "organisation", "Somewhere Else", []
    kb.save(entry)
    for mode in ("bm25", "dense", "hybrid"):
        assert hit.id not in {h.id for h in kb.search("data sharing agreement", mode=mode, limit=50, viewer=outsider)}


def test_quoted_phrases_match_whole_words_only(settings, fake_embedder, entries_dir):
    (entries_dir / "pyro.md").write_text(
        "---\nid: pyro\ntitle: Pyrotechnic bolts\nsummary: The pyrotechnic bolts fired early.\n"
        "kind: project\noutcome: failed\norganisation: Test Office\nstatus: published\nvisibility: public\n---\n"
        "## Lessons\n\nTest the pyrotechnic bolts at temperature.\n"
    )
    base = KnowledgeBase(settings, embedder=fake_embedder)
    base.sync()
    for mode in ("bm25", "dense", "hybrid"):
        assert "pyro" in {h.id for h in base.search('"pyrotechnic bolts"', mode=mode, limit=50)}
        assert "pyro" in {h.id for h in base.search('"Pyrotechnic   BOLTS"', mode=mode, limit=50)}
        assert "pyro" not in {h.id for h in base.search('"pyro"', mode=mode, limit=50)}, "part of a word"
        assert "pyro" not in {h.id for h in base.search('"bolts pyrotechnic"', mode=mode, limit=50)}, "order"
    assert base.search('"zyxxy nonexistent"', mode="bm25") == []


def test_a_quoted_phrase_is_answered_from_word_positions_without_reading_a_text(kb, monkeypatch):
    from kb.analysis import contains_phrases
    from kb.replica.corpus import Corpus

    lexical = kb.replica
    texts = {passage_id: text for passage_id, _, text in lexical.passages()}
    phrases = ["data sharing agreement"]
    expected = sorted(p for p, t in texts.items() if contains_phrases(t, phrases))
    assert 0 < len(expected) < lexical.passage_count

    def no_reading(*args, **kwargs):
        raise AssertionError("a phrase must not read passage texts")

    monkeypatch.setattr(Corpus, "_reader", no_reading)
    monkeypatch.setattr(Corpus, "raw", no_reading)
    assert sorted(lexical.holding(phrases)) == expected


def test_the_entry_table_answers_every_clause_as_chroma_does(kb):
    from kb.identity import User

    kb.search("warm up", viewer=ANONYMOUS)
    table = kb.replica.table()
    viewers = [
        None,
        ANONYMOUS,
        member_of("Revenue and Customs Office"),
        User("Ewan Fraser", "Ministry of Housing and Places", ("contributor",), local=False),
        User("Rev", "", ("reviewer",), local=False),
    ]
    filters = [
        None,
        Filters.of(outcome="failed"),
        Filters.of(kind=["experiment", "project"], theme=["data-quality", "user-research"]),
        Filters.of(year_from=2019, year_to=2021),
        Filters.of(lighthouse=True),
        Filters.of(evidence="measured", status="published"),
    ]
    for viewer in viewers:
        for f in filters:
            where = _where(f, viewer)
            assert table.ids_where(where) == kb.index.entry_ids(where), (viewer, f)


def test_a_change_by_another_process_reaches_the_very_next_search(kb, settings, fake_embedder):
    outsider = member_of("Home Affairs Department")
    hit = kb.search("data sharing agreement", viewer=outsider)[0]
    other = KnowledgeBase(settings, embedder=fake_embedder)  # another app replica or a CLI command
    entry = other.get(hit.id)
    entry.visibility, entry.organisation, entry.partners = "organisation", "Somewhere Else", []
    other.save(entry)
    for mode in ("bm25", "dense", "hybrid"):
        assert hit.id not in {h.id for h in kb.search("data sharing agreement", mode=mode, limit=50, viewer=outsider)}
    assert kb.stats(viewer=outsider)["entries"] == other.stats(viewer=outsider)["entries"]


def test_light_queries_fill_text_and_section_as_chroma_stores_them(kb, fake_embedder, monkeypatch):
    kb.search("warm up", viewer=ANONYMOUS)
    vectors = fake_embedder.embed(QUERIES)
    full = kb.index.query(vectors, 40)
    asked = []
    query = kb.index.query
    monkeypatch.setattr(kb.index, "query", lambda *a, **k: asked.append(k.get("light")) or query(*a, **k))
    light = kb.retriever.nearest.find(vectors, 40, None)
    assert asked == [True], "Chroma gives ids and distances only"
    assert kb.mirror.table() is not None
    assert [[(m.passage_id, m.entry_id, m.section, m.text) for m in r] for r in light] == [
        [(m.passage_id, m.entry_id, m.section, m.text) for m in r] for r in full
    ]


def test_an_entrys_own_passages_come_from_the_local_copy_as_chroma_stores_them(kb, monkeypatch):
    """`similar` starts from the entry's own passages, their sections, texts and vectors: read from the
    local copy, they give what Chroma's give, and Chroma is not asked for them."""
    import numpy as np

    def linked(hits):
        return [(h.id, h.source_section, h.source_passage, h.section, h.passage, h.shared_themes) for h in hits]

    kb.search("warm up", viewer=ANONYMOUS)
    some = sorted(kb.index.entry_ids())[::7]
    for entry_id in some:  # the copy holds each passage as Chroma stores it
        stored, stored_vectors = kb.index.passages(entry_id)
        held = kb.replica.entry_passages(entry_id)
        assert [(p.passage_id, p.entry_id, p.section, p.text) for p in stored] == [
            (i, entry_id, section, t) for i, section, t in zip(held.ids, held.sections, held.texts, strict=True)
        ]
        np.testing.assert_allclose(held.vectors, stored_vectors, atol=1e-6)  # Chroma rounds to within a unit or two
    calls = []
    passages = kb.index.passages
    with monkeypatch.context() as from_chroma:
        from_chroma.setattr(kb.replica, "entry_passages", lambda entry_id: None)  # as when the copy lacks them
        from_chroma.setattr(kb.index, "passages", lambda *a, **k: calls.append(a) or passages(*a, **k))
        expected = {entry_id: kb.similar(entry_id, limit=8) for entry_id in some}
    assert len(calls) == len(some), "the entries' own passages came from Chroma"
    calls.clear()
    monkeypatch.setattr(kb.index, "passages", lambda *a, **k: calls.append(a) or ([], np.zeros((0, 0))))
    for entry_id in some:
        hits = kb.similar(entry_id, limit=8)
        assert linked(hits) == linked(expected[entry_id]), entry_id
        # Chroma rounds the vectors it stores to within a unit or two
        assert [h.score for h in hits] == pytest.approx([h.score for h in expected[entry_id]], abs=1e-5)
    assert calls == [], "Chroma is not asked"


def test_hybrid_search_runs_its_sides_in_turn_in_memory_and_at_once_over_chroma(kb, fake_embedder, monkeypatch):
    """Over vectors held in memory the model runs on the caller's thread (each side is a millisecond of
    Python, which a second thread would only make wait for the GIL); over Chroma, beside the keyword side.
    The hits are the same either way."""
    threads: list[str] = []
    embed = fake_embedder.embed
    monkeypatch.setattr(
        fake_embedder, "embed", lambda texts: threads.append(threading.current_thread().name) or embed(texts)
    )
    viewer = member_of("Revenue and Customs Office")
    answers = {}
    for in_memory in (True, False):
        monkeypatch.setattr("kb.replica.reads.EXACT_BYTES", (1 << 30) if in_memory else 0)
        threads.clear()
        answers[in_memory] = [kb.search(q, viewer=viewer) for q in QUERIES]
        on_caller = [name == threading.current_thread().name for name in threads]
        assert on_caller == [in_memory] * len(QUERIES)
    for in_turn, at_once in zip(answers[True], answers[False], strict=True):
        assert in_turn and [h.id for h in in_turn] == [h.id for h in at_once]
        assert [h.score for h in in_turn] == pytest.approx([h.score for h in at_once], abs=1e-5)  # Chroma's float32


@pytest.mark.parametrize("mode", MODES)
def test_a_search_ranks_the_same_pooled_by_row_as_pooled_from_matches(kb, monkeypatch, mode):
    """Held in memory, both sides' passages are pooled by their rows, and ids and texts are spelled only
    where the ranking looks; where the replica cannot pool them, the pool is made of the two sides'
    matches. Every hit is the same, with and without filters, access rules, synonyms and quoted phrases,
    and after a save has put an entry in a second segment."""
    monkeypatch.setattr("kb.replica.reads.EXACT_BYTES", 1 << 30)
    entry = kb.store.get("flood-response-data-cell")
    entry.summary = "Sandbags carried barcodes, scanned at each depot: data sharing agreement signed."
    kb.save(entry)
    assert kb.replica.segments == ["base", "delta"]
    searches = [
        dict(),
        dict(viewer=member_of("Revenue and Customs Office")),
        dict(filters=Filters.of(outcome=["failed", "partial"]), viewer=ANONYMOUS),
        dict(limit=3, expand=False),
    ]
    queries = [*QUERIES, "DSA", "sandbags depot agreement", '"data sharing" agreement', '"scanned at each depot"']
    pooled = []
    by_row = [kb.search(q, mode=mode, **search) for q in queries for search in searches]
    monkeypatch.setattr(type(kb.replica), "sides", lambda *args, **kwargs: pooled.append(args) and None)
    from_matches = [kb.search(q, mode=mode, **search) for q in queries for search in searches]
    assert len(pooled) == len(from_matches), "the replica was asked, and could not pool"
    assert any(hit.id == entry.id for hits in by_row for hit in hits), "the saved entry is found"
    assert by_row == from_matches
