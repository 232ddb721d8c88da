"""Drafting: a draft saves half-done with only a title, sending it for review checks everything, links are
checked by one rule, and what the person reads after saving names no file."""

from __future__ import annotations

import re

import pytest

from kb.drafting import FORM_ERROR, Draft, DraftInvalid, build_entry, field_key, save_draft
from kb.entries import is_web_address
from kb.entry_files import entry_from_dict, parse_entry, render_entry
from kb.errors import EntryError, Problem
from kb.identity import User
from kb.own_work import YOUR_WORK, confirmation, own_work

AUTHOR = User("Ada Author", "Office for Tests", ("contributor",), local=False)
OTHER = User("Otto Other", "Office for Tests", ("contributor",), local=False)
REVIEWER = User("Rita Reviewer", "Office for Tests", ("contributor", "reviewer"), local=False)
TITLE = "Matching school and health records to find young carers"

# A file name, a folder or an absolute path, in a message meant for a person.
PATHS = re.compile(r"entries/|\.md\b|(?<![\w:/])/[\w.-]+/")


def half_done(**changes) -> Draft:
    """A draft with a title and a little more, as someone who stopped half-way would leave it."""
    draft = Draft(title=TITLE, kind="", team="Young carers team", started="2024-03", links="http://not a link")
    draft.sections = {"What we did": "Matched two registers by hand."}
    for name, value in changes.items():
        setattr(draft, name, value)
    return draft


def test_a_draft_needs_only_a_title_and_keeps_everything_typed(kb):
    entry = save_draft(kb, half_done(), AUTHOR, status="draft")
    path = kb.store.path_for(entry.id)
    saved, _ = parse_entry(path.read_text(), path.name)  # a valid file, read back as it would be later
    assert (saved.title, saved.status, saved.author) == (TITLE, "draft", AUTHOR.name)
    assert (saved.summary, saved.outcome, saved.organisation, saved.kind) == ("", "", "", "")
    assert (saved.team, saved.started, saved.links) == ("Young carers team", "2024-03", ["http://not a link"])
    assert saved.sections == {"What we did": "Matched two registers by hand."}
    again = Draft.from_entry(saved)  # opened again in the form: everything typed is there
    assert (again.title, again.team, again.links, again.sections) == (
        TITLE,
        "Young carers team",
        "http://not a link",
        {"What we did": "Matched two registers by hand."},
    )


def test_a_draft_without_a_title_is_refused_and_nothing_is_written(kb):
    before = sorted(p.name for p in kb.store.files())
    with pytest.raises(DraftInvalid) as caught:
        save_draft(kb, half_done(title="  "), AUTHOR, status="draft")
    assert set(caught.value.messages) == {"title"}
    assert sorted(p.name for p in kb.store.files()) == before


def test_a_draft_is_refused_what_it_could_not_keep():
    """A date that is not a date cannot be stored as typed, and lighthouse details without a stage would be
    dropped: refused with a message, rather than lost."""
    with pytest.raises(DraftInvalid) as caught:
        build_entry(half_done(started="April 2021", lighthouse_impact="Saved a year"), AUTHOR, status="draft")
    assert set(caught.value.messages) == {"started", "lighthouse_stage"}


def test_sending_the_same_draft_for_review_checks_everything(kb):
    with pytest.raises(DraftInvalid) as caught:
        save_draft(kb, half_done(), AUTHOR, status="in-review")
    messages = caught.value.messages
    assert set(messages) == {"summary", "kind", "outcome", "organisation", "links"}
    assert "is not a web address" in messages["links"][0]
    assert not any(PATHS.search(m) for ms in messages.values() for m in ms)


def test_the_file_format_asks_a_draft_for_its_title_only():
    base = {"id": "x", "title": "X", "status": "draft", "visibility": "public"}
    entry, _ = entry_from_dict(base, "x.md")
    assert entry.summary == "" and entry.outcome == ""
    for status in ("in-review", "published", "archived"):
        with pytest.raises(EntryError) as caught:
            entry_from_dict({**base, "status": status}, "x.md")
        assert {p.field for p in caught.value.problems} == {"summary", "kind", "outcome", "organisation"}
    with pytest.raises(EntryError):
        entry_from_dict({**base, "title": ""}, "x.md")
    # dates in the wrong order are kept in a draft, with a warning, and refused once it is sent
    entry, warnings = entry_from_dict({**base, "started": "2024", "ended": "2023"}, "x.md")
    assert [w.field for w in warnings] == ["ended"]
    assert parse_entry(render_entry(entry), "x.md")[0] == entry


@pytest.mark.parametrize(
    "link",
    [
        "https://www.gov.uk/guidance/data-sharing",
        "http://intranet/reports/2024",
        "https://analysis.example.gov:8443/rap?x=1&y=2#part",
        "https://[2001:db8::1]/report",
    ],
)
def test_web_addresses_are_accepted(link):
    assert is_web_address(link)


@pytest.mark.parametrize(
    "link",
    [
        "javascript:alert(document.cookie)",
        "JavaScript://%0aalert(1)",
        "data:text/html,<script>alert(1)</script>",
        "http://evil.example/my report.pdf",
        "http://evil.example/<script>",
        'https://example.org/"onmouseover="x',
        "https://www.gov.uk@evil.example/",
        "https://example.org:99999/",
        "http://",
        "https:///path-only",
        "www.gov.uk",
        "ftp://files.example.org/x",
        "file:///etc/passwd",
    ],
)
def test_anything_else_is_not_a_web_address(link):
    assert not is_web_address(link)


def test_each_rejected_link_is_quoted_back_in_its_own_message():
    draft = half_done(links="https://www.gov.uk/ok\njavascript:alert(1)\nhttp://evil.example/my report.pdf")
    with pytest.raises(DraftInvalid) as caught:
        build_entry(draft, AUTHOR, status="in-review")
    assert caught.value.messages["links"] == [
        "“javascript:alert(1)” is not a web address. Give each link in full, starting with https://",
        "“http://evil.example/my report.pdf” is not a web address. Give each link in full, starting with https://",
    ]


def test_a_problem_with_a_section_the_form_does_not_show_belongs_to_the_form():
    assert field_key(Problem("x", "too long", field="section 'Lessons'")) == "section:Lessons"
    assert field_key(Problem("x", "too long", field="section 'Appendix'")) == FORM_ERROR


def test_a_problem_found_only_when_writing_is_said_per_field_without_the_file_name(kb, monkeypatch):
    def refuse(entry, **kwargs):
        raise EntryError([Problem(f"{entry.id}.md", "is 9 characters; shorten it", field="phase")])

    monkeypatch.setattr(kb.store, "write", refuse)
    with pytest.raises(DraftInvalid) as caught:
        save_draft(kb, half_done(), AUTHOR, status="draft")
    assert caught.value.messages == {"phase": ["This field is 9 characters; shorten it"]}


def test_what_the_author_reads_after_saving_says_what_happens_next_and_names_no_file(kb):
    draft = save_draft(kb, half_done(), AUTHOR, status="draft")
    said = confirmation(kb, draft, AUTHOR)
    assert said.startswith("Saved as a draft.") and YOUR_WORK in said
    sent = Draft.from_entry(draft)
    sent.summary, sent.outcome, sent.kind, sent.organisation = "We matched records.", "partial", "project", "Office"
    sent.links = "https://www.gov.uk/young-carers"
    entry = save_draft(kb, sent, AUTHOR, status="in-review", edit_id=draft.id)
    said = confirmation(kb, entry, AUTHOR)
    assert said.startswith("Sent for review: a Lighthouse reviewer will look at it") and YOUR_WORK in said
    sent.visibility = "organisation"
    entry = save_draft(kb, sent, AUTHOR, status="in-review", edit_id=draft.id)
    assert "a reviewer from Office will look at it" in confirmation(kb, entry, AUTHOR)
    assert "another reviewer" in confirmation(kb, entry, REVIEWER)
    for saved in (draft, entry):
        for user in (AUTHOR, REVIEWER):
            assert not PATHS.search(confirmation(kb, saved, user)), confirmation(kb, saved, user)


def test_an_edit_of_a_published_entry_says_readers_still_see_the_published_version(kb):
    entry_id = "flood-response-data-cell"
    member = User("Fay Flood", kb.get(entry_id).organisation, ("contributor",), local=False)
    draft = Draft.from_entry(kb.get(entry_id))
    draft.summary = "A new summary."
    for status, opening in (("draft", "Your edit is saved as a draft."), ("in-review", "Your edit is sent for review")):
        saved = save_draft(kb, draft, member, status=status, edit_id=entry_id)
        said = confirmation(kb, saved, member)
        assert said.startswith(opening) and "published version" in said and not PATHS.search(said)
    assert kb.get(entry_id).status == "published"


def test_own_work_lists_the_authors_drafts_submissions_and_pending_edits(kb):
    mine = save_draft(kb, half_done(), AUTHOR, status="draft")
    theirs = save_draft(kb, half_done(title="Someone else's half-done draft"), OTHER, status="draft")
    entry_id = "flood-response-data-cell"
    member = User(AUTHOR.name, kb.get(entry_id).organisation, ("contributor",), local=False)
    edit = Draft.from_entry(kb.get(entry_id))
    edit.summary = "My pending edit."
    save_draft(kb, edit, member, status="in-review", edit_id=entry_id)
    listed = {(w.entry_id, w.status, w.edit) for w in own_work(kb, member)}
    assert listed == {(mine.id, "draft", False), (entry_id, "in-review", True)}
    assert theirs.id not in {w.entry_id for w in own_work(kb, AUTHOR)}
    assert own_work(kb, User("", "", (), local=False)) == []


# --------------------------------------------------------------------------- grading data sources


def test_the_form_grades_a_source_in_words_and_a_graded_source_joins_the_list():
    draft = half_done(
        data_sources=["School census"],
        data_quality="School census: accuracy good (97% matched, by hand), timeliness Poor\n"
        "Health visits (graded 2024-01): completeness fair",
    )
    entry = build_entry(draft, AUTHOR, status="draft", today="2024-05-02")
    assert entry.data_sources == ["School census", "Health visits"]
    census = entry.data_quality["School census"]
    assert census.graded == "2024-05"  # a grade given without a date: this month
    assert [(d, g.rating, g.note) for d, g in census.grades.items()] == [
        ("accuracy", "good", "97% matched, by hand"),
        ("timeliness", "poor", ""),
    ]
    assert entry.data_quality["Health visits"].graded == "2024-01"
    again = Draft.from_entry(entry)  # editing shows the same words, and keeps every grade and date
    assert again.data_quality.splitlines() == [
        "School census (graded 2024-05): accuracy good (97% matched, by hand), timeliness poor",
        "Health visits (graded 2024-01): completeness fair",
    ]
    assert (
        build_entry(again, AUTHOR, status="draft", existing=entry, today="2025-01-01").data_quality
        == entry.data_quality
    )


def test_a_grade_the_form_cannot_read_is_a_message_under_the_field():
    draft = half_done(data_quality="School census: accuracy great\nno colon here\nRegister: speed good")
    with pytest.raises(DraftInvalid) as caught:
        build_entry(draft, AUTHOR, status="draft", today="2024-05-02")
    messages = caught.value.messages["data_quality"]
    assert any(m.startswith("Line 2 ('no colon here') is not a graded source") for m in messages), messages
    assert "School census, accuracy: 'great' is not a rating; use one of: poor, fair, good, excellent" in messages
    assert any(m.startswith("Register, speed: 'speed' is not a dimension") for m in messages), messages
    assert not any(PATHS.search(m) for m in messages)
