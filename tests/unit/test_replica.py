"""The keyword index's folder: passages as entry blocks with memory-mapped texts, and the entry mirror."""

import json
import logging
import zlib

import numpy as np
import pytest

from kb.analysis import contains_phrases
from kb.replica import FORMAT_VERSION, EntryTable, KeywordIndexDamaged, Replica
from tests.faults import DAMAGES, KEYWORD_INDEX_FILES, damage_file

ROWS = [
    ("water#1", "water", "Findings", "Water meters — Findings\nLeaks were found by comparing night flows."),
    ("water#0", "water", "Summary", "Water meters\nSmart meters in three towns; café owners took part."),
    ("roads#0", "roads", "Summary", "Road sensors\nPothole reports from buses, shared with the council."),
    (
        "roads#1",
        "roads",
        "What went wrong",
        "Road sensors — What went wrong\nThe data-sharing agreement took nine months.",
    ),
    ("schools#0", "schools", "Summary", "School meals\nA pilot that matched 日本 suppliers to menus."),
]
HASHES = {"water": "h1", "roads": "h2", "schools": "h3"}
META = {
    "water": {"title": "Water meters", "year": 2021, "themes": ["utilities", "sensors"], "lighthouse": True},
    "roads": {"title": "Road sensors", "year": 2019, "themes": ["sensors"], "lighthouse": False},
    "schools": {"title": "School meals", "organisation": "Education"},
}


def rebuild(lexical, rows, hashes, meta, generation):
    with lexical.additions() as added:
        added.add_passages(rows)
        added.add_records(meta)
        lexical.rebuild(added, hashes, generation)


@pytest.fixture
def index(tmp_path):
    lexical = Replica(tmp_path / "lexical")
    rebuild(lexical, ROWS, HASHES, META, "gen-1")
    return lexical


def _contents(lexical):
    return {pid: lexical.text_of(pid) for pid, *_ in ROWS if lexical.text_of(pid) is not None}


def test_every_passage_reads_back_by_id_after_reopening(index):
    again = Replica(index.folder)
    assert again.is_current(HASHES) and again.mirrors("gen-1")
    assert _contents(again) == {pid: text for pid, _, _, text in ROWS}
    assert again.passage_count == len(ROWS)
    assert again.text_of("water#7") is None and again.text_of("nowhere#0") is None and again.text_of("water") is None


def test_a_keyword_match_names_its_passage_and_entry(index):
    (best, *_) = index.search("data sharing agreement", 3)
    assert (best.passage_id, best.entry_id) == ("roads#1", "roads")
    assert {m.entry_id for m in index.search("sensors meters", 10, index.weights({"water"}))} == {"water"}


def test_an_update_replaces_removes_and_adds_without_losing_the_rest(index):
    with index.additions() as added:
        added.add_passages([("water#0", "water", "Summary", "Water meters\nRewritten summary.")])
        added.add_records({"water": {"title": "Water meters", "year": 2022}})
        added.add_passages([("parks#0", "parks", "Summary", "Parks\nTree survey.")])
        added.add_records({"parks": {"title": "Parks"}})
        index.update({"schools"}, added, {"water": "h1b", "roads": "h2", "parks": "h4"}, "gen-2")
    for lexical in (index, Replica(index.folder)):
        assert lexical.text_of("water#0") == "Water meters\nRewritten summary."
        assert lexical.text_of("water#1") is None, "the entry's old passages went with it"
        assert lexical.text_of("schools#0") is None
        assert lexical.text_of("roads#1") == ROWS[3][3]
        assert lexical.text_of("parks#0") == "Parks\nTree survey."
        table = lexical.table()
        assert sorted(table.ids) == ["parks", "roads", "water"]
        assert table.record(table.position["water"]) == {"title": "Water meters", "year": 2022}
        assert table.record(table.position["roads"]) == META["roads"]
        assert [m.entry_id for m in lexical.search("tree survey", 5)] == ["parks"]
        assert lexical.search("pilot suppliers menus", 5) == []


def test_a_phrase_is_found_from_word_positions_whole_words_in_order(index):
    texts = {pid: text for pid, _, text in index.passages()}
    for phrases, expected in [
        (["data-sharing agreement"], [ROWS[3][3]]),
        (["data sharing, agreement"], [ROWS[3][3]]),  # punctuation and spacing between words never matter
        (["agreement data sharing"], []),  # the words, but not in this order
        (["meter"], []),  # whole words: "meters" is another word
        (["road sensors", "nine months"], [ROWS[3][3]]),
        (["café owners"], [ROWS[1][3]]),
        (["日本 suppliers"], [ROWS[4][3]]),
    ]:
        held = index.holding(phrases)
        assert [texts[p] for p in held] == expected, phrases
        assert sorted(held) == sorted(p for p, t in texts.items() if contains_phrases(t, phrases)), phrases


@pytest.mark.parametrize("common", [0, 3, 10**9], ids=["every-pair-kept", "some-pairs-kept", "no-pair-kept"])
def test_a_phrase_anchored_on_a_pair_of_common_words_finds_exactly_what_the_texts_hold(tmp_path, monkeypatch, common):
    """Phrases of common words start from the kept pairs of neighbours; whichever anchor a phrase takes,
    it finds exactly the passages whose text holds it, never a pair split over two passages, and
    still after a save has put some passages in a second segment."""
    monkeypatch.setattr("kb.replica.keywords.COMMON", common)
    rng = np.random.default_rng(7)
    vocabulary = ["of", "the", "data", "was", "not", "shared"]

    def text() -> str:
        return " ".join(rng.choice(vocabulary, size=int(rng.integers(1, 12))).tolist())

    rows = [(f"e{n // 3}#{n % 3}", f"e{n // 3}", "Summary" if n % 3 == 0 else "Lessons", text()) for n in range(90)]
    lexical = Replica(tmp_path / "lexical")
    rebuild(lexical, rows, {f"e{n}": "h" for n in range(30)}, {f"e{n}": {"title": f"E{n}"} for n in range(30)}, "g1")
    if common < 10**9:
        assert len(np.load(tmp_path / "lexical" / "base" / "pair-keys.npy")), "the pairs are kept"
    with lexical.additions() as added:
        changed = [(f"e0#{n}", "e0", "Summary" if n == 0 else "Lessons", text()) for n in range(2)]
        added.add_passages(changed)
        added.add_records({"e0": {"title": "E0"}})
        lexical.update(set(), added, {f"e{n}": "h" if n else "h2" for n in range(30)}, "g2")
    texts = {pid: t for pid, _, _, t in rows if not pid.startswith("e0#")} | {pid: t for pid, _, _, t in changed}
    for _ in range(150):
        phrase = " ".join(rng.choice(vocabulary, size=int(rng.integers(1, 5))).tolist())
        expected = sorted(pid for pid, t in texts.items() if contains_phrases(t, [phrase]))
        assert sorted(lexical.holding([phrase])) == expected, phrase
    # A passage ending in "of" and the next starting with "the" do not hold "of the" between them.
    split = [("a#0", "a", "Summary", "data of"), ("a#1", "a", "Summary", "the data")]
    rebuild(lexical, split, {"a": "h"}, {"a": {"title": "A"}}, "g3")
    assert lexical.holding(["of the"]) == [] and lexical.holding(["data of"]) == ["a#0"]


def test_an_older_format_is_rebuilt_not_trusted(index):
    manifest = json.loads((index.folder / "manifest.json").read_text())
    manifest["format"] = FORMAT_VERSION - 1
    (index.folder / "manifest.json").write_text(json.dumps(manifest))
    older = Replica(index.folder)
    assert not older.is_current(HASHES) and not older.mirrors("gen-1")
    assert older.damage is None, "an upgrade is not damage"


def test_an_empty_index_answers_nothing(tmp_path):
    empty = Replica(tmp_path / "empty")
    rebuild(empty, [], {}, {}, "gen-0")
    assert empty.search("anything", 5) == [] and empty.text_of("a#0") is None
    assert len(empty.table()) == 0


def test_the_entry_table_gives_records_back_as_written():
    table = EntryTable(iter(META.items()))
    assert [table.record(table.position[e]) for e in META] == list(META.values())
    assert table.column("year")[table.position["schools"]] != table.column("year")[table.position["schools"]]  # NaN
    assert table.column("absent").tolist() == [None, None, None]
    assert np.array_equal(table.select({"themes": {"$contains": "sensors"}}), [True, True, False])


def _bm25s_over(texts):
    """bm25s's own index over these texts, with the English stemmer and stop words."""
    import bm25s
    import Stemmer

    reference = bm25s.BM25()
    stemmer = Stemmer.Stemmer("english")
    reference.index(bm25s.tokenize(texts, stopwords="en", stemmer=stemmer, show_progress=False), show_progress=False)
    return reference, lambda query: bm25s.tokenize([query], stopwords="en", stemmer=stemmer, show_progress=False)


def test_keyword_scores_and_order_agree_with_bm25s_own_retrieval(index):
    ids, _, texts = zip(*index.passages(), strict=True)
    reference, tokenized = _bm25s_over(list(texts))
    for query in ("sensors data sharing", "water water meters", "road", "agreement council pilot"):
        for allowed in (None, {"water", "roads"}):
            weights = None if allowed is None else np.array([i.split("#")[0] in allowed for i in ids], np.float32)
            docs, scores = reference.retrieve(tokenized(query), k=5, show_progress=False, weight_mask=weights)
            expected = {ids[int(d)]: float(s) for d, s in zip(docs[0], scores[0], strict=True) if s > 0}
            got = index.search(query, 5, index.weights(allowed))
            assert {m.passage_id: m.score for m in got} == pytest.approx(expected), (query, allowed)
            assert [m.score for m in got] == sorted((m.score for m in got), reverse=True)


def test_the_index_built_a_chunk_at_a_time_scores_as_bm25s_on_the_whole_corpus(tmp_path, monkeypatch):
    from kb.replica import keywords

    monkeypatch.setattr(keywords, "BUILD_CHUNK", 2)
    index = Replica(tmp_path / "chunked")
    rebuild(index, ROWS, HASHES, META, "gen-1")
    rows = sorted(ROWS)
    reference, tokenized = _bm25s_over([t for *_, t in rows])
    for query in ("sensors data sharing", "meters night flows", "pilot suppliers", "agreement"):
        docs, scores = reference.retrieve(tokenized(query), k=5, show_progress=False, n_threads=1)
        expected = {rows[int(d)][0]: float(s) for d, s in zip(docs[0], scores[0], strict=True) if s > 0}
        assert expected, query
        assert {m.passage_id: m.score for m in index.search(query, 5)} == pytest.approx(expected)
    assert sorted(index.passages()) == sorted((pid, section, t) for pid, _, section, t in rows)


def test_additions_group_rows_given_in_any_order_and_keep_the_latest_text(tmp_path):
    lexical = Replica(tmp_path / "lexical")
    with lexical.additions() as added:
        spool = added.folder
        added.add_passages([ROWS[3], ROWS[0]])  # entries interleaved across calls, as pages of an index come
        added.add_passages(
            [ROWS[4], ROWS[2], ("roads#1", "roads", "What went right", "Road sensors\nA corrected text.")]
        )
        added.add_passages([ROWS[1]])
        added.add_records(META)
        added.add_records({"roads": {"title": "Road sensors", "year": 2020}})
        assert added.entry_ids == set(HASHES) and added.record_ids == set(META)
        assert [(block.entry_id, block.numbers) for block in added.blocks()] == [
            ("roads", [0, 1]),
            ("water", [0, 1]),
            ("schools", [0]),
        ]
        lexical.rebuild(added, HASHES, "gen-1")
    assert not spool.exists(), "the spool goes once the index is written"
    assert lexical.text_of("roads#1") == "Road sensors\nA corrected text."
    # a passage given again keeps its last section too, and every answer carries the stored one
    assert lexical.passage("roads#1") == ("What went right", "Road sensors\nA corrected text.")
    assert lexical.passage("water#1") == ("Findings", ROWS[0][3]) and lexical.passage("gone#0") is None
    assert [(m.passage_id, m.section) for m in lexical.search("corrected", 5)] == [("roads#1", "What went right")]
    assert lexical.text_of("water#1") == ROWS[0][3]
    table = lexical.table()
    assert len(table) == 3 and table.record(table.position["roads"]) == {"title": "Road sensors", "year": 2020}


def test_spools_and_folders_left_by_a_killed_sync_are_swept_but_a_running_one_is_not(tmp_path):
    import os
    import time

    lexical = Replica(tmp_path / "lexical")
    with lexical.additions() as running, lexical.additions() as abandoned:
        abandoned.add_passages([ROWS[0]])  # then nothing more: its sync was killed
        half_written = tmp_path / ".lexical-k1ll3d"
        (half_written / "base").mkdir(parents=True)
        (half_written / "base" / "postings-rows.npy").write_bytes(b"partial")
        long_ago = time.time() - 2 * 24 * 3600
        for folder in (abandoned.folder, half_written):
            for path in [folder, *folder.rglob("*")]:
                os.utime(path, (long_ago, long_ago))
        with lexical.additions():
            assert running.folder.exists()
            assert not abandoned.folder.exists() and not half_written.exists()


def _counting_tokenized_texts(monkeypatch):
    from kb.replica.keywords import WordsWriter

    read = []
    original = WordsWriter.add_text
    monkeypatch.setattr(WordsWriter, "add_text", lambda self, text: read.append(text) or original(self, text))
    return read


def test_a_save_writes_a_delta_segment_reading_only_the_texts_it_adds_and_scores_as_a_fresh_build(
    index, tmp_path, monkeypatch
):
    read = _counting_tokenized_texts(monkeypatch)
    added_rows = [("water#0", "water", "Summary", "Water meters\nNight flows showed leaks; a new word: hydrant.")]
    with index.additions() as added:
        added.add_passages(added_rows)
        added.add_records({"water": META["water"]})
        index.update({"roads"}, added, {"water": "h1b", "schools": "h3"}, "gen-2")
    assert read == [added_rows[0][3]], "kept passages keep their word ids; no other text is read"
    assert index.segments == ["base", "delta"]
    final = [added_rows[0], ROWS[4]]
    fresh = Replica(tmp_path / "fresh")
    rebuild(fresh, final, {"water": "h1b", "schools": "h3"}, META, "gen-2")
    for lexical in (index, Replica(index.folder)):
        for query in ("night flows leaks", "hydrant", "pilot suppliers menus", "sensors", "water meters"):
            got = [(m.passage_id, m.score) for m in lexical.search(query, 5)]
            want = [(m.passage_id, m.score) for m in fresh.search(query, 5)]
            assert sorted(p for p, _ in got) == sorted(p for p, _ in want), query
            assert dict(got) == pytest.approx(dict(want)), query
        assert lexical.search("data sharing agreement", 5) == [], "the removed entry's words score nothing"
        assert lexical.passage_count == 2 and sorted(lexical.table().ids) == ["schools", "water"]
    read.clear()
    index.compact()
    assert index.segments == ["base"] and read == [], "a merge copies word ids, reads no text"
    assert {m.passage_id: m.score for m in index.search("night flows", 5)} == pytest.approx(
        {m.passage_id: m.score for m in fresh.search("night flows", 5)}
    )


def test_an_index_object_whose_folder_another_process_replaced_reads_its_own_files(index, monkeypatch):
    elsewhere = Replica(index.folder)  # another process on this machine
    with elsewhere.additions() as added:
        added.add_passages([("parks#0", "parks", "Summary", "Parks\nA tree survey by volunteers, street by street.")])
        added.add_records({"parks": {"title": "Parks"}})
        elsewhere.update(set(), added, {**HASHES, "parks": "h4"}, "gen-2", merge=True)
    read = _counting_tokenized_texts(monkeypatch)
    with index.additions() as added:
        added.add_passages([("water#0", "water", "Summary", "Water meters\nRewritten summary.")])
        added.add_records({"water": META["water"]})
        index.update({"schools"}, added, {"water": "h1b", "roads": "h2"}, "gen-3")
    assert index.text_of("roads#1") == ROWS[3][3], "texts come from the files this object opened"
    assert index.text_of("water#0") == "Water meters\nRewritten summary." and index.text_of("parks#0") is None
    assert read == ["Water meters\nRewritten summary."], "its own segments' word ids are copied"
    assert index.passage_count == 3 and sorted(index.table().ids) == ["roads", "water"]
    assert [m.passage_id for m in index.search("data sharing agreement", 3)][0] == "roads#1"


def _vectors(rows, seed=3, dimension=8):
    """A vector per row, some pairs close, none of unit length (the search must not assume it is)."""
    rng = np.random.default_rng(seed)
    scaled = rng.normal(size=(len(rows), dimension)) * rng.uniform(0.5, 3.0, size=(len(rows), 1))
    return scaled.astype(np.float32)


def _brute_force(queries, rows, vectors, entries, k):
    """The k most similar passages of these entries to each query, by cosine over every row."""
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    results = []
    for query in queries:
        scores = unit @ (query / np.linalg.norm(query))
        ranked = sorted((-s, pid) for (pid, entry, *_), s in zip(rows, scores, strict=True) if entry in entries)
        results.append([(pid, -s) for s, pid in ranked[:k]])
    return results


def _nearest(index, queries, entries, k):
    return [[(m.passage_id, m.similarity) for m in r] for r in index.nearest(queries, entries, k)]


def test_passage_vectors_are_kept_with_the_passages_and_searched_exactly_among_chosen_entries(tmp_path):
    vectors = _vectors(ROWS)
    lexical = Replica(tmp_path / "lexical")
    with lexical.additions() as added:
        added.add_passages(ROWS[3:], vectors[3:])  # any order, any number of calls
        added.add_passages(ROWS[:3], vectors[:3])
        added.add_records(META)
        lexical.rebuild(added, HASHES, "gen-1")
    again = Replica(lexical.folder)
    assert again.has_vectors
    queries = _vectors(ROWS[:3], seed=11)
    for entries in ({"water"}, {"water", "schools"}, {"roads", "schools"}, {"roads", "water"}, set(HASHES)):
        for k in (1, 2, 5):
            got, want = _nearest(again, queries, entries, k), _brute_force(queries, ROWS, vectors, entries, k)
            assert [[p for p, _ in r] for r in got] == [[p for p, _ in r] for r in want], (entries, k)
            assert [s for r in got for _, s in r] == pytest.approx([s for r in want for _, s in r], abs=1e-6)
    assert _nearest(again, queries, {"nowhere"}, 3) == [[], [], []]
    assert again.nearest(queries[:, :4], {"water"}, 3) is None, "vectors of another size: not answerable here"


def test_an_update_keeps_the_vectors_of_kept_passages_and_takes_new_ones(tmp_path):
    vectors = _vectors(ROWS)
    lexical = Replica(tmp_path / "lexical")
    with lexical.additions() as added:
        added.add_passages(ROWS, vectors)
        added.add_records(META)
        lexical.rebuild(added, HASHES, "gen-1")
    changed = ("water#0", "water", "Summary", "Water meters\nRewritten summary.")
    new_vector = _vectors([changed], seed=5)
    with lexical.additions() as added:
        added.add_passages([changed], new_vector)
        added.add_records({"water": META["water"]})
        lexical.update({"schools"}, added, {"water": "h1b", "roads": "h2"}, "gen-2")
    rows = [changed, ROWS[2], ROWS[3]]
    expected_vectors = np.vstack([new_vector, vectors[2:4]])
    queries = _vectors(ROWS, seed=13)
    got = _nearest(Replica(lexical.folder), queries, {"water", "roads"}, 5)
    want = _brute_force(queries, rows, expected_vectors, {"water", "roads"}, 5)
    assert [[p for p, _ in r] for r in got] == [[p for p, _ in r] for r in want]
    assert [s for r in got for _, s in r] == pytest.approx([s for r in want for _, s in r], abs=1e-6)


def test_a_passage_given_again_keeps_its_latest_vector(tmp_path):
    vectors = _vectors(ROWS)
    lexical = Replica(tmp_path / "lexical")
    with lexical.additions() as added:
        added.add_passages(ROWS, vectors)
        added.add_passages([ROWS[0]], -vectors[:1])  # the same passage again, pointing the other way
        added.add_records(META)
        lexical.rebuild(added, HASHES, "gen-1")
    ((match,),) = lexical.nearest(-vectors[:1], {"water"}, 1)
    assert match.passage_id == ROWS[0][0] and match.similarity == pytest.approx(1.0)


def test_without_a_vector_for_every_passage_none_are_kept(tmp_path):
    lexical = Replica(tmp_path / "lexical")
    with lexical.additions() as added:
        added.add_passages(ROWS[:2], _vectors(ROWS[:2]))
        added.add_passages(ROWS[2:])  # these came without vectors
        added.add_records(META)
        lexical.rebuild(added, HASHES, "gen-1")
    assert not lexical.has_vectors and not (lexical.folder / "base" / "vectors.bin").exists()
    assert lexical.nearest(_vectors(ROWS[:1]), {"water"}, 3) is None
    assert lexical.text_of("roads#1") == ROWS[3][3], "the keyword index itself is whole"


def test_entries_without_passages_are_searched_as_nothing(tmp_path):
    from kb.replica import Block, Corpus

    vectors = _vectors(ROWS[:2])
    blocks = [
        Block("empty", [], [], [], None),
        Block("water", [0, 1], [ROWS[1][3].encode(), ROWS[0][3].encode()], ["Summary", "Findings"], vectors.tobytes()),
    ]
    assert Corpus.write(tmp_path, blocks) == 2
    corpus = Corpus.open(tmp_path)
    assert corpus.dimension == vectors.shape[1], "an empty block does not cost the others their vectors"
    ((rows, similarities),) = corpus.nearest(vectors[:1], np.asarray([corpus.codes["empty"]]), 3)
    assert len(rows) == len(similarities) == 0
    ((rows, _),) = corpus.nearest(vectors[:1], np.asarray([0, 1]), 3)
    assert rows.tolist() == [0, 1]
    assert corpus.passages_of("empty").ids == [] and corpus.passages_of("empty").vectors.shape == (0, vectors.shape[1])


def test_vectors_that_do_not_match_their_passages_are_refused_before_anything_is_spooled(tmp_path):
    lexical = Replica(tmp_path / "lexical")
    with lexical.additions() as added:
        added.add_passages(ROWS[:2], _vectors(ROWS[:2]))
        with pytest.raises(ValueError, match="3 passages"):
            added.add_passages(ROWS[2:], _vectors(ROWS[2:4]))
        with pytest.raises(ValueError, match="values in one sync"):
            added.add_passages(ROWS[2:], _vectors(ROWS[2:], dimension=4))
        added.add_passages(ROWS[2:], _vectors(ROWS[2:]))
        added.add_records(META)
        lexical.rebuild(added, HASHES, "gen-1")
    assert lexical.has_vectors and _contents(lexical) == {pid: text for pid, _, _, text in ROWS}


# ----------------------------------------------------------------- damage

# Read only when an update copies from the folder (or, the manifest, when it is opened).
NOT_READ_BY_SEARCHES = {"manifest.json", "base/hashes.json"}  # read when the folder is opened, never after
PARKS = ("parks#0", "parks", "Summary", "Parks\nA tree survey by volunteers, street by street.")


@pytest.fixture
def full_index(tmp_path):
    """A folder holding every kind of file: passages with vectors, BM25, token ids, entry records."""
    lexical = Replica(tmp_path / "lexical")
    with lexical.additions() as added:
        added.add_passages(ROWS, _vectors(ROWS))
        added.add_records(META)
        lexical.rebuild(added, HASHES, "gen-1")
    return lexical


def _manifest(folder):
    return json.loads((folder / "manifest.json").read_text())


def _add_parks(lexical, generation):
    with lexical.additions() as added:
        added.add_passages([PARKS], _vectors([PARKS]))
        added.add_records({"parks": {"title": "Parks"}})
        lexical.update(set(), added, {**HASHES, "parks": "h4"}, generation)


def test_the_manifest_lists_every_other_file_with_its_size_and_checksum(full_index):
    folder = full_index.folder
    assert sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()) == KEYWORD_INDEX_FILES
    files = _manifest(folder)["files"]
    assert sorted(files) == [name for name in KEYWORD_INDEX_FILES if name != "manifest.json"]
    for name, recorded in files.items():
        data = (folder / name).read_bytes()
        assert recorded == {"size": len(data), "crc32": zlib.crc32(data)}, name
    assert full_index.damage is None and Replica(folder).damage is None


@pytest.mark.parametrize("how", DAMAGES)
@pytest.mark.parametrize("name", KEYWORD_INDEX_FILES)
def test_a_damaged_file_makes_the_folder_count_as_absent_and_is_reported(full_index, name, how, caplog):
    damage_file(full_index.folder / name, how, seed=name)
    with caplog.at_level(logging.WARNING, logger="kb.replica"):
        opened = Replica(full_index.folder)
    assert not opened.is_current(HASHES) and not opened.mirrors("gen-1"), "so the knowledge base rebuilds it"
    assert opened.damage is not None and opened.damage.startswith(f"{name}: "), opened.damage
    assert opened.damage in caplog.text
    assert opened.search("sensors", 5) == [] and opened.text_of("roads#1") is None and len(opened.table()) == 0
    assert opened.nearest(_vectors(ROWS[:1]), {"water"}, 3) is None


def test_marking_a_generation_keeps_the_file_list_so_the_folder_is_still_checked(full_index):
    folder = full_index.folder
    files = _manifest(folder)["files"]
    full_index.mark("gen-2")
    assert _manifest(folder)["files"] == files and _manifest(folder)["generation"] == "gen-2"
    again = Replica(folder)
    assert again.damage is None and again.mirrors("gen-2") and again.is_current(HASHES)
    assert [m.entry_id for m in again.search("data sharing agreement", 1)] == ["roads"]
    damage_file(folder / "base" / "texts.bin", "garble", seed="texts.bin")
    assert Replica(folder).damage == "base/texts.bin: checksum mismatch"


def test_a_manifest_without_its_file_list_is_not_trusted(full_index):
    manifest = _manifest(full_index.folder)
    del manifest["files"]
    (full_index.folder / "manifest.json").write_text(json.dumps(manifest))
    opened = Replica(full_index.folder)
    assert opened.damage == "manifest.json: no valid file list" and not opened.is_current(HASHES)


@pytest.mark.parametrize("how", ["truncate", "delete"])
@pytest.mark.parametrize("name", [name for name in KEYWORD_INDEX_FILES if name not in NOT_READ_BY_SEARCHES])
def test_a_file_damaged_after_the_folder_was_checked_is_noticed_by_the_read_not_raised(full_index, name, how):
    opened = Replica(full_index.folder)  # checked and whole; nothing else is read before first use
    damage_file(opened.folder / name, how, seed=name)
    assert len(opened.table()) == 0  # the first read: it loads the passage and BM25 files too
    assert opened.damage and not opened.is_current(HASHES) and not opened.mirrors("gen-1")
    assert opened.scaled_search([("sensors", 1.0)], 5)[0] == [] and opened.text_of("roads#1") is None
    assert opened.nearest(_vectors(ROWS[:1]), {"water"}, 3) is None and opened.entry_passages("water") is None


@pytest.mark.parametrize(
    ("name", "read"),
    [
        ("texts.bin", lambda index: index.text_of("water#1")),
        ("texts.bin", lambda index: index.entry_passages("roads")),
        ("vectors.bin", lambda index: index.nearest(_vectors(ROWS[:1]), set(HASHES), 3)),
        ("vectors.bin", lambda index: index.entry_passages("roads")),
    ],
)
def test_a_file_cut_short_while_in_use_is_noticed_by_the_read_not_raised(full_index, name, read):
    assert full_index.has_vectors and full_index.table()  # loaded: its texts and vectors are open files
    (full_index.folder / "base" / name).write_bytes(b"")
    assert read(full_index) is None
    assert full_index.damage == f"{name}: shorter than its passages" and not full_index.is_current(HASHES)
    assert full_index.search("sensors", 5) == [] and full_index.text_of("roads#1") is None, "as if absent"


@pytest.mark.parametrize(
    "name", ["base/texts.bin", "base/vectors.bin", "base/entries.jsonl", "base/tokens.npy", "manifest.json"]
)
def test_an_update_does_not_copy_from_a_file_damaged_since_the_folder_was_opened(full_index, name):
    damage_file(full_index.folder / name, "garble", seed=name)
    with pytest.raises(KeywordIndexDamaged, match=f"the keyword index is damaged \\({name}: .*python -m kb sync"):
        _add_parks(full_index, "gen-2")
    assert full_index.damage.startswith(f"{name}: ") and not full_index.is_current(HASHES)
    assert Replica(full_index.folder).damage.startswith(f"{name}: "), "left for a rebuild, not replaced"


def test_a_folder_swapped_in_while_it_is_checked_is_read_not_reported_as_damaged(full_index, monkeypatch):
    from kb.replica.files import Manifest

    read_manifest = Manifest.from_json

    def swap_during_the_first_check(meta):  # the manifest is read: the files it lists are checked next
        monkeypatch.setattr(Manifest, "from_json", read_manifest)
        _add_parks(Replica(full_index.folder), "gen-2")  # another process: the folder being read goes
        return read_manifest(meta)

    monkeypatch.setattr(Manifest, "from_json", swap_during_the_first_check)
    opened = Replica(full_index.folder)
    assert opened.damage is None and opened.mirrors("gen-2") and opened.text_of("parks#0") == PARKS[3]


def test_a_folder_swapped_in_after_it_was_checked_is_checked_and_read_at_first_use(full_index):
    opened = Replica(full_index.folder)
    _add_parks(full_index, "gen-2")  # before `opened` has read anything but the manifest
    assert opened.text_of("parks#0") == PARKS[3]
    assert opened.hashes == {**HASHES, "parks": "h4"} and opened.mirrors("gen-2"), "its manifest came with it"
    assert opened.damage is None
