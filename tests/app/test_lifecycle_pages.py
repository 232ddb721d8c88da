"""Lighthouses with a lifecycle in the app (AppTest): the timeline, review flag and reuse chain on the entry page
and the showcase, the collaboration map and its list, the curators' list of lighthouses due for review, and a
stage change in the edit form that asks why."""

from __future__ import annotations

from urllib.parse import parse_qs

from app_pages import looked_for
from app_pages.ui import plain
from kb.store import EntryStore
from tests.app.test_app import assert_clean, button, open_app, texts

TEMPLATE = "cross-government-data-sharing-agreement-template"  # replicated, review by 2027-03
OVERDUE = "reproducible-analytical-pipelines-for-official-statistics"  # review by 2025-12: due


def test_the_entry_page_shows_the_stage_timeline_the_review_date_and_where_the_value_spread(entries_dir):
    at = open_app("entry", id=TEMPLATE)
    assert_clean(at)
    markdown = texts(at, "markdown")
    assert "**Stage history**" in markdown
    timeline = next(m.value for m in at.markdown if m.value.startswith("1. "))
    lines = timeline.splitlines()
    assert [line.split("**")[1] for line in lines] == ["Pilot", "Proven", "Replicated"]  # an ordered list, oldest first
    assert "2021-06: Template drafted with three legal teams" in lines[0]
    assert "Review by 2027-03" in texts(at, "caption")
    assert "**Where the value spread:** reused by 2 entries" in markdown
    chain = [link for link in at.get("page_link") if link.proto.icon == ":material/subdirectory_arrow_right:"]
    reusers = [parse_qs(link.proto.query_string)["id"][0] for link in chain]
    assert reusers == ["emergency-food-parcel-data-share", "school-meals-auto-enrolment-data-share"]  # by date
    assert "Saved about 40 days of legal work on the agreement" in texts(at, "caption")

    overdue = open_app("entry", id=OVERDUE)
    assert "**Due for review:** its review-by date (2025-12) has passed." in texts(overdue, "warning")
    assert "Not reused yet" in texts(overdue, "markdown")


def test_the_showcase_flags_overdue_lighthouses_and_draws_the_collaboration_map_with_a_list(entries_dir):
    at = open_app("showcase")
    assert_clean(at)
    assert "**Due for review:** its review-by date (2025-12) has passed." in texts(at, "warning")
    assert "Where the value spread" in texts(at, "markdown")
    assert len(at.get("arrow_vega_lite_chart") or at.get("vega_lite_chart")) == 1
    assert "Select an organisation or a line on the map" in texts(at, "caption")
    listing = at.expander[-1]
    assert listing.label.startswith("The map as a list (")
    shown = "\n".join(m.value for m in listing.markdown)
    assert "**Cabinet Digital Office and Northfield City Council**" in shown
    assert "reused the lighthouse [" in shown
    assert "entry?id=emergency-food-parcel-data-share" in shown


def test_curators_see_the_lighthouses_due_for_review_in_their_tab(entries_dir):
    at = open_app("insights")  # the local user curates their own copy
    at.session_state[looked_for.TAB_KEY] = looked_for.TABS[1]
    at.run()
    assert_clean(at)
    assert "Lighthouses due for review" in [h.value for h in at.header]
    due = [link for link in at.get("page_link") if "review by" in link.proto.label]
    assert due and "A single trade window prototype" in " ".join(link.proto.label for link in due)
    assert any(OVERDUE in link.proto.query_string for link in due)
    assert not any(TEMPLATE in link.proto.query_string for link in due)  # in time


def test_changing_the_stage_in_the_edit_form_asks_why_and_adds_it_to_the_timeline(entries_dir):
    at = open_app("submit", edit=OVERDUE)  # the local user is a curator: the edit is published at once
    at.selectbox(key="draft_lighthouse_stage").set_value("replicated")
    at.text_input(key="draft_lighthouse_review_by").input("2028-01")
    button(at, "Save, keep published").click().run()
    assert "Say why the stage changed from proven to replicated" in texts(at, "error")
    assert EntryStore(entries_dir).get(OVERDUE).lighthouse.stage == "proven"
    at.text_input(key="draft_lighthouse_stage_reason").input("Adopted by two other statistics producers")
    button(at, "Save, keep published").click().run()
    assert_clean(at)
    lh = EntryStore(entries_dir).get(OVERDUE).lighthouse
    assert (lh.stage, lh.review_by) == ("replicated", "2028-01")
    assert [h.stage for h in lh.history] == ["pilot", "proven", "replicated"]
    assert lh.history[-1].reason == "Adopted by two other statistics producers"
    entry_page = open_app("entry", id=OVERDUE)
    assert "Adopted by two other statistics producers" in texts(entry_page, "markdown")
    assert not texts(entry_page, "warning").count("Due for review")  # reviewed: no longer flagged


def test_a_reason_and_a_benefit_are_shown_as_text_never_as_markdown(entries_dir):
    hostile = "**loud** [click](javascript:alert(1)) <b>bold</b>"
    path = entries_dir / f"{TEMPLATE}.md"
    text = path.read_text(encoding="utf-8")
    text = text.replace(
        "reason: Template drafted with three legal teams and tried on two agreements", f"reason: '{hostile}'"
    )
    text = text.replace("benefit: Saved about 40 days of legal work on the agreement", f"benefit: '{hostile}'")
    path.write_text(text, encoding="utf-8")
    at = open_app("entry", id=TEMPLATE)
    assert_clean(at)
    escaped = plain(hostile)
    assert f"**Pilot**, 2021-06: {escaped}" in texts(at, "markdown")
    assert escaped in texts(at, "caption")
    assert "[click](javascript" not in texts(at, "markdown") + texts(at, "caption")


def test_the_map_s_list_names_every_organisation_with_its_page_and_entries(entries_dir):
    at = open_app("showcase")
    listing = at.expander[-1]
    assert "organisations," in listing.label and "links between them" in listing.label
    shown = "\n".join(m.value for m in listing.markdown)
    # what a click on a node shows is in the list too: the organisation, a link to its page, its entries
    assert "**[Cabinet Digital Office](organisation?org=Cabinet+Digital+Office)**:" in shown
    assert "**[Northfield City Council](organisation?org=Northfield+City+Council)**:" in shown
    cabinet = shown.split("**[Cabinet Digital Office]")[1].split("\n**")[0]
    assert "entry?id=" in cabinet and "worked with" in cabinet
    assert shown.index("**Organisations**") < shown.index("**Links between organisations**")


def test_only_a_published_lighthouse_says_its_owner_was_told_and_a_retired_one_is_not_flagged(entries_dir):
    path = entries_dir / f"{OVERDUE}.md"
    path.write_text(path.read_text(encoding="utf-8").replace("status: published", "status: draft"), encoding="utf-8")
    at = open_app("entry", id=OVERDUE)  # the local user reviews: they see the draft
    assert_clean(at)
    warning = texts(at, "warning")
    assert "**Due for review:** its review-by date (2025-12) has passed." in warning
    assert "have been told" not in warning and "Whoever edits it can set the next date." in warning
    published = open_app("entry", id=TEMPLATE)
    assert "have been told" not in texts(published, "warning")  # in time: no flag at all
    text = path.read_text(encoding="utf-8").replace("status: draft", "status: published")
    path.write_text(text.replace("stage: proven", "stage: retired", 1), encoding="utf-8")
    retired = open_app("entry", id=OVERDUE)
    assert "Due for review" not in texts(retired, "warning")


def test_the_curators_list_of_due_lighthouses_follows_kb_access(entries_dir, monkeypatch):
    from kb import access

    monkeypatch.setattr(access, "hears_of_every_due_lighthouse", lambda viewer: False)
    at = open_app("insights")  # the tab is still there (the search counts): the due list is not
    at.session_state[looked_for.TAB_KEY] = looked_for.TABS[1]
    at.run()
    assert_clean(at)
    assert "Top searches" in [h.value for h in at.header]
    assert "Lighthouses due for review" not in [h.value for h in at.header]


def test_the_edit_form_takes_when_each_reuse_happened_and_its_benefit(entries_dir):
    at = open_app("submit", edit=TEMPLATE)
    field = at.text_area(key="draft_lighthouse_reuse")
    assert "emergency-food-parcel-data-share (" in field.value  # what is known, as an export writes it
    assert "2027-06" in at.text_input(key="draft_lighthouse_review_by").help  # the help and the example agree
    field.input(field.value + "\nnot-a-reuser (2024): x")
    button(at, "Save, keep published").click().run()
    assert "is not in Reused by; choose it there, or remove this line" in texts(at, "error")
    at.text_area(key="draft_lighthouse_reuse").input(
        "school-meals-auto-enrolment-data-share (2024-09): cut enrolment from weeks to days"
    )
    button(at, "Save, keep published").click().run()
    assert_clean(at)
    reuse = EntryStore(entries_dir).get(TEMPLATE).lighthouse.reuse
    assert reuse["school-meals-auto-enrolment-data-share"].date == "2024-09"
    assert reuse["school-meals-auto-enrolment-data-share"].benefit == "cut enrolment from weeks to days"
    assert reuse["emergency-food-parcel-data-share"].benefit.startswith("Agreement signed in 9 weeks")  # kept
