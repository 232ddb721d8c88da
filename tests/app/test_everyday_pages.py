"""The everyday journey's pages through AppTest: result cards, one tag for each field on every page, the
sidebar in plain words, and an entry page that says whom to ask before its long text.

What only a browser can show (tab titles, the title's size and focus ring, wrapping on a phone) is in
tests/browser/test_pages_browser.py.
"""

from __future__ import annotations

import json
import re

import pytest
from streamlit.testing.v1 import AppTest

from app_pages import ui
from kb.analysis import FUNCTION_WORDS
from kb.entries import EVIDENCE_GRADES, LIGHTHOUSE_STAGES, OUTCOMES, STATUSES
from kb.store import EntryStore
from tests.app.test_app import APP, SIGNED_IN_ACCESS, TIMEOUT, assert_clean, open_app

QUERY = "what could the team do for data sharing agreement"
BADGE = re.compile(r":([a-z]+)-badge\[(.*?)\]")
# Every tag on every page: an optional icon, what the field is, then the value as `ui.label` words it.
VALUE_WORDS = {
    "Outcome": OUTCOMES,
    "Lighthouse": LIGHTHOUSE_STAGES,
    "Evidence": EVIDENCE_GRADES,
    "Status": STATUSES,
}
TAG = re.compile(r"^(?::material/[a-z_]+: )?(Outcome|Lighthouse|Evidence|Status): (.+)$")


def in_order(at: AppTest) -> list:
    """Every element of the main area, in the order a reader (or a screen reader) meets them."""

    def walk(node):
        children = getattr(node, "children", None)
        if children is None:
            yield node
            return
        for index in sorted(children):
            yield from walk(children[index])

    return list(walk(at.main))


def markdown_bodies(at: AppTest) -> list[str]:
    return [str(m.value) for m in at.markdown]


def tags_on(at: AppTest) -> list[str]:
    return [text for body in markdown_bodies(at) for _, text in BADGE.findall(body)]


def assert_tags_are_worded_one_way(at: AppTest) -> list[tuple[str, str]]:
    found = []
    for text in tags_on(at):
        match = TAG.match(text)
        assert match, f"a tag not made by ui.tag: {text!r}"
        field, value = match.groups()
        assert value in [ui.label(v) for v in VALUE_WORDS[field]], f"{text!r}: not the value's one wording"
        found.append((field, value))
    return found


# --------------------------------------------------------------------------- A. result cards


def test_a_card_starts_with_its_title_as_a_link(entries_dir):
    at = open_app(q=QUERY)
    assert_clean(at)
    links = [p for p in at.get("page_link") if "id=" in p.proto.query_string]
    assert len(links) >= 5
    for link in links:
        assert link.proto.label.startswith("**") and link.proto.label.endswith("**"), "the title, bold: a card title"
    assert not [p for p in at.get("page_link") if p.proto.label == "Open the entry"], "the title is the link"


def test_snippets_mark_the_query_s_meaningful_words_only(entries_dir):
    at = open_app(q=QUERY)
    marked = [w.lower() for h in at.get("html") for w in re.findall(r"<mark>(.*?)</mark>", h.value)]
    assert marked, "some words are marked"
    assert {"agreement", "data", "sharing"} & set(marked)
    assert not set(marked) & {"what", "could", "the", "do", "for"}, marked
    assert all(w not in FUNCTION_WORDS for w in marked)


def test_styles_give_entry_titles_a_focus_ring_and_let_them_wrap(entries_dir):
    """The browser test measures them; here, that every page gets the one stylesheet."""
    at = open_app()
    styles = [h.value for h in at.get("html") if "<style>" in h.value]
    assert len(styles) == 1 and "focus-visible" in styles[0] and "white-space: normal" in styles[0]


# --------------------------------------------------------------------------- C. one tag, one wording


def test_search_cards_tag_outcome_stage_evidence_and_status_one_way(entries_dir):
    at = open_app(q="data sharing", status=["published", "in-review"])
    found = assert_tags_are_worded_one_way(at)
    while [b for b in at.button if b.label == "Next page" and not b.disabled]:  # every page of results
        next(b for b in at.button if b.label == "Next page").click().run()
        found += assert_tags_are_worded_one_way(at)
    assert {f for f, _ in found} == {"Outcome", "Lighthouse", "Evidence", "Status"}, found
    assert ("Status", "In review") in found
    assert ("Status", "Published") not in found, "published is the norm: only other statuses are tagged"


def test_the_entry_page_tags_and_lists_values_in_the_same_words(entries_dir):
    entry_id = "cross-government-data-sharing-agreement-template"  # a lighthouse, with evidence
    at = open_app("entry", id=entry_id)
    assert_clean(at)
    found = assert_tags_are_worded_one_way(at)
    assert ("Outcome", "Succeeded") in found and ("Lighthouse", "Replicated") in found
    facts = next(body for body in markdown_bodies(at) if body.startswith("- **Outcome:**"))
    assert "- **Outcome:** Succeeded" in facts and "- **Evidence:** Evaluated" in facts


def test_showcase_review_queue_and_similar_lists_use_the_same_tags(entries_dir):
    for name, query in (
        ("showcase", {}),
        ("showcase", {"view": "board"}),
        ("review", {}),
        ("entry", {"id": "benefits-and-housing-data-sharing-pilot"}),  # similar projects
    ):
        at = open_app(name, **query)
        assert_clean(at)
        assert tags_on(at), name
        assert_tags_are_worded_one_way(at)
    showcase = open_app("showcase")
    assert {label for label in showcase.multiselect(key="stage").options} == {
        "Pilot",
        "Proven",
        "Replicated",
        "Retired",
    }
    titles = [p.proto.label for p in showcase.get("page_link") if p.proto.label.startswith("**")]
    assert len(titles) >= 9, "each lighthouse's title is a link, as on search cards"


def test_insights_charts_word_outcomes_as_every_page_does(entries_dir):
    import pyarrow as pa

    at = open_app("insights")
    outcomes, domains = set(), []
    for chart in at.get("vega_lite_chart"):
        for dataset in chart.proto.datasets:
            table = pa.ipc.open_stream(dataset.data.data).read_all()
            if "outcome" in table.column_names:
                outcomes |= set(table.column("outcome").to_pylist())
        color = json.loads(chart.proto.spec).get("encoding", {}).get("color", {})
        if color.get("field") == "outcome":
            domains.append(color["scale"]["domain"])
    worded = [ui.label(o) for o in OUTCOMES]
    assert outcomes and outcomes <= set(worded), outcomes
    assert domains and all(domain == worded for domain in domains), domains


# --------------------------------------------------------------------------- D. the sidebar


def sidebar_text(at: AppTest) -> str:
    parts = [str(e.value) for kind in ("markdown", "caption", "info", "error") for e in at.sidebar.get(kind)]
    return "\n".join(parts + [b.label for b in at.sidebar.button])


def test_a_local_contributor_sees_who_they_are_in_plain_words(entries_dir, monkeypatch):
    monkeypatch.setenv("KB_USER_NAME", "Ada Analyst")
    monkeypatch.setenv("KB_USER_ORGANISATION", "Office for Tests")
    monkeypatch.setenv("KB_USER_ROLES", "contributor")
    at = open_app()
    assert_clean(at)
    shown = sidebar_text(at)
    assert "Ada Analyst" in shown and "Office for Tests" in shown
    assert "Contributor: you can search and read entries and share write-ups." in shown
    for operator_text in ("KB_USER", "docs/", "Local mode", "Sync entry files", "python -m kb"):
        assert operator_text not in shown, operator_text


def test_whoever_runs_the_local_copy_sees_how_it_is_set_up(entries_dir, monkeypatch):
    monkeypatch.setenv("KB_USER_ROLES", "contributor,reviewer")
    shown = sidebar_text(open_app())
    assert "Contributor and reviewer: you can" in shown and "review other people's write-ups" in shown
    assert "KB_USER_NAME" in shown and "Local mode" in shown and "Sync entry files" in shown


def test_signed_in_people_see_no_operator_text(entries_dir, monkeypatch, tmp_path):
    access = tmp_path / "access.yaml"
    access.write_text(SIGNED_IN_ACCESS)
    monkeypatch.setenv("KB_ACCESS_FILE", str(access))
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    for email, words in (
        ("rui@had.example.gov", "Contributor and reviewer: you can search and read entries, share write-ups and"),
        ("cleo@had.example.gov", "Contributor and curator: you can search and read entries, share write-ups, edit"),
        ("cy@had.example.gov", "Contributor: you can search and read entries and share write-ups."),
    ):
        at.user = {"is_logged_in": True, "sub": email, "name": email, "email": email, "email_verified": True}
        at.run()
        assert_clean(at)
        shown = sidebar_text(at)
        assert words in shown and "Home Affairs Department" in shown, shown
        assert "KB_" not in shown and "Sync entry files" not in shown, email


# --------------------------------------------------------------------------- E. the entry page


@pytest.mark.parametrize("entry_id", ["benefits-and-housing-data-sharing-pilot", "single-trade-window-prototype"])
def test_the_entry_page_puts_key_facts_and_whom_to_ask_before_the_story(entries_dir, entry_id):
    entry = EntryStore(entries_dir).get(entry_id)
    at = open_app("entry", id=entry_id)
    assert_clean(at)
    order = in_order(at)
    values = [str(getattr(e, "value", "")) for e in order]
    story = next(i for i, e in enumerate(order) if e.type == "header" and e.value == next(iter(entry.sections)))
    facts = next(i for i, v in enumerate(values) if v.startswith(":") and "-badge[Outcome: " in v)
    ask = next(i for i, v in enumerate(values) if "Whom to ask" in v)
    assert facts < ask < story, (facts, ask, story)
    key_facts = values[facts].replace("\\", "")
    for fact in (ui.label(entry.outcome), ui.label(entry.kind), entry.organisation, str(entry.year)):
        assert fact in key_facts, fact
    if entry.lighthouse:
        assert f"Lighthouse: {ui.label(entry.lighthouse.stage)}" in key_facts
    if entry.evidence:
        assert f"Evidence: {ui.label(entry.evidence)}" in key_facts
    assert entry.contact in values[ask].replace("\\", "")


def test_an_anonymous_entry_says_nobody_is_named_at_the_top(entries_dir, monkeypatch):
    entry = EntryStore(entries_dir).get("chatbot-for-policy-guidance-withdrawn")
    monkeypatch.setenv("KB_USER_ROLES", "contributor")
    monkeypatch.setenv("KB_USER_ORGANISATION", entry.organisation)
    at = open_app("entry", id=entry.id)
    ask = next(str(m.value) for m in at.markdown if "Whom to ask" in m.value)
    assert "shared anonymously" in ask and entry.team not in ask.replace("\\", "")


def test_a_new_entry_s_address_ends_on_a_whole_word(entries_dir):
    from tests.app.test_app import button, fill_in_form

    title = "Matching hospital discharge and social care records to study delayed discharge across regions"
    at = open_app("submit")
    at.text_input(key="draft_title").input(title)
    at.text_area(key="draft_summary").input("We matched discharge and care records in three regions.")
    fill_in_form(at)
    button(at, "Save as draft").click().run()
    assert_clean(at)
    made = "matching-hospital-discharge-and-social-care-records-to-study-delayed-discharge"
    assert (entries_dir / f"{made}.md").is_file()
    assert at.query_params["id"] == made, "the new entry opens at its address"
