"""Evidence notes in the app through AppTest: the entry page shows an entry's notes under their own heading
with its recurrence, and adds one; the submit form's duplicate check adds one while the draft is kept."""

from __future__ import annotations

import re

import pytest

from kb import KnowledgeBase, Settings, evidence
from kb.identity import CONTRIBUTOR, User
from kb.notes import NoteStore
from tests.app.test_app import assert_clean, button, open_app, texts

FLOOD = "flood-response-data-cell"  # Environment and Rural Agency, started 2024
TITLE = "Finding young carers by matching school and health records"
SUMMARY = "We matched school and health records to find young carers early."


@pytest.fixture
def local_organisation(monkeypatch):
    monkeypatch.setenv("KB_USER_NAME", "Ana Okafor")
    monkeypatch.setenv("KB_USER_ORGANISATION", "Northfield City Council")


def add(entries_dir, **fields):
    base = KnowledgeBase(Settings())
    who = User(fields.pop("author", "Ben Price"), fields.pop("org", "Home Affairs Department"), (CONTRIBUTOR,), False)
    return evidence.add_note(base, FLOOD, viewer=who, **fields)


def headers(at) -> list[str]:
    return [str(h.value) for h in at.header]


def test_the_entry_page_shows_notes_under_their_heading_with_the_recurrence(entries_dir):
    add(entries_dir, text="Our flood cell met the same late council data.", year=2019)
    add(entries_dir, text="Same gap in our winter response.", year=2022, anonymous=True, author="Cy", org="Secret Org")
    at = open_app("entry", id=FLOOD)
    assert_clean(at)
    assert "Evidence from others" in headers(at)
    shown = texts(at, "markdown")
    assert "Our flood cell met the same late council data." in shown and "**Home Affairs Department**, 2019" in shown
    # the local user curates, so sees an anonymous note's organisation, marked as such, and counts it
    assert "**Secret Org (shared anonymously)**, 2022" in shown
    assert "Seen in 3 organisations since 2019" in shown


def test_the_entry_page_hides_an_anonymous_notes_organisation_from_readers(entries_dir, monkeypatch):
    add(entries_dir, text="Same gap in our winter response.", year=2022, anonymous=True, org="Secret Org")
    monkeypatch.setenv("KB_USER_ROLES", "contributor")
    at = open_app("entry", id=FLOOD)
    shown = texts(at, "markdown")
    assert "Secret Org" not in shown and "Same gap in our winter response." in shown
    assert "organisation that asked not to be named" in shown
    assert "Seen in 1 organisation since 2022" in shown


def test_a_note_added_on_the_entry_page_shows_at_once(entries_dir, local_organisation):
    at = open_app("entry", id=FLOOD)
    assert "Seen in" not in texts(at, "markdown")
    at.text_area(key=f"note_{FLOOD}_text").input("Our council's data arrived late too.")
    at.number_input(key=f"note_{FLOOD}_year").set_value(2021)
    button(at, "Add my evidence").click().run()
    assert_clean(at)
    shown = texts(at, "markdown")
    assert "**Northfield City Council**, 2021" in shown and "Our council's data arrived late too." in shown
    assert "Seen in 2 organisations since 2021" in shown
    [note] = NoteStore(entries_dir).notes(FLOOD)[0]
    assert note.author == "Ana Okafor" and note.organisation == "Northfield City Council"


def test_a_note_with_no_words_is_refused_with_a_message_naming_the_field(entries_dir, local_organisation):
    at = open_app("entry", id=FLOOD)
    button(at, "Add my evidence").click().run()
    assert_clean(at)
    assert "Text: say what happened to you" in texts(at, "error")
    assert NoteStore(entries_dir).notes(FLOOD)[0] == []


def test_a_note_is_changed_on_the_entry_page_and_its_earlier_version_is_shown(entries_dir, local_organisation):
    note = add(
        entries_dir, text="Our data came a week late.", year=2021, author="Ana Okafor", org="Northfield City Council"
    )
    at = open_app("entry", id=FLOOD)
    key = f"change_{FLOOD}_{note.id}"
    assert at.text_area(key=f"{key}_text").value == "Our data came a week late."
    at.text_area(key=f"{key}_text").input("Our data came a month late.")
    button(at, "Save the change").click().run()
    assert_clean(at)
    shown = texts(at, "markdown")
    assert "Our data came a month late." in shown and "Our data came a week late." in shown  # now in its history
    assert re.search(
        r"Replaced on \d+ \w{3} \d{4} at \d\d:\d\d UTC · Northfield City Council, 2021", texts(at, "caption")
    )
    [stored] = NoteStore(entries_dir).notes(FLOOD)[0]
    assert stored.text == "Our data came a month late."


def test_a_bad_change_to_a_note_is_refused_naming_the_field(entries_dir, local_organisation):
    note = add(entries_dir, text="Our data came a week late.", year=2021)
    at = open_app("entry", id=FLOOD)
    at.text_input(key=f"change_{FLOOD}_{note.id}_link").input("javascript:alert(1)")
    button(at, "Save the change").click().run()
    assert_clean(at)
    assert "Link: is not a web address" in texts(at, "error")
    [stored] = NoteStore(entries_dir).notes(FLOOD)[0]
    assert stored.link == "" and stored.text == "Our data came a week late."


def test_a_reader_cannot_change_someone_elses_note(entries_dir, monkeypatch):
    note = add(entries_dir, text="Our data came a week late.", year=2021)
    monkeypatch.setenv("KB_USER_ROLES", "contributor")
    at = open_app("entry", id=FLOOD)
    assert not [b for b in at.button if b.label == "Save the change"]
    assert f"change_{FLOOD}_{note.id}_text" not in [t.key for t in at.text_area]


def test_add_your_evidence_from_the_submit_form_adds_a_note_and_keeps_the_draft(entries_dir, local_organisation):
    at = open_app("submit")
    at.text_input(key="draft_title").input(TITLE)
    at.text_area(key="draft_summary").input(SUMMARY)
    at.run()
    evidence = [b for b in at.button if b.label == "Add your evidence to this entry"]
    other = evidence[0].key.removeprefix("evidence_")
    evidence[0].click().run()
    at.text_area(key=f"evidence_note_{other}_text").input("We matched the same records in 2020 and hit this.")
    at.number_input(key=f"evidence_note_{other}_year").set_value(2020)
    button(at, "Add my evidence").click().run()
    assert_clean(at)
    assert "Your evidence was added to this entry" in texts(at, "success")
    [note] = NoteStore(entries_dir).notes(other)[0]
    assert (note.year, note.organisation) == (2020, "Northfield City Council")
    assert at.text_input(key="draft_title").value == TITLE  # the draft is kept
    assert at.text_area(key="draft_summary").value == SUMMARY
    assert at.title[0].value == "Submit an entry"


def test_insights_ranks_the_lessons_we_keep_relearning(entries_dir):
    at = open_app("insights")
    assert "Lessons we keep re-learning" in headers(at)
    assert "nobody has added evidence" in texts(at, "info")
    add(entries_dir, text="Same.", year=2021)
    add(entries_dir, text="Again.", year=2022, org="Northfield City Council")
    at = open_app("insights")
    assert_clean(at)
    links = [p.proto.label for p in at.get("page_link") if p.proto.query_string == f"id={FLOOD}"]
    assert any("2 evidence notes, 0 near" in label for label in links)


def test_a_note_is_withdrawn_from_the_entry_page_by_whoever_may(entries_dir, local_organisation, monkeypatch):
    add(entries_dir, text="Someone else's note.", year=2020)
    monkeypatch.setenv("KB_USER_ROLES", "contributor")  # not a curator: only their own notes
    at = open_app("entry", id=FLOOD)
    assert not [b for b in at.button if b.label == "Withdraw this note"]
    at.text_area(key=f"note_{FLOOD}_text").input("My own note.")
    button(at, "Add my evidence").click().run()
    [withdraw] = [b for b in at.button if b.label == "Withdraw this note"]
    withdraw.click().run()
    assert_clean(at)
    assert "Your note was withdrawn" in texts(at, "success")
    assert "My own note." not in texts(at, "markdown") and "Someone else's note." in texts(at, "markdown")
    assert [n.text for n in NoteStore(entries_dir).notes(FLOOD)[0]] == ["Someone else's note."]
