"""The knowledge base: incremental sync, search with filters inside the query, similar projects."""

from __future__ import annotations

import os
import shutil

import numpy as np
import pytest

from kb import Entry, Filters, KBError, KnowledgeBase, NotFound, Settings
from kb.embedder import HashingEmbedder
from kb.errors import IndexMissing


def passages_collection(kb: KnowledgeBase):
    """Chroma's collection of the index's passages, as the index's client gives it."""
    return kb.index.client.get_collection(kb.index.collection_names[0], embedding_function=None)


def count_embeds(kb: KnowledgeBase) -> list[int]:
    calls: list[int] = []
    original = kb.embedder.embed

    def counting(texts):
        calls.append(len(texts))
        return original(texts)

    kb.embedder.embed = counting
    return calls


def test_sync_embeds_only_what_changed_and_removes_deleted(kb, entries_dir):
    calls = count_embeds(kb)
    again = kb.sync()
    assert not again.changed and again.unchanged >= 40 and calls == []

    path = entries_dir / "flood-response-data-cell.md"
    path.write_text(path.read_text().replace("## Lessons", "## Lessons\n\nSandbags need barcodes."))
    (entries_dir / "open-data-portal-relaunch-low-usage.md").unlink()
    report = kb.sync()
    assert report.updated == ["flood-response-data-cell"]
    assert report.removed == ["open-data-portal-relaunch-low-usage"] and report.added == []
    # The changed entry's passages were all written; only the one whose text changed was embedded.
    assert report.passages == len(kb.mirror.replica.entry_passages("flood-response-data-cell").ids) > 1
    assert sum(calls) == 1 and report.embedded == 1
    assert f"({report.passages} passages indexed, 1 embedded)" in report.summary()

    # A deleted entry is gone from both retrievers: no stale hits.
    for mode in ("bm25", "dense", "hybrid"):
        hits = kb.search("open data portal relaunch low usage", limit=50, mode=mode)
        assert "open-data-portal-relaunch-low-usage" not in {h.id for h in hits}
    assert kb.search("sandbags barcodes", mode="bm25")[0].id == "flood-response-data-cell"


def test_a_new_index_format_indexes_every_entry_again_without_embedding(kb, monkeypatch):
    """An upgrade that stores a new field indexes every entry again at the next sync; their texts did not
    change, so neither do their vectors, and at 100,000 entries it costs no hours of embedding."""
    from kb import indexer

    monkeypatch.setattr(indexer, "INDEX_FORMAT", "next")
    calls = count_embeds(kb)
    report = kb.sync()
    assert len(report.updated) >= 40 and not report.added and not report.rebuilt
    assert report.passages > len(report.updated) and report.embedded == 0 and calls == []
    assert not kb.sync().changed


def test_an_unchanged_sync_reads_no_collection_through_chroma(kb, settings, fake_embedder, monkeypatch):
    """Its checks read the store's files and compare every vector with the copy; a read through Chroma
    would make it load each collection's whole graph (at 100,000 entries, seconds and a gigabyte)."""
    from chromadb.api.models.Collection import Collection

    reads: list[str] = []
    for method in ("get", "count", "query", "peek"):
        original = getattr(Collection, method)
        monkeypatch.setattr(
            Collection,
            method,
            lambda self, *a, _name=method, _original=original, **k: reads.append(_name) or _original(self, *a, **k),
        )
    fresh = KnowledgeBase(settings, embedder=fake_embedder)  # a new process's view: nothing verified yet
    assert not fresh.sync().changed
    assert reads == []
    assert fresh.search("data sharing agreement", mode="dense"), "and the index still answers"


def test_invalid_file_is_reported_and_the_rest_indexed(settings, fake_embedder, entries_dir):
    shutil.rmtree(settings.index_dir)  # a first sync: nothing is indexed yet
    (entries_dir / "broken.md").write_text("---\nid: broken\ntitle: [\n---\n")
    report = KnowledgeBase(settings, embedder=fake_embedder).sync()
    assert any(p.source == "broken.md" for p in report.problems)
    assert len(report.added) == len(list(entries_dir.glob("*.md"))) - 2  # minus README and broken


def test_rebuild_and_model_change_never_mix_vectors(kb, settings):
    assert kb.sync(rebuild=True).rebuilt
    other = KnowledgeBase(settings, embedder=HashingEmbedder(dimension=64, name="another-model"))
    with pytest.raises(KBError, match="built with model 'hashing-bow'"):
        other.search("data sharing", mode="dense")
    report = other.sync()
    assert report.rebuilt and len(report.added) >= 40
    assert other.index.count()[0] == len(report.added)


def test_a_model_change_rebuilds_the_keyword_index_too(kb, settings):
    """The same entries under another model (other vectors, other passage lengths): the keyword index's
    copy follows, so a new process finds it in step rather than reporting the index damaged."""
    other = KnowledgeBase(settings, embedder=HashingEmbedder(dimension=64, name="another-model", max_tokens=40))
    report = other.sync()
    assert report.rebuilt
    assert other.replica.passage_count == report.passages
    again = KnowledgeBase(settings, embedder=HashingEmbedder(dimension=64, name="another-model", max_tokens=40))
    assert again.search("data sharing agreement", limit=3), "no IndexDamaged: the copy matches the store"
    own = again.replica.entry_passages("flood-response-data-cell")
    assert own is not None and own.vectors.shape[1] == 64


def test_filters_apply_inside_the_query_not_after_the_top_k(kb):
    # The best matches for this query are not lighthouses, so a post-filter on the top 3 would return none.
    assert not any(h.lighthouse_stage for h in kb.search("mainframe pension award council", limit=3))
    hits = kb.search("mainframe pension award council", limit=3, filters=Filters.of(lighthouse=True))
    assert len(hits) == 3 and all(h.lighthouse_stage for h in hits)
    failed = kb.search("data", limit=50, filters=Filters.of(outcome=["failed", "stopped"], kind="experiment"))
    assert failed and all(h.outcome in ("failed", "stopped") and h.kind == "experiment" for h in failed)
    themed = kb.search("data", limit=50, filters=Filters.of(theme="reproducible-analysis", year_from=2019))
    assert themed and all("reproducible-analysis" in h.themes and h.year >= 2019 for h in themed)
    assert kb.search("data", filters=Filters.of(organisation="No Such Org")) == []


@pytest.mark.parametrize("mode", ["bm25", "dense", "hybrid"])
def test_each_mode_finds_an_entry_by_its_own_words(kb, mode):
    hits = kb.search("mainframe pension award council", mode=mode, limit=3)
    assert hits[0].id == "mainframe-blocked-pension-data-share"
    assert hits[0].passage and hits[0].title and hits[0].organisation


def test_quoted_phrase_must_appear(kb):
    hits = kb.search('"data sharing agreement"', limit=50)
    assert hits
    for hit in hits:
        text = " ".join(kb.get(hit.id).text().lower().split())
        assert "data sharing agreement" in text


def test_similar_projects_never_include_the_entry_itself(kb):
    hits = kb.similar("benefits-and-housing-data-sharing-pilot", limit=5)
    assert len(hits) == 5 and "benefits-and-housing-data-sharing-pilot" not in {h.id for h in hits}
    assert all(h.passage and h.source_passage for h in hits)
    # where the evidence is kept is never the reason two entries are similar
    assert all("Evidence and links" not in (h.section, h.source_section) for h in hits)
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    with pytest.raises(NotFound):
        kb.similar("no-such-entry")


def test_save_new_entry_is_searchable_at_once_and_gets_a_free_id(kb):
    entry = Entry(
        id="",
        title="Benefits and housing data-sharing pilot between two departments",
        summary="Zebra crossings counted by volunteers.",
        kind="experiment",
        outcome="partial",
        organisation="Northfield City Council",
        status="published",
        themes=["DSA"],
    )
    saved = kb.save(entry, new=True)
    assert saved.id == "benefits-and-housing-data-sharing-pilot-between-two-departments"
    assert saved.themes == ["data-sharing-agreements"]
    assert kb.search("zebra crossings volunteers", limit=1)[0].id == saved.id
    assert kb.store.get(saved.id).summary == entry.summary


def test_a_save_writes_only_a_small_delta_and_a_sync_merges_it(kb):
    replica = kb.replica
    entry = kb.store.get("flood-response-data-cell")
    entry.summary = "Sandbags carried barcodes, scanned at each depot."
    kb.save(entry)
    assert replica.segments == ["base", "delta"]
    delta_records = (replica.folder / "delta" / "entries.jsonl").read_text().splitlines()
    assert [line.split('"')[3] for line in delta_records] == ["flood-response-data-cell"], "one entry rewritten"
    assert kb.search('"scanned at each depot"', limit=1)[0].id == "flood-response-data-cell"
    report = kb.sync()
    assert not report.changed and kb.replica.segments == ["base"], "a sync merges the segments"
    assert kb.search('"scanned at each depot"', limit=1)[0].id == "flood-response-data-cell"
    assert len(kb.replica.table()) == len(kb.store.files())


def test_a_save_whose_indexing_fails_is_still_one_saved_entry_that_the_next_sync_indexes(kb, monkeypatch):
    from kb import SavedNotIndexed

    entry = Entry(
        id="",
        title="Parking permits go digital",
        summary="Quokka permits issued online.",
        kind="project",
        outcome="succeeded",
        organisation="Northfield City Council",
        status="published",
    )
    before = {p.stem for p in kb.store.files()}
    with monkeypatch.context() as patched:
        patched.setattr(kb, "index_entries", lambda ids: (_ for _ in ()).throw(RuntimeError("the index is busy")))
        with pytest.raises(SavedNotIndexed) as raised:
            kb.save(entry, new=True)
    assert raised.value.entry_id == "parking-permits-go-digital"
    assert "the index is busy" in str(raised.value) and "no need to save it again" in str(raised.value)
    assert {p.stem for p in kb.store.files()} - before == {"parking-permits-go-digital"}, "written once, kept"
    assert kb.search("quokka", mode="bm25") == [], "not indexed yet"
    assert kb.sync().added == ["parking-permits-go-digital"]
    assert kb.search("quokka permits", limit=1)[0].id == "parking-permits-go-digital"


def test_keyword_index_is_rebuilt_when_missing(kb, settings, fake_embedder):
    shutil.rmtree(kb.replica.folder)
    fresh = KnowledgeBase(settings, embedder=fake_embedder)
    assert fresh.search("mainframe pension", mode="bm25")[0].id == "mainframe-blocked-pension-data-share"
    # with the passages' vectors, read back from the vector index as they are stored there
    passages, stored = kb.index.passages("mainframe-blocked-pension-data-share")
    assert fresh.replica.has_vectors
    ((best, *_),) = fresh.replica.nearest(stored[1:2], ["mainframe-blocked-pension-data-share"], 3)
    assert best.passage_id == passages[1].passage_id and best.similarity == pytest.approx(1.0)


def test_a_sync_keeps_a_copy_of_each_passages_vector_beside_the_keyword_index(kb):
    some = sorted(kb.index.entry_ids())[:5]
    for entry_id in some:
        passages, stored = kb.index.passages(entry_id)
        found = kb.replica.nearest(stored, [entry_id], len(passages))
        assert [r[0].passage_id for r in found] == [p.passage_id for p in passages]
        assert np.allclose([r[0].similarity for r in found], 1.0, atol=1e-6)


def test_empty_knowledge_base(settings, fake_embedder, tmp_path):
    (tmp_path / "empty").mkdir()
    empty = KnowledgeBase(Settings(entries_dir=tmp_path / "empty", index_dir=tmp_path / "i2"), embedder=fake_embedder)
    with pytest.raises(IndexMissing, match="no index yet .*python -m kb sync"):  # never synced: not "no results"
        empty.search("anything")
    assert not empty.sync().changed
    assert empty.search("anything") == [] and empty.stats()["entries"] == 0


def test_a_missing_or_plain_file_entries_folder_is_refused(fake_embedder, tmp_path):
    """Checking or syncing nothing must not pass: a sync of a mistyped folder would empty the index."""
    (tmp_path / "a-file").write_text("not a folder")
    for folder, words in ((tmp_path / "none", "does not exist"), (tmp_path / "a-file", "is a file")):
        base = KnowledgeBase(Settings(entries_dir=folder, index_dir=tmp_path / "index"), embedder=fake_embedder)
        for operation in (base.check, base.sync):
            with pytest.raises(KBError, match=words):
                operation()


def test_stats_count_facets(kb):
    stats = kb.stats()
    assert stats["entries"] >= 40 and stats["lighthouses"] >= 6
    assert sum(stats["by"]["outcome"].values()) == stats["entries"]


def test_a_long_running_process_sees_changes_made_by_another(kb, settings, fake_embedder, entries_dir, monkeypatch):

    app = KnowledgeBase(settings, embedder=fake_embedder)  # e.g. the web app, already serving
    assert app.search("okapi gritting", mode="bm25") == []
    (entries_dir / "okapi.md").write_text(
        "---\nid: okapi\ntitle: Okapi gritting rota\nsummary: Okapi gritting for parishes.\nkind: project\n"
        "outcome: succeeded\norganisation: Parish Trust\nstatus: published\nvisibility: public\n---\n"
    )
    kb.sync()  # e.g. `python -m kb sync` in another process
    assert [h.id for h in app.search("okapi gritting", mode="bm25")] == ["okapi"]
    (entries_dir / "okapi.md").unlink()
    kb.sync()
    assert app.search("okapi gritting", mode="bm25") == []


def test_a_damaged_index_is_detected_and_rebuilt_by_sync(kb, settings, fake_embedder):
    from kb.chroma_client import clear_client_cache

    clear_client_cache()
    (settings.index_dir / "chroma" / "chroma.sqlite3").write_bytes(b"this is not a database")
    broken = KnowledgeBase(settings, embedder=fake_embedder)
    with pytest.raises(KBError, match="damaged.*python -m kb sync"):
        broken.search("mainframe pension", mode="dense")
    report = KnowledgeBase(settings, embedder=fake_embedder).sync()
    assert report.rebuilt and any("rebuilt from the entry files" in str(p) for p in report.problems)
    assert len(report.added) >= 40
    again = KnowledgeBase(settings, embedder=fake_embedder)
    assert again.search("mainframe pension award council", limit=1)[0].id == "mainframe-blocked-pension-data-share"


def test_a_missing_index_folder_is_rebuilt_by_sync(kb, settings, fake_embedder):
    import shutil

    from kb.chroma_client import clear_client_cache

    clear_client_cache()
    shutil.rmtree(settings.index_dir)
    report = KnowledgeBase(settings, embedder=fake_embedder).sync()
    assert len(report.added) >= 40


def test_an_index_made_with_the_old_search_breadth_is_raised_to_the_current_one(kb, settings, monkeypatch):
    from kb.chroma_client import clear_client_cache
    from kb.vector_index import EF_SEARCH

    passages = passages_collection(kb)
    assert passages.configuration["hnsw"]["ef_search"] == EF_SEARCH
    passages.modify(configuration={"hnsw": {"ef_search": 200}})  # as an index built before the change
    clear_client_cache()
    monkeypatch.setattr("kb.replica.reads.EXACT_BYTES", 0)  # too many vectors to hold: Chroma searches them
    reopened = KnowledgeBase(settings, embedder=kb.embedder)
    reopened.search("data sharing", mode="dense")
    clear_client_cache()
    again = KnowledgeBase(settings, embedder=kb.embedder)
    assert passages_collection(again).configuration["hnsw"]["ef_search"] == EF_SEARCH


class CountingEmbedder(HashingEmbedder):
    """The fake embedder, noting every text it is asked to embed."""

    def __init__(self) -> None:
        super().__init__()
        self.texts: list[str] = []

    def embed(self, texts: list[str]) -> np.ndarray:
        self.texts += texts
        return super().embed(texts)


def test_a_save_embeds_only_the_passages_whose_text_changed(settings):
    counting = CountingEmbedder()
    base = KnowledgeBase(settings, embedder=counting)
    base.sync()
    entry = base.get("address-data-quality-scorecard-abandoned")
    section = next(iter(entry.sections))
    entry.sections[section] += " A closing sentence added on review."
    counting.texts.clear()
    base.save(entry)
    assert counting.texts and all(f"— {section}" in text.split("\n")[0] for text in counting.texts), counting.texts
    held = base.mirror.replica.entry_passages(entry.id)
    assert any(t.endswith("A closing sentence added on review.") for t in held.texts)
    assert np.allclose(held.vectors, HashingEmbedder().embed(held.texts), atol=1e-6), "kept vectors are the texts' own"
    assert base.similar(entry.id, limit=3), "the entry is still found by its vectors"

    entry.title += " (revised)"  # every passage starts with the title: all are new texts
    counting.texts.clear()
    base.save(entry)
    assert sorted(counting.texts) == sorted(base.mirror.replica.entry_passages(entry.id).texts)


def test_a_replica_behind_the_store_lends_no_vectors(settings, monkeypatch):
    counting = CountingEmbedder()
    base = KnowledgeBase(settings, embedder=counting)
    base.sync()
    entry = base.get("address-data-quality-scorecard-abandoned")
    entry.summary += " One more line."
    monkeypatch.setattr(type(base.mirror.replica), "mirrors", lambda self, generation: False)
    counting.texts.clear()
    base.save(entry)
    assert len(counting.texts) == len(base.mirror.replica.entry_passages(entry.id).texts)


def test_a_replica_behind_the_index_fetches_only_the_entries_that_changed(kb, settings, fake_embedder, monkeypatch):
    """Another replica's save: this one's folder is behind the index by one entry. It catches up by
    reading that entry's passages and record from the index, not every passage of the collection."""
    from kb.mirror import Mirror
    from kb.vector_index import VectorIndex

    folder = kb.mirror.folder
    stale = folder.with_name("stale-copy")
    shutil.copytree(folder, stale)
    entry = kb.get("flood-response-data-cell")
    entry.summary += " Sandbags were barcoded in the second winter."
    kb.save(entry)
    shutil.rmtree(folder)
    shutil.copytree(stale, folder)  # this machine's copy, as it was before the other replica's save

    reads = []
    every_page = VectorIndex.passage_pages

    def counted(self, vectors=False, where=None):
        reads.append(where)
        return every_page(self, vectors, where)

    monkeypatch.setattr(VectorIndex, "passage_pages", counted)
    other = KnowledgeBase(settings, embedder=fake_embedder)
    assert other.search("sandbags barcoded second winter", mode="bm25")[0].id == "flood-response-data-cell"
    assert reads == [{"entry_id": {"$in": ["flood-response-data-cell"]}}], "only the changed entry was read"
    assert other.mirror.replica.segments == ["base", "delta"]
    assert other.mirror.replica.is_current(Mirror(other.parts).ledger()[0])


def test_a_replica_behind_a_removal_drops_the_entry_without_reading_the_collection(
    kb, settings, fake_embedder, entries_dir, monkeypatch
):
    from kb.vector_index import VectorIndex

    folder = kb.mirror.folder
    stale = folder.with_name("stale-copy")
    shutil.copytree(folder, stale)
    (entries_dir / "open-data-portal-relaunch-low-usage.md").unlink()
    assert kb.sync().removed == ["open-data-portal-relaunch-low-usage"]
    shutil.rmtree(folder)
    shutil.copytree(stale, folder)
    monkeypatch.setattr(VectorIndex, "passage_pages", lambda *a, **k: pytest.fail("read every passage"))
    other = KnowledgeBase(settings, embedder=fake_embedder)
    found = {h.id for h in other.search("open data portal relaunch low usage", limit=50, mode="bm25")}
    assert "open-data-portal-relaunch-low-usage" not in found and found


def test_a_saved_entry_keeps_exactly_its_new_passages_in_the_index_however_many_it_had(kb):
    """Passages are deleted by id when the entry does not have more than before, by clause when it
    does, or when a write that stopped half-way left more behind."""

    def stored(entry_id):
        return sorted(p.passage_id for p in kb.index.passages(entry_id)[0])

    entry = kb.get("flood-response-data-cell")
    before = stored(entry.id)
    assert len(before) > 2
    entry.sections = dict(list(entry.sections.items())[:1])  # fewer passages
    kb.save(entry)
    fewer = stored(entry.id)
    assert len(fewer) < len(before) and fewer == [f"{entry.id}#{n}" for n in range(len(fewer))]
    entry.sections["Lessons"] = "Sandbags need barcodes. " * 400  # more passages
    kb.save(entry)
    more = stored(entry.id)
    assert len(more) > len(fewer) and more == sorted(f"{entry.id}#{n}" for n in range(len(more)))

    # A write that stopped after adding passages left one more than the entry now has.
    passages_col = passages_collection(kb)
    vector = kb.index.passages(entry.id)[1][:1]
    extra = f"{entry.id}#{len(more)}"
    passages_col.add(ids=[extra], embeddings=vector, documents=["left behind"], metadatas=[{"entry_id": entry.id}])
    kb.save(entry)
    assert stored(entry.id) == more, "the passage left behind is gone"
    assert [h.id for h in kb.search("sandbags barcodes", mode="bm25")][:1] == [entry.id]


def test_a_search_in_a_process_with_chroma_asks_for_the_mark_only_after_a_commit(
    kb, settings, fake_embedder, monkeypatch
):
    """The app has Chroma loaded: reading the mark from Chroma costs half a millisecond a search, so it is
    asked again only once the store's file may have taken a commit, here another process's save."""
    asked = []
    generation = kb.parts.index.generation
    monkeypatch.setattr(kb.parts.index, "generation", lambda: asked.append(1) or generation())
    kb.search("data sharing agreement")
    database = settings.index_dir / "chroma" / "chroma.sqlite3"
    stat = database.stat()
    os.utime(database, ns=(stat.st_atime_ns, stat.st_mtime_ns - 60 * 10**9))  # written a minute ago
    kb.search("data sharing agreement")
    before = len(asked)
    for _ in range(3):
        kb.search("data sharing agreement")
    assert len(asked) == before, "nothing was committed: Chroma is not asked"
    other = KnowledgeBase(settings, embedder=fake_embedder)  # as another process would
    entry = other.store.get("flood-response-data-cell")
    entry.summary = "Sandbags carried barcodes, scanned at each depot."
    other.save(entry)
    assert kb.search('"scanned at each depot"', limit=1)[0].id == entry.id
    assert len(asked) > before
