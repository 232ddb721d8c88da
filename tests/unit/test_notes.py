"""Evidence notes: their files, validation, access rules, history, indexing, recurrence and the ranking of
lessons we keep re-learning."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from click.testing import CliRunner

from kb import KnowledgeBase, NotFound, evidence
from kb.access import ANONYMOUS, member_of
from kb.cli import cli
from kb.errors import EntryError, Forbidden
from kb.identity import CONTRIBUTOR, CURATOR, REVIEWER, User
from kb.notes import NOTES_DIR, NoteStore, parse_note, recurrence, render_note
from kb.store import EntryStore

FLOOD = "flood-response-data-cell"  # public, Environment and Rural Agency, started 2024
SECRET = "quetzal-ledger-pilot"
NOTE_WORDS = "xylophone marmalade outage"  # words no sample entry holds

ANA = User("Ana Okafor", "Northfield City Council", (CONTRIBUTOR,), local=False)
BEN = User("Ben Price", "Home Affairs Department", (CONTRIBUTOR,), local=False)
REVIEWER_USER = User("Rae Reviewer", "Cabinet Digital Office", (REVIEWER,), local=False)
CURATOR_USER = User("Cy Curator", "Cabinet Digital Office", (CURATOR,), local=False)
READER = member_of("Department for Transport and Infrastructure")
OWNER = member_of("Revenue and Customs Office")


@pytest.fixture
def secret_kb(entries_dir, settings, fake_embedder):
    (entries_dir / f"{SECRET}.md").write_text(
        f"---\nid: {SECRET}\ntitle: Quetzal ledger pilot\nsummary: A ledger reconciliation pilot.\n"
        "kind: experiment\noutcome: failed\norganisation: Revenue and Customs Office\nstatus: published\n"
        "visibility: organisation\n---\n## Lessons\n\nReconcile early.\n"
    )
    base = KnowledgeBase(settings, embedder=fake_embedder)
    base.sync()
    return base


def note_file(folder, name, text):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(text, encoding="utf-8")


GOOD = "---\norganisation: Northfield City Council\nyear: 2021\nanonymous: false\ncreated: 2026-01-05T10:00:00+00:00\n---\nOur flood cell had the same late data.\n"


# --------------------------------------------------------------------------- files and validation


def test_a_note_round_trips_through_its_file(kb):
    note = evidence.add_note(kb, FLOOD, text="We hit this too.", year=2022, link="https://example.org/x", viewer=ANA)
    path = kb.settings.entries_dir / NOTES_DIR / FLOOD / f"{note.id}.md"
    assert path.is_file()
    again = parse_note(path.read_text(), path.name, entry_id=FLOOD, note_id=note.id)
    assert again == note
    assert again.organisation == "Northfield City Council" and again.author == "Ana Okafor"
    assert render_note(again) == path.read_text()


def test_a_bad_note_file_is_named_with_its_field_and_the_good_ones_still_load(kb):
    folder = kb.settings.entries_dir / NOTES_DIR / FLOOD
    note_file(folder, "20260105-aaaaaa.md", GOOD)
    note_file(folder, "20260105-bbbbbb.md", GOOD.replace("year: 2021", "year: nineteen"))
    note_file(folder, "20260105-cccccc.md", GOOD.replace("anonymous: false", "anonymous: false\ncolour: red"))
    note_file(folder, "not-a-note.md", GOOD)
    notes, problems = NoteStore(kb.settings.entries_dir).notes(FLOOD)
    assert [n.id for n in notes] == ["20260105-aaaaaa"]
    by_file = {p.source.rsplit("/", 1)[-1]: p for p in problems}
    assert by_file["20260105-bbbbbb.md"].field == "year" and "four digits" in by_file["20260105-bbbbbb.md"].message
    assert (
        by_file["20260105-cccccc.md"].field == "colour" and "not a note field" in by_file["20260105-cccccc.md"].message
    )
    assert by_file["not-a-note.md"].field == "id"
    assert all(p.source.startswith(f"{NOTES_DIR}/{FLOOD}/") for p in problems)
    checked = {str(p) for p in kb.check()}  # `python -m kb check` reports them too
    assert any("20260105-bbbbbb.md, field 'year'" in p for p in checked)


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"text": "  "}, "text"),
        ({"year": 1492}, "year"),
        ({"year": "soon"}, "year"),
        ({"link": "javascript:alert(1)"}, "link"),
        ({"organisation": ""}, "organisation"),
    ],
)
def test_a_bad_note_is_refused_naming_its_field(kb, fields, field):
    values = {"text": "We hit this too.", "year": 2022, "organisation": ANA.organisation} | fields
    with pytest.raises(EntryError) as caught:
        evidence.add_note(kb, FLOOD, viewer=ANA, **values)
    assert [p.field for p in caught.value.problems] == [field]
    assert not (kb.settings.entries_dir / NOTES_DIR / FLOOD).exists()


def test_notes_are_not_entries_and_never_change_the_entry(kb):
    before = (kb.settings.entries_dir / f"{FLOOD}.md").read_bytes()
    evidence.add_note(kb, FLOOD, text="Same here.", year=2023, viewer=ANA)
    assert (kb.settings.entries_dir / f"{FLOOD}.md").read_bytes() == before
    assert kb.store.history(FLOOD) == []
    files = EntryStore(kb.settings.entries_dir).files()
    assert not any(NOTES_DIR in str(p) for p in files)
    assert kb.get(FLOOD).status == "published"


# --------------------------------------------------------------------------- access


def test_notes_on_an_entry_you_cannot_see_do_not_exist_for_you(secret_kb):
    evidence.add_note(
        secret_kb, SECRET, text="We hit this too.", year=2024, viewer=None, organisation="Border and Trade Agency"
    )
    assert len(evidence.notes(secret_kb, SECRET, viewer=OWNER)) == 1
    for viewer in (READER, ANONYMOUS, BEN):
        with pytest.raises(NotFound) as hidden:
            evidence.notes(secret_kb, SECRET, viewer=viewer)
        with pytest.raises(NotFound) as missing:
            evidence.notes(secret_kb, "no-such-entry", viewer=viewer)
        assert str(hidden.value) == str(missing.value).replace("no-such-entry", SECRET)
    with pytest.raises(NotFound):
        evidence.add_note(secret_kb, SECRET, text="Sneaky.", year=2024, viewer=BEN)
    assert evidence.notes_since(secret_kb, dt.datetime(2000, 1, 1), viewer=BEN) == []
    assert len(evidence.notes_since(secret_kb, dt.datetime(2000, 1, 1), viewer=OWNER)) == 1


def test_only_signed_in_contributors_add_notes(kb):
    with pytest.raises(Forbidden):
        evidence.add_note(kb, FLOOD, text="Hi", year=2024, viewer=ANONYMOUS)
    with pytest.raises(Forbidden):
        evidence.add_note(kb, FLOOD, text="Hi", year=2024, viewer=READER)  # a reader with no contributor role


def test_an_anonymous_note_names_nobody_to_readers(kb):
    evidence.add_note(kb, FLOOD, text="Ours failed the same way.", year=2020, anonymous=True, viewer=BEN)
    seen = evidence.notes(kb, FLOOD, viewer=READER)[0]
    assert seen.organisation == "" and seen.author == "" and seen.text == "Ours failed the same way."
    for viewer in (BEN, REVIEWER_USER, None):
        assert evidence.notes(kb, FLOOD, viewer=viewer)[0].organisation == "Home Affairs Department"
    # nor through the recurrence count: readers are not told of a second organisation
    assert evidence.recurrence(kb, FLOOD, viewer=READER).organisations == 1
    assert evidence.recurrence(kb, FLOOD, viewer=REVIEWER_USER).organisations == 2
    assert str(evidence.recurrence(kb, FLOOD, viewer=READER)) == "seen in 1 organisation since 2020"
    # nor through search: the passage is what every reader is shown
    hits = kb.search("Ours failed the same way", mode="bm25", viewer=READER)
    note_hits = [h for h in hits if h.section == "Evidence from others"]
    assert note_hits and "Home Affairs" not in note_hits[0].passage
    assert evidence.notes_since(kb, dt.datetime(2000, 1, 1), viewer=READER)[0].organisation == ""


def test_editing_and_withdrawing_a_note_keep_its_history(kb):
    note = evidence.add_note(kb, FLOOD, text="First words.", year=2021, viewer=ANA)
    with pytest.raises(Forbidden):
        evidence.edit_note(kb, FLOOD, note.id, text="Not mine.", viewer=BEN)
    evidence.edit_note(kb, FLOOD, note.id, text="Better words.", anonymous=True, viewer=ANA)
    assert [n.text for n in evidence.notes(kb, FLOOD)] == ["Better words."]
    history = evidence.note_history(kb, FLOOD, note.id, viewer=ANA)
    assert [v.note.text for v in history] == ["First words."] and history[0].note.organisation == ANA.organisation
    # the note is anonymous now: its earlier, named version names nobody to a reader either
    read = evidence.note_history(kb, FLOOD, note.id, viewer=READER)
    assert read[0].note.text == "First words." and read[0].note.organisation == "" and read[0].note.author == ""
    evidence.withdraw_note(kb, FLOOD, note.id, viewer=CURATOR_USER)
    assert evidence.notes(kb, FLOOD) == []
    withdrawn = evidence.note_history(kb, FLOOD, note.id, viewer=ANA)
    assert [v.note.text for v in withdrawn] == ["Better words.", "First words."]
    with pytest.raises(NotFound):  # a withdrawn note's history is its author's and the reviewers'
        evidence.note_history(kb, FLOOD, note.id, viewer=READER)
    assert len(evidence.note_history(kb, FLOOD, note.id, viewer=REVIEWER_USER)) == 2


def test_note_history_follows_the_entrys_visibility(secret_kb):
    note = evidence.add_note(
        secret_kb, SECRET, text="One.", year=2024, organisation="Revenue and Customs Office", viewer=None
    )
    evidence.edit_note(secret_kb, SECRET, note.id, text="Two.")
    assert len(evidence.note_history(secret_kb, SECRET, note.id, viewer=OWNER)) == 1
    with pytest.raises(NotFound):
        evidence.note_history(secret_kb, SECRET, note.id, viewer=READER)


# --------------------------------------------------------------------------- indexing


@pytest.mark.parametrize("mode", ["bm25", "hybrid"])
def test_a_search_for_a_notes_words_finds_its_entry(kb, mode):
    assert all(h.id != FLOOD for h in kb.search(NOTE_WORDS, mode="bm25"))
    evidence.add_note(kb, FLOOD, text=f"The {NOTE_WORDS} hit our team as well.", year=2022, viewer=ANA)
    hit = kb.search(NOTE_WORDS, mode=mode, viewer=READER)[0]
    assert hit.id == FLOOD and hit.section == "Evidence from others"
    assert "Northfield City Council" in hit.passage


def test_a_note_costs_one_entrys_index_update_and_sync_agrees(kb, monkeypatch):
    indexed = []
    original = kb.indexer.index_entries
    monkeypatch.setattr(
        kb.indexer, "index_entries", lambda ids, **options: (indexed.append(list(ids)), original(ids, **options))[1]
    )
    note = evidence.add_note(kb, FLOOD, text=f"The {NOTE_WORDS}.", year=2022, viewer=ANA)
    assert indexed == [[FLOOD]]
    assert not kb.sync().changed  # the ledger knows the note: nothing to do
    evidence.withdraw_note(kb, FLOOD, note.id, viewer=ANA)
    assert all(h.id != FLOOD for h in kb.search(NOTE_WORDS, mode="bm25"))


def test_a_note_file_arriving_with_git_is_indexed_by_sync(kb):
    note_file(kb.settings.entries_dir / NOTES_DIR / FLOOD, "20260105-aaaaaa.md", GOOD.replace("Our", NOTE_WORDS))
    report = kb.sync()
    assert report.updated == [FLOOD]
    assert kb.search(NOTE_WORDS, mode="bm25")[0].id == FLOOD


# --------------------------------------------------------------------------- recurrence and insights


def test_recurrence_counts_distinct_organisations_since_the_earliest_year(kb):
    for who, year in ((ANA, 2019), (BEN, 2025), (ANA, 2022)):
        evidence.add_note(kb, FLOOD, text="Same.", year=year, viewer=who)
    # The operator records a note for the entry's own organisation, written another way.
    evidence.add_note(kb, FLOOD, text="Same.", year=2023, organisation="environment and rural  agency")
    seen = evidence.recurrence(kb, FLOOD, viewer=READER)
    assert (seen.organisations, seen.since, seen.notes) == (3, 2019, 4)
    assert str(seen) == "seen in 3 organisations since 2019"
    assert str(recurrence("Solo Office", 2024, [])) == "seen in 1 organisation since 2024"


def test_lessons_we_keep_relearning_rank_notes_and_near_duplicates(kb, monkeypatch):
    from kb import insights, relevance

    evidence.add_note(kb, FLOOD, text="Same.", year=2022, viewer=ANA)
    evidence.add_note(kb, FLOOD, text="Same again.", year=2023, viewer=BEN)
    other = "mainframe-blocked-pension-data-share"
    evidence.add_note(kb, other, text="Us too.", year=2023, viewer=BEN)
    monkeypatch.setitem(relevance.CLOSE_SIMILARITY, kb.embedder.name, 2.0)  # nothing is that close
    table = insights.relearned(kb, viewer=READER)
    assert list(table["id"][:2]) == [FLOOD, other]
    assert list(table["notes"][:2]) == [2, 1] and set(table["near_duplicates"]) == {0}
    # with a threshold every similar entry passes, near-duplicates from other organisations count too
    monkeypatch.setitem(relevance.CLOSE_SIMILARITY, kb.embedder.name, -1.0)
    table = insights.relearned(kb, viewer=READER)
    row = table.set_index("id").loc[FLOOD]
    assert row["near_duplicates"] > 0 and row["score"] == row["notes"] + row["near_duplicates"]
    assert list(table["score"]) == sorted(table["score"], reverse=True)


def test_relearning_ranks_only_what_the_viewer_may_see(secret_kb, monkeypatch):
    from kb import insights

    evidence.add_note(secret_kb, SECRET, text="Same.", year=2022, organisation="Border and Trade Agency")
    assert SECRET in set(insights.relearned(secret_kb, viewer=OWNER)["id"])
    assert SECRET not in set(insights.relearned(secret_kb, viewer=READER)["id"])


# --------------------------------------------------------------------------- command line


def test_the_command_line_adds_and_lists_notes(kb):
    runner = CliRunner()
    args = ["--entries", str(kb.settings.entries_dir), "--index", str(kb.settings.index_dir)]
    done = runner.invoke(
        cli,
        [*args, "note", "add", FLOOD, "--organisation", "Northfield City Council", "--year", "2021", "--text", "Same."],
    )
    assert done.exit_code == 0, done.output
    listed = runner.invoke(cli, [*args, "note", "list", FLOOD])
    assert "Northfield City Council, 2021" in listed.output and "seen in 2 organisations since 2021" in listed.output
    bad = runner.invoke(cli, [*args, "note", "add", FLOOD, "--organisation", "X", "--year", "never", "--text", "t"])
    assert bad.exit_code == 1 and "field 'year'" in bad.output and "Traceback" not in bad.output


def test_the_command_line_edits_a_note_and_shows_its_history(kb):
    runner = CliRunner()
    args = ["--entries", str(kb.settings.entries_dir), "--index", str(kb.settings.index_dir)]
    added = evidence.add_note(kb, FLOOD, text="Same late data.", year=2021, organisation="Northfield City Council")
    nothing = runner.invoke(cli, [*args, "note", "edit", FLOOD, added.id])
    assert nothing.exit_code == 2 and "say what to change" in nothing.output
    done = runner.invoke(cli, [*args, "note", "edit", FLOOD, added.id, "--year", "2022", "--anonymous"])
    assert done.exit_code == 0, done.output
    assert [(n.year, n.anonymous, n.text) for n in evidence.notes(kb, FLOOD)] == [(2022, True, "Same late data.")]
    history = runner.invoke(cli, [*args, "note", "history", FLOOD, added.id, "--as", "anonymous", "--json"])
    assert history.exit_code == 0, history.output
    versions = json.loads(history.output)
    assert [(v["note"]["year"], v["note"]["organisation"]) for v in versions] == [(2021, "")]
    bad = runner.invoke(cli, [*args, "note", "edit", FLOOD, added.id, "--link", "ftp://x"])
    assert bad.exit_code == 1 and "link" in bad.output and "Traceback" not in bad.output
    missing = runner.invoke(cli, [*args, "note", "history", FLOOD, "20200101-abcdef"])
    assert missing.exit_code == 1 and "no note with id" in missing.output


def test_a_note_speaks_only_for_its_author_s_own_organisation(kb):
    """Otherwise one person could make a lesson look "seen in five organisations"."""
    kb.sync()
    with pytest.raises(Forbidden, match="as a member of Northfield City Council"):
        evidence.add_note(
            kb, FLOOD, text="We saw it too.", year=2024, organisation="Home Affairs Department", viewer=ANA
        )
    assert evidence.notes(kb, FLOOD, viewer=ANA) == []
    mine = evidence.add_note(
        kb, FLOOD, text="We saw it too.", year=2024, organisation=" northfield city council", viewer=ANA
    )
    assert mine.organisation.strip().casefold() == "northfield city council"
    local = User("Local curator", "Cabinet Digital Office", (CONTRIBUTOR, CURATOR), local=True)
    told = evidence.add_note(
        kb, FLOOD, text="A colleague's account.", year=2023, organisation="Home Affairs Department", viewer=local
    )
    assert told.organisation == "Home Affairs Department"  # the local user of a copy curates it
