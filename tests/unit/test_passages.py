"""Passages: every word of a long entry lands in some passage, and every passage fits the model window."""

from __future__ import annotations

import pytest

from kb.entries import Entry
from kb.passages import body_of, split_entry


def one_token_per_word(words: list[str]) -> list[int]:
    return [1] * len(words)


def long_entry(words: int) -> Entry:
    body = " ".join(f"w{i}" for i in range(words))
    return Entry(
        id="long",
        title="Long lesson",
        summary="A summary.",
        kind="project",
        outcome="failed",
        organisation="Org",
        sections={"Lessons": body, "Context": "Short context."},
    )


def test_first_passage_is_title_and_summary_then_sections():
    passages = split_entry(long_entry(10), one_token_per_word, 256)
    assert passages[0].section == "Summary" and passages[0].text == "Long lesson\nA summary."
    assert [p.section for p in passages[1:]] == ["Lessons", "Context"]
    assert passages[1].text.startswith("Long lesson — Lessons\n")
    assert [p.id for p in passages] == ["long#0", "long#1", "long#2"]


@pytest.mark.parametrize("title", ["Long lesson", "Pilot — phase two", "Findings", "Pilot — Evidence and links"])
def test_a_passage_text_as_indexed_gives_back_its_body(title):
    entry = long_entry(400)
    entry.title = title
    entry.sections["Evidence and links"] = "The DSA is available from the contact above."
    for passage in split_entry(entry, one_token_per_word, 128):
        assert body_of(passage.text) == passage.body, passage.text[:60]


@pytest.mark.parametrize("words", [300, 2_000, 9_000])
def test_long_sections_are_cut_into_overlapping_windows_that_fit(words):
    max_tokens = 128
    passages = split_entry(long_entry(words), one_token_per_word, max_tokens)
    lessons = [p for p in passages if p.section == "Lessons"]
    assert len(lessons) > 1
    for p in passages:
        assert len(p.text.split()) + 2 <= max_tokens  # [CLS] and [SEP] included
    covered = set()
    for p in lessons:
        covered.update(p.body.split())
    assert covered == {f"w{i}" for i in range(words)}  # nothing lost, not even past the window
    first, second = lessons[0].body.split(), lessons[1].body.split()
    assert set(first) & set(second)  # windows overlap, so a sentence across a cut is still found


def test_a_long_summary_is_windowed_too():
    entry = long_entry(10)
    entry.summary = " ".join(f"s{i}" for i in range(300))
    passages = split_entry(entry, one_token_per_word, 128)
    summary = [p for p in passages if p.section == "Summary"]
    assert len(summary) > 2 and all(p.text.startswith("Long lesson\n") for p in summary)
    assert {w for p in summary for w in p.body.split()} == {f"s{i}" for i in range(300)}
    assert all(len(p.text.split()) + 2 <= 128 for p in passages)


def test_token_counts_come_from_the_tokenizer():
    # A word worth many tokens takes more room: fewer words per window.
    heavy = split_entry(long_entry(400), lambda ws: [4] * len(ws), 128)
    light = split_entry(long_entry(400), one_token_per_word, 128)
    assert len(heavy) > len(light)


@pytest.mark.model
def test_real_tokenizer_windows_fit_the_model(real_embedder):
    text = "The MSL-ATLO-2011 anomaly (ref. NPR 7120.5E) was traced to a mis-wired J3/J4 connector. " * 200
    entry = Entry(
        id="x",
        title="Connector anomaly",
        summary="s",
        kind="project",
        outcome="failed",
        organisation="o",
        sections={"What happened": text},
    )
    passages = split_entry(entry, real_embedder.count_tokens, real_embedder.max_tokens)
    assert len(passages) > 5
    tokenizer = real_embedder.model.tokenizer
    for p in passages:
        assert len(tokenizer(p.text)["input_ids"]) <= real_embedder.max_tokens


def test_a_passage_id_is_spelled_and_read_in_one_place():
    from kb.passages import PassageId

    assert PassageId.of("benefits-pilot", 3) == "benefits-pilot#3" == str(PassageId("benefits-pilot", 3))
    assert PassageId.parse("benefits-pilot#3") == PassageId("benefits-pilot", 3)
    assert PassageId.entry_of("benefits-pilot#3") == "benefits-pilot"
    for not_an_id in ("benefits-pilot", "#3", "benefits-pilot#", "benefits-pilot#three", ""):
        assert PassageId.parse(not_an_id) is None, not_an_id
