"""Saves write a delta segment, syncs merge: whatever the sequence of saves, removals, record-only changes
and merges, the replica answers exactly as one built afresh from what it should now hold."""

import json
import random
import zlib

import numpy as np
import pytest

from kb.analysis import contains_phrases
from kb.replica import Replica
from kb.replica import folder as folder_module

WORDS = [
    "data",
    "sharing",
    "agreement",
    "pilot",
    "council",
    "sensor",
    "meters",
    "water",
    "road",
    "school",
    "the",
    "of",
    "a",
    "took",
    "months",
    "leaks",
]


def _text(rng: random.Random, entry_id: str, number: int) -> str:
    body = " ".join(rng.choice(WORDS) for _ in range(rng.randint(0, 14)))
    return f"{entry_id} — part {number}\n{body.capitalize()}."


SECTIONS = ["Summary", "What we did", "What went wrong", "Evidence and links"]


def _entry(rng: random.Random, entry_id: str) -> tuple[list[tuple[str, str, str, str]], dict]:
    passages = [
        (f"{entry_id}#{n}", entry_id, rng.choice(SECTIONS), _text(rng, entry_id, n)) for n in range(rng.randint(1, 4))
    ]
    return passages, {"title": entry_id.title(), "year": rng.randint(2010, 2026), "themes": [rng.choice(WORDS)]}


def _vectors(passages, dimension=6):
    """A vector per passage that depends only on its text, so a fresh build gets the same ones."""
    return np.vstack(
        [np.random.default_rng(zlib.crc32(text.encode())).normal(size=dimension) for *_, text in passages]
    ).astype(np.float32)


def _write(replica, state, touched, *, rebuild=False, merge=False, record_only=()):
    """Bring `replica` to `state` (entry id -> (passages, record)): the touched entries re-added (just
    their records for those in `record_only`), the ones gone removed."""
    hashes = _hashes(state)
    with replica.additions() as added:
        for entry_id in sorted(touched if not rebuild else state):
            if entry_id in state:
                passages, record = state[entry_id]
                if entry_id not in record_only:
                    added.add_passages(passages, _vectors(passages))
                added.add_records({entry_id: record})
        if rebuild:
            replica.rebuild(added, hashes, "gen")
        else:
            replica.update({e for e in touched if e not in state}, added, hashes, "gen", merge=merge)


def _hashes(state):
    return {e: str(hash(repr(v))) for e, v in state.items()}


def _assert_same(replica, fresh, state):
    assert replica.is_current(_hashes(state)) and fresh.is_current(_hashes(state))
    every = sorted(p for passages, _ in state.values() for p, *_ in passages)
    assert sorted(replica.passages()) == sorted(fresh.passages())
    assert sorted(replica.passages()) == sorted(
        (p, section, t) for rows, _ in state.values() for p, _, section, t in rows
    )
    assert replica.passage_count == fresh.passage_count == len(every)
    for passage_id in every + ["gone#0"]:
        assert replica.text_of(passage_id) == fresh.text_of(passage_id)
    table, expected = replica.table(), fresh.table()
    assert sorted(table.ids) == sorted(expected.ids) == sorted(state)
    for entry_id in state:
        assert table.record(table.position[entry_id]) == expected.record(expected.position[entry_id])
        assert table.record(table.position[entry_id]) == state[entry_id][1]
    for clause in ({"year": {"$gte": 2018}}, {"themes": {"$contains": "data"}}, {"title": {"$in": ["E1", "E7"]}}):
        assert sorted(table.ids[table.select(clause)]) == sorted(expected.ids[expected.select(clause)]), clause
    for query in ("data sharing", "water leaks months", "the", "council pilot agreement sensor"):
        got = {m.passage_id: m.score for m in replica.search(query, 50)}
        assert got == pytest.approx({m.passage_id: m.score for m in fresh.search(query, 50)}), query
        assert replica.max_score(query) == pytest.approx(fresh.max_score(query))
    texts = {passage_id: text for passage_id, _, text in replica.passages()}
    for phrases in (["data sharing"], ["took months"], ["the water", "sensor"], ["leaks leaks"]):
        held = replica.holding(phrases)
        assert sorted(held) == sorted(p for p, t in texts.items() if contains_phrases(t, phrases)), phrases
    allowed = set(list(state)[::2])
    weights = replica.weights(allowed)
    assert {m.entry_id for m in replica.search("data water road", 50, weights)} <= allowed
    queries = _vectors([("q", "q", "Summary", "data"), ("q", "q", "Summary", "water")])
    for entries in (allowed, set(state)):
        got = [[(m.passage_id, round(m.similarity, 5)) for m in r] for r in replica.nearest(queries, entries, 4)]
        want = [[(m.passage_id, round(m.similarity, 5)) for m in r] for r in fresh.nearest(queries, entries, 4)]
        assert got == want


@pytest.mark.parametrize("seed", range(6))
def test_any_sequence_of_saves_and_merges_answers_as_a_fresh_build(tmp_path, monkeypatch, seed):
    monkeypatch.setattr(folder_module, "MERGE_PASSAGES", 12)  # merges happen along the way too
    rng = random.Random(seed)
    state = {f"e{n}": _entry(rng, f"e{n}") for n in range(8)}
    replica = Replica(tmp_path / "replica")
    _write(replica, state, set(), rebuild=True)
    seen_delta = False
    for step in range(12):
        touched, record_only = set(), set()
        for _ in range(rng.randint(1, 3)):
            entry_id = f"e{rng.randint(0, 11)}"
            action = rng.random()
            if action < 0.25 and entry_id in state:
                del state[entry_id]
            elif action < 0.45 and entry_id in state:
                passages, record = state[entry_id]
                state[entry_id] = (passages, {**record, "year": record["year"] + 1})
                if entry_id not in touched:  # else its passages are new this step too
                    record_only.add(entry_id)
            else:
                state[entry_id] = _entry(rng, entry_id)
                record_only.discard(entry_id)
            touched.add(entry_id)
        _write(replica, state, touched, merge=step == 7, record_only=record_only)
        seen_delta |= replica.segments == ["base", "delta"]
        fresh = Replica(tmp_path / f"fresh-{step}")
        _write(fresh, state, set(), rebuild=True)
        _assert_same(replica, fresh, state)
        _assert_same(Replica(replica.folder), fresh, state)  # as another process opens it
    assert seen_delta, "some saves wrote only a delta"


def test_a_save_writes_only_the_delta_and_links_the_base(tmp_path):
    rng = random.Random(1)
    state = {f"e{n}": _entry(rng, f"e{n}") for n in range(30)}
    replica = Replica(tmp_path / "replica")
    _write(replica, state, set(), rebuild=True)
    base_texts = replica.folder / "base" / "texts.bin"
    inode = base_texts.stat().st_ino
    state["e3"] = _entry(rng, "e3")
    _write(replica, state, {"e3"})
    assert replica.segments == ["base", "delta"]
    assert (replica.folder / "base" / "texts.bin").stat().st_ino == inode, "the base is linked, not copied"
    delta_rows = sum(1 for _ in (replica.folder / "delta" / "entries.jsonl").open())
    assert delta_rows == 1, "the delta holds the saved entry alone"
    _write(replica, state, set(), merge=True)
    assert replica.segments == ["base"] and (replica.folder / "base" / "texts.bin").stat().st_ino != inode


def test_a_merge_keeps_only_the_words_its_passages_use(tmp_path):
    rng = random.Random(2)
    state = {f"e{n}": _entry(rng, f"e{n}") for n in range(6)}
    state["odd"] = (
        [("odd#0", "odd", "Summary", "Odd — part 0\nZyzzyva quokka.")],
        {"title": "Odd", "year": 2020, "themes": []},
    )
    replica = Replica(tmp_path / "replica")
    _write(replica, state, set(), rebuild=True)
    assert "zyzzyva" in (replica.folder / "base" / "words.json").read_text()
    del state["odd"]
    _write(replica, state, {"odd"})
    _write(replica, state, set(), merge=True)
    assert replica.segments == ["base"]
    assert "zyzzyva" not in (replica.folder / "base" / "words.json").read_text(), "a removed entry's words go"
    assert replica.search("zyzzyva quokka", 5) == [] and replica.holding(["zyzzyva quokka"]) == []


@pytest.mark.parametrize("other", ["merge", "rebuild"])
def test_a_save_never_links_a_base_another_process_swapped_in_meanwhile(tmp_path, monkeypatch, other):
    """Another process swaps in a new base (its sync merges, or it rebuilds) just as this one links
    the base for its save: the save writes everything afresh, and nothing is lost or reported damaged."""
    from kb.replica import segment as segment_module

    rng = random.Random(3)
    state = {f"e{n}": _entry(rng, f"e{n}") for n in range(10)}
    ours = Replica(tmp_path / "replica")
    _write(ours, state, set(), rebuild=True)
    state["new"] = _entry(rng, "new")
    _write(ours, state, {"new"})  # a delta holding an entry the base never had
    assert ours.segments == ["base", "delta"]
    real_link = segment_module.link

    def another_process_merges_first(source, target):
        monkeypatch.setattr(folder_module, "link", real_link)
        # a new base, with that entry in it, and no delta
        _write(Replica(ours.folder), state, set(), merge=other == "merge", rebuild=other == "rebuild")
        real_link(source, target)

    monkeypatch.setattr(folder_module, "link", another_process_merges_first)
    state["e2"] = _entry(rng, "e2")
    _write(ours, state, {"e2"})
    fresh = Replica(tmp_path / "fresh")
    _write(fresh, state, set(), rebuild=True)
    _assert_same(ours, fresh, state)
    _assert_same(Replica(ours.folder), fresh, state)


def test_a_filter_mask_is_always_built_over_the_rows_the_search_reads(tmp_path):
    rng = random.Random(4)
    state = {f"e{n}": _entry(rng, f"e{n}") for n in range(8)}
    replica = Replica(tmp_path / "replica")
    _write(replica, state, set(), rebuild=True)
    allowed = frozenset(["e1", "e3", "e5"])
    query = _vectors([("q", "q", "Summary", "data")])
    before = replica.nearest(query, None, 50, allowed_entries=allowed)
    assert {m.entry_id for m in before[0]} == allowed
    state["e3"] = _entry(rng, "e3")
    state["e9"] = _entry(rng, "e9")
    _write(replica, state, {"e3", "e9"})  # rows move and grow under the same allowed set
    (after,) = replica.nearest(query, None, 50, allowed_entries=allowed)
    assert {m.entry_id for m in after} == allowed
    assert {m.passage_id for m in after} == {p for e in allowed for p, *_ in state[e][0]}


def test_a_save_writes_its_entries_content_hashes_not_the_collections(tmp_path):
    rng = random.Random(2)
    state = {f"e{n}": _entry(rng, f"e{n}") for n in range(30)}
    replica = Replica(tmp_path / "replica")
    _write(replica, state, set(), rebuild=True)
    state["e3"] = _entry(rng, "e3")
    del state["e5"]
    _write(replica, state, {"e3", "e5"})
    delta = json.loads((replica.folder / "delta" / "hashes.json").read_text())
    assert delta == {"e3": _hashes(state)["e3"], "e5": None}, "the changed entry, and the removed one as null"
    assert "hashes" not in json.loads((replica.folder / "manifest.json").read_text())
    assert Replica(replica.folder).is_current(_hashes(state))


def test_a_ledger_that_differs_beyond_the_touched_entries_is_still_recorded_exactly(tmp_path):
    rng = random.Random(3)
    state = {f"e{n}": _entry(rng, f"e{n}") for n in range(10)}
    replica = Replica(tmp_path / "replica")
    _write(replica, state, set(), rebuild=True)
    state["e1"] = _entry(rng, "e1")
    _write(replica, state, {"e1"})
    hashes = _hashes(state) | {"e7": "changed elsewhere"}  # not touched by this write
    with replica.additions() as added:
        passages, record = state["e2"] = _entry(rng, "e2")
        hashes["e2"] = _hashes(state)["e2"]
        added.add_passages(passages, _vectors(passages))
        added.add_records({"e2": record})
        replica.update(set(), added, hashes, "gen")
    assert replica.segments == ["base", "delta"]
    assert replica.is_current(hashes) and Replica(replica.folder).is_current(hashes)
