"""The submit page through AppTest: a draft saves half-done, sending it for review shows an error summary that
links to each field, rejected links are never links, "Add your evidence" keeps the draft, the form asks
before it discards unsaved work, and what is said after a save names no file."""

from __future__ import annotations

import html
import re
from urllib.parse import parse_qs

import pytest
from markdown_it import MarkdownIt

from app_pages.ui import plain, unlinked
from kb.own_work import YOUR_WORK
from kb.store import EntryStore
from tests.app.test_app import assert_clean, button, linked_ids, open_app, page, texts

TITLE = "Finding young carers by matching school and health records"
SUMMARY = "We matched school and health records to find young carers early."
NEW_ID = "finding-young-carers-by-matching-school-and-health-records"
BAD_LINKS = ["javascript:alert(document.cookie)", "http://evil.example/my report.pdf"]
# A file name, a folder or an absolute path, in a message meant for a person.
PATHS = re.compile(r"entries/|\.md\b|(?<![\w:/])/[\w.-]+/")


def summary_box(at):
    """The error summary: an error titled "There is a problem", or None."""
    found = [e for e in at.error if e.proto.title == "There is a problem"]
    assert len(found) <= 1
    return found[0] if found else None


def summary_links(at) -> list[tuple[str, str]]:
    """(Markdown link text, anchor) of each item in the error summary, in order."""
    return re.findall(r"^- \[(.*)\]\(#([\w-]+)\)$", summary_box(at).value, re.M)


def html_with_id(at, anchor: str) -> str:
    found = [h.value for h in at.get("html") if f'id="{anchor}"' in h.value]
    assert len(found) == 1, f"one place has the id {anchor!r}"
    return found[0]


def messages(at) -> str:
    """Every message on the page (the sidebar's own notes aside): alerts, toasts and captions, as a reader
    sees them (escapes removed)."""
    kinds = ("success", "info", "warning", "error", "caption")
    shown = [str(e.value) for kind in kinds for e in at.main.get(kind)] + [str(t.value) for t in at.toast]
    return "\n".join(shown).replace("\\", "")


def test_a_draft_with_only_a_title_is_saved_and_keeps_what_was_typed(entries_dir):
    at = open_app("submit")
    at.text_input(key="draft_title").input(TITLE)
    at.text_input(key="draft_team").input("Young carers team")
    at.text_input(key="draft_started").input("2024-03")
    at.text_area(key="draft_section_1").input("Matched two registers by hand.")  # What we did
    at.text_area(key="draft_links").input("see the shared drive")  # checked once it is sent for review
    button(at, "Save as draft").click().run()
    assert_clean(at)
    assert summary_box(at) is None
    saved = EntryStore(entries_dir).get(NEW_ID)
    assert (saved.status, saved.summary, saved.outcome) == ("draft", "", "")
    assert (saved.team, saved.started, saved.links) == ("Young carers team", "2024-03", ["see the shared drive"])
    assert saved.sections == {"What we did": "Matched two registers by hand."}
    assert at.title[0].value == plain(TITLE), "the entry opens"
    assert "Saved as a draft" in messages(at)

    at.switch_page(page("submit")).run()  # where the confirmation said it would be
    assert at.text_input(key="draft_title").value == "", "a saved draft leaves a fresh form"
    assert any(e.label == f"{YOUR_WORK} (1)" for e in at.expander)
    assert NEW_ID in linked_ids(at)
    at.query_params.update({"edit": NEW_ID})
    at.run()
    assert at.text_input(key="draft_team").value == "Young carers team"
    assert at.text_area(key="draft_links").value == "see the shared drive"


def test_sending_for_review_shows_a_summary_that_links_to_each_field(entries_dir):
    before = sorted(p.read_text() for p in entries_dir.glob("*.md"))
    at = open_app("submit")
    at.text_input(key="draft_title").input(TITLE)
    at.text_input(key="draft_organisation").input("")
    assert summary_box(at) is None, "no problem before a save"
    button(at, "Send for review").click().run()
    assert_clean(at)
    assert sorted(p.read_text() for p in entries_dir.glob("*.md")) == before
    links = summary_links(at)
    anchors = [anchor for _, anchor in links]
    assert anchors == [
        "problem-draft-summary",
        "problem-draft-organisation",
        "problem-draft-outcome",
        "problem-draft-section-5",  # Lessons
    ], "in the order of the form"
    assert links[0][0] == plain("Write a summary of one to three sentences.")
    for text, anchor in links:  # each message is at its field too, where the link goes
        at_field = html_with_id(at, anchor)
        assert "Error: </span>" in at_field and 'class="lh-field-error"' in at_field
        assert text.replace("\\", "") in at_field
    assert 'data-field="st-key-draft_section_5"' in html_with_id(at, "problem-draft-section-5")
    page_html = "\n".join(h.value for h in at.get("html"))
    assert ".st-key-draft_summary, .st-key-draft_organisation" in page_html, "the fields are marked"
    assert "<script" in page_html and "summary.focus(" in page_html, "focus moves to the summary"
    assert at.text_input(key="draft_title").value == TITLE, "what was typed stays"

    at.text_area(key="draft_summary").input(SUMMARY).run()  # any other change: focus is left alone
    assert summary_box(at) is not None
    assert "<script" not in "\n".join(h.value for h in at.get("html"))


def test_a_rejected_link_is_shown_as_text_never_as_a_link(entries_dir):
    at = open_app("submit")
    at.text_input(key="draft_title").input(TITLE)
    at.text_area(key="draft_links").input("\n".join(["https://www.gov.uk/young-carers", *BAD_LINKS]))
    button(at, "Send for review").click().run()
    assert_clean(at)
    link_messages = [text for text, anchor in summary_links(at) if anchor == "problem-draft-links"]
    assert [m.replace("\\", "") for m in link_messages] == [
        f"“{link}” is not a web address. Give each link in full, starting with https://" for link in BAD_LINKS
    ]
    at_field = html_with_id(at, "problem-draft-links")
    for link in BAD_LINKS:
        assert f"“{link}”" in at_field, "quoted back as typed, as escaped text"
    assert "<a" not in at_field and "href" not in at_field
    # Markdown can only make a link of these from their scheme as typed: it is never in a Markdown surface
    for element in [*at.main, *at.sidebar]:
        proto = getattr(element, "proto", None)
        if proto is None or proto.DESCRIPTOR.name == "Html":  # checked above: escaped, with no link
            continue
        for text in (getattr(proto, name, "") for name in ("body", "label", "help")):
            if isinstance(text, str):
                assert "javascript:" not in text.lower() and "http://evil" not in text, text


def test_add_your_evidence_keeps_the_draft_and_says_what_to_do(entries_dir):
    at = open_app("submit")
    at.text_input(key="draft_title").input(TITLE)
    at.text_area(key="draft_summary").input(SUMMARY)
    at.run()
    evidence = [b for b in at.button if b.label == "Add your evidence to this entry"]
    assert evidence, "the similar entries offer it"
    other = evidence[0].key.removeprefix("evidence_")
    evidence[0].click().run()
    assert_clean(at)
    assert at.text_input(key="draft_title").value == TITLE
    assert at.text_area(key="draft_summary").value == SUMMARY
    assert "edit" not in at.query_params and at.title[0].value == "Submit an entry"
    assert "Your draft is kept here" in texts(at, "info")
    assert f"[Open that entry in a new tab](entry?id={other})" in texts(at, "markdown")


def test_opening_another_entry_asks_before_discarding_the_draft(entries_dir):
    at = open_app("submit")
    at.text_input(key="draft_title").input(TITLE)
    at.text_area(key="draft_summary").input(SUMMARY)
    at.run()
    at.query_params.update({"edit": "flood-response-data-cell"})  # e.g. "Edit that entry", or a link
    at.run()
    assert at.title[0].value == "Discard your draft?"
    assert plain(TITLE) in texts(at, "warning")
    button(at, "Keep my draft").click().run()
    assert "edit" not in at.query_params
    assert at.text_input(key="draft_title").value == TITLE and at.text_area(key="draft_summary").value == SUMMARY

    at.query_params.update({"edit": "flood-response-data-cell"})
    at.run()
    button(at, "Discard my draft").click().run()
    assert_clean(at)
    flood = EntryStore(entries_dir).get("flood-response-data-cell")
    assert at.text_input(key="draft_title").value == flood.title


def test_clear_the_form_asks_first(entries_dir):
    at = open_app("submit")
    assert not [b for b in at.button if b.label == "Clear the form"], "nothing to clear yet"
    at.text_input(key="draft_title").input(TITLE).run()
    button(at, "Clear the form").click().run()
    assert at.title[0].value == "Discard your draft?"
    button(at, "Keep my draft").click().run()
    assert at.text_input(key="draft_title").value == TITLE
    button(at, "Clear the form").click().run()
    button(at, "Discard my draft").click().run()
    assert at.text_input(key="draft_title").value == ""


def test_the_draft_is_kept_while_you_look_at_another_page(entries_dir):
    at = open_app("submit")
    at.text_input(key="draft_title").input(TITLE)
    at.text_area(key="draft_summary").input(SUMMARY)
    at.run()
    at.switch_page(page("search")).run()
    at.switch_page(page("submit")).run()
    assert at.text_input(key="draft_title").value == TITLE
    assert at.text_area(key="draft_summary").value == SUMMARY


def fill_in_everything(at):
    at.text_input(key="draft_title").input(TITLE)
    at.text_area(key="draft_summary").input(SUMMARY)
    at.text_input(key="draft_organisation").input("Office for Tests")
    at.selectbox(key="draft_outcome").select("partial")
    at.text_area(key="draft_section_5").input("Agree the legal basis before you touch the data.")
    at.text_area(key="draft_links").input("https://www.gov.uk/young-carers")
    return at


@pytest.mark.parametrize(
    ("label", "said"),
    [
        ("Save as draft", "Saved as a draft. Only you and reviewers can see it."),
        ("Send for review", "Sent for review: another reviewer will look at it"),  # the local user reviews too
    ],
)
def test_what_is_said_after_saving_names_no_file(entries_dir, label, said):
    at = fill_in_everything(open_app("submit"))
    button(at, label).click().run()
    assert_clean(at)
    shown = messages(at)
    assert said in shown and f"“{YOUR_WORK}” on the Submit page" in shown
    assert [t.value for t in at.toast], "a toast says it too"
    assert not PATHS.search(shown), PATHS.search(shown)
    assert NEW_ID not in shown, "nor the entry's id (its file name)"


def test_an_edit_waiting_for_review_says_readers_see_the_published_version(entries_dir, monkeypatch):
    entry = EntryStore(entries_dir).get("flood-response-data-cell")
    monkeypatch.setenv("KB_USER_ROLES", "contributor")
    monkeypatch.setenv("KB_USER_ORGANISATION", entry.organisation)
    at = open_app("submit", edit=entry.id)
    at.text_area(key="draft_summary").input("A summary rewritten in the form.")
    button(at, "Send for review").click().run()
    assert_clean(at)
    shown = messages(at)
    assert "Your edit is sent for review" in shown and "published version" in shown
    assert not PATHS.search(shown)
    assert EntryStore(entries_dir).get(entry.id).summary == entry.summary


def test_the_evidence_link_opens_the_entry_page(entries_dir):
    """The link is relative to the submit page, so it opens the entry page under any base path."""
    at = open_app("submit")
    at.text_input(key="draft_title").input(TITLE)
    at.text_area(key="draft_summary").input(SUMMARY)
    at.run()
    [b for b in at.button if b.label == "Add your evidence to this entry"][0].click().run()
    link = re.search(r"\]\((entry\?[^)]+)\)", texts(at, "markdown")).group(1)
    assert parse_qs(link.split("?", 1)[1])["id"][0] in linked_ids(at)


def test_the_entry_page_links_only_what_the_form_would_accept(entries_dir):
    """One rule for what a web address is: a link the form rejects is text on the entry page too, in a code
    span (Streamlit's Markdown would turn an escaped `http://...` into a link)."""
    rejected = [*BAD_LINKS, "https://www.gov.uk@evil.example/login"]  # the last one looks like GOV.UK's
    path = entries_dir / "flood-response-data-cell.md"
    links = "links:\n" + "".join(f"- '{link}'\n" for link in ["https://www.gov.uk/flood", *rejected])
    path.write_text(path.read_text().replace("\n---\n", f"\n{links}---\n", 1))
    at = open_app("entry", id="flood-response-data-cell")
    assert_clean(at)
    listed = next(m.value for m in at.markdown if "gov.uk/flood" in m.value)
    assert listed.splitlines() == ["- <https://www.gov.uk/flood>", *(f"- `{link}`" for link in rejected)]


@pytest.mark.parametrize(
    "text", ["http://evil.example/my report.pdf", "www.evil.example", "a `tick` and ``two``", "`edge`", "x <b> & y"]
)
def test_unlinked_text_is_a_code_span_that_shows_it_as_typed(text):
    rendered = MarkdownIt("commonmark").render(unlinked(text))
    assert rendered == f"<p><code>{html.escape(text, quote=False)}</code></p>\n"


def test_saving_an_archived_entry_keeps_it_archived_and_says_so(entries_dir):
    path = entries_dir / "flood-response-data-cell.md"
    path.write_text(path.read_text().replace("status: published", "status: archived", 1))
    at = open_app("submit", edit="flood-response-data-cell")  # the local user is a curator
    at.text_area(key="draft_summary").input("A summary rewritten in the form.")
    button(at, "Save, keep archived").click().run()
    assert_clean(at)
    assert EntryStore(entries_dir).get("flood-response-data-cell").status == "archived"
    assert "Saved. The entry stays archived with your changes." in messages(at)


def test_undo_my_changes_goes_back_to_the_saved_entry_after_asking(entries_dir):
    saved = EntryStore(entries_dir).get("flood-response-data-cell")
    at = open_app("submit", edit=saved.id)
    assert not [b for b in at.button if b.label == "Undo my changes"]
    at.text_area(key="draft_summary").input("A summary rewritten in the form.").run()
    button(at, "Undo my changes").click().run()
    assert at.title[0].value == "Discard your draft?"
    assert "start again from the entry as it is saved" in texts(at, "warning")
    button(at, "Discard my draft").click().run()
    assert_clean(at)
    assert at.text_area(key="draft_summary").value == saved.summary
    assert at.query_params["edit"] == saved.id


def test_a_typed_title_is_shown_escaped_when_asking_and_in_your_work(entries_dir):
    from tests.app.test_escaping import assert_no_image, image

    hostile = f"Quokka draft {image('typed-title')}"
    at = open_app("submit")
    at.text_input(key="draft_title").input(hostile)
    button(at, "Save as draft").click().run()
    at.switch_page(page("submit")).run()
    assert any(e.label == f"{YOUR_WORK} (1)" for e in at.expander)
    assert_no_image(at)
    at.text_input(key="draft_title").input(hostile).run()
    at.query_params.update({"edit": "flood-response-data-cell"})
    at.run()
    assert at.title[0].value == "Discard your draft?" and plain(hostile) in texts(at, "warning")
    assert_no_image(at)


def test_the_form_never_offers_not_recorded_but_an_imported_entry_keeps_it(entries_dir):
    at = open_app("submit")
    outcomes = next(s for s in at.selectbox if s.label == "Outcome")
    assert "Not recorded" not in [outcomes.format_func(o) for o in outcomes.options]
    assert "Failed" in [outcomes.format_func(o) for o in outcomes.options]
    store = EntryStore(entries_dir)
    entry = store.get("flood-response-data-cell")
    entry.outcome = "not-recorded"  # as an import of a register without outcomes writes it
    store.write(entry)
    at = open_app("submit", edit="flood-response-data-cell")
    outcomes = next(s for s in at.selectbox if s.label == "Outcome")
    assert outcomes.value == "not-recorded" and outcomes.format_func(outcomes.value) == "Not recorded"


def test_grading_a_data_source_in_the_form_saves_the_grades_and_editing_shows_them(entries_dir):
    at = open_app("submit")
    at.text_input(key="draft_title").input(TITLE)
    at.text_area(key="draft_data_quality").input(
        "School census (graded 2024-02): accuracy good, timeliness poor (a term late)"
    )
    button(at, "Save as draft").click().run()
    assert_clean(at)
    saved = EntryStore(entries_dir).get(NEW_ID)
    assert saved.data_sources == ["School census"]
    grades = saved.data_quality["School census"]
    assert grades.graded == "2024-02" and grades.grades["timeliness"].note == "a term late"
    at.switch_page(page("submit")).run()
    at.query_params.update({"edit": NEW_ID})
    at.run()
    assert at.text_area(key="draft_data_quality").value == (
        "School census (graded 2024-02): accuracy good, timeliness poor (a term late)"
    )

    at.text_area(key="draft_data_quality").input("School census: accuracy superb")
    button(at, "Save as draft").click().run()
    assert any(anchor == "problem-draft-data-quality" for _, anchor in summary_links(at))
    assert "'superb' is not a rating" in messages(at) or "'superb' is not a rating" in texts(at, "markdown")
    assert EntryStore(entries_dir).get(NEW_ID).data_quality == saved.data_quality  # nothing half-saved
