"""Suggested themes on the submit page through AppTest: they appear once a title and summary say enough,
choosing one adds it to the Themes field, and what was typed is kept."""

from __future__ import annotations

from tests.app.test_app import assert_clean, open_app

TITLE = "Matching records across councils"
SUMMARY = "Record linkage and matching of the same person across datasets, with deduplication."


def suggestions(at) -> list[str]:
    return [b.label for b in at.button if b.label.startswith("Add theme: ")]


def test_suggestions_appear_as_the_draft_is_written_and_add_a_theme(entries_dir):
    at = open_app("submit")
    assert suggestions(at) == [], "nothing to suggest before anything is written"
    at.text_input(key="draft_title").input(TITLE).run()
    at.text_area(key="draft_summary").input(SUMMARY).run()
    assert_clean(at)
    offered = suggestions(at)
    assert len(offered) == 3 and offered[0] == "Add theme: Record linkage and matching", offered

    next(b for b in at.button if b.label == offered[0]).click().run()
    assert_clean(at)
    assert at.multiselect(key="draft_themes").value == ["record-linkage"]
    assert "Add theme: Record linkage and matching" not in suggestions(at), "a chosen theme is not offered again"
    assert len(suggestions(at)) == 3
    assert at.text_input(key="draft_title").value == TITLE
    assert at.text_area(key="draft_summary").value == SUMMARY
    # Fields inside the form keep what was typed in the browser until it is sent (tests/browser).

    second = suggestions(at)[0]
    next(b for b in at.button if b.label == second).click().run()
    assert len(at.multiselect(key="draft_themes").value) == 2, "a second choice adds to the first"
