"""The web app through Streamlit's AppTest: every page renders, and the widgets do what they say.

Pages are opened through the router (app.py), as a browser would, so navigation and the sidebar run too.
"""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import parse_qs

import pytest
from streamlit.testing.v1 import AppTest

from app_pages.resources import Visitor
from app_pages.ui import looks_after_the_index, plain, safe_markdown
from bench.browser import RESULTS_LINE
from kb.access import ANONYMOUS
from kb.identity import User
from kb.store import EntryStore
from tests.conftest import ROOT

APP = str(ROOT / "app.py")
PAGES = [
    "search",
    "entry",
    "submit",
    "showcase",
    "review",
    "insights",
    "following",
    "vocabulary",
    "people",
    "organisation",
    "sources",
    "glossary",
]
TIMEOUT = 60


def page(name: str) -> str:
    return f"app_pages/{name}.py"


def open_app(name: str = "search", **query: str | list[str]) -> AppTest:
    """The app, run once, then switched to a page and run with these query parameters."""
    at = AppTest.from_file(APP, default_timeout=TIMEOUT).run()
    if name != "search":
        at.switch_page(page(name)).run()  # switching pages clears the URL, as in a browser
    if query:
        at.query_params.update(query)
        at.run()
    return at


def linked_ids(at: AppTest) -> list[str]:
    """Entry ids of the entry links on the page, in order, without repeats."""
    ids = []
    for link in at.get("page_link"):
        values = parse_qs(link.proto.query_string).get("id")
        if values:  # only links to the entry page carry an id
            ids.append(values[0])
    return list(dict.fromkeys(ids))


def texts(at: AppTest, kind: str) -> str:
    return "\n".join(str(e.value) for e in at.get(kind))


def button(at: AppTest, label: str):
    found = [b for b in at.button if b.label == label]
    assert found, f"no button {label!r}; buttons: {[b.label for b in at.button]}"
    return found[0]


def assert_clean(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]
    assert "Something went wrong" not in texts(at, "error")


# --------------------------------------------------------------------------- every page renders


@pytest.mark.parametrize("name", PAGES)
def test_page_renders_on_sample_entries(entries_dir, name):
    query = {"id": "benefits-and-housing-data-sharing-pilot"} if name == "entry" else {}
    at = open_app(name, **query)
    assert_clean(at)
    assert at.title, "every page has a title"


@pytest.mark.parametrize("name", PAGES)
def test_page_renders_on_an_empty_knowledge_base(empty_entries_dir, name):
    at = open_app(name)
    assert_clean(at)
    assert at.title


def test_sidebar_says_who_you_are(entries_dir, monkeypatch):
    monkeypatch.setenv("KB_USER_NAME", "Ada Analyst")
    monkeypatch.setenv("KB_USER_ORGANISATION", "Office for Tests")
    at = open_app()
    sidebar = "\n".join(str(e.value) for e in at.sidebar.get("markdown") + at.sidebar.get("caption"))
    assert "Ada Analyst" in sidebar and "Office for Tests" in sidebar
    assert "Local user" in sidebar
    assert "Local mode" in texts(at.sidebar, "info") and "Ada Analyst" in texts(at.sidebar, "info")


def test_a_broken_setting_is_a_friendly_message(entries_dir, monkeypatch):
    monkeypatch.setenv("KB_CHROMA_URL", "http://")
    at = open_app()
    assert not at.exception
    assert "could not be opened" in texts(at, "error")


# --------------------------------------------------------------------------- who looks after the index

# Entry file problems name files and quote fields of entries the viewer may not see; syncing is the job of
# whoever runs this copy: an admin, or a reviewer in local mode (the copy runs on their own machine).
SIGNED_IN_ACCESS = """\
domains:
  had.example.gov: Home Affairs Department
roles:
  default: [contributor]
  users:
    ada@had.example.gov: [admin]
    rui@had.example.gov: [reviewer]
    cleo@had.example.gov: [curator]
"""


def index_tools(at: AppTest) -> tuple[bool, bool]:
    """Whether the sidebar lists the entry files that could not be read, and offers to sync the entry files."""
    assert_clean(at)
    problems = any("could not be read" in e.label for e in at.sidebar.expander)
    return problems, "Sync entry files" in [b.label for b in at.sidebar.button]


def write_unreadable_entry(entries_dir: Path) -> None:
    (entries_dir / "an-unreadable-entry.md").write_text("---\nid: an-unreadable-entry\ntitle: [unclosed\n---\n")


def test_a_local_reviewer_sees_entry_file_problems_and_may_sync(entries_dir, monkeypatch):
    write_unreadable_entry(entries_dir)
    at = open_app()
    for roles, looks_after in (
        ("contributor,reviewer", True),
        ("curator", True),
        ("admin", True),
        ("contributor", False),
        (",", False),  # no roles at all (a blank value would mean the defaults)
    ):
        monkeypatch.setenv("KB_USER_ROLES", roles)
        at.run()
        assert index_tools(at) == (looks_after, looks_after), roles


def test_of_signed_in_people_only_an_admin_sees_entry_file_problems_or_may_sync(entries_dir, monkeypatch, tmp_path):
    write_unreadable_entry(entries_dir)
    access = tmp_path / "access.yaml"
    access.write_text(SIGNED_IN_ACCESS)
    monkeypatch.setenv("KB_ACCESS_FILE", str(access))
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    for email, looks_after in (
        ("ada@had.example.gov", True),
        ("rui@had.example.gov", False),  # a reviewer, but the copy is not theirs to run
        ("cleo@had.example.gov", False),
        ("cy@had.example.gov", False),
    ):
        at.user = {"is_logged_in": True, "sub": email, "name": email, "email": email, "email_verified": True}
        at.run()
        assert index_tools(at) == (looks_after, looks_after), email
    at.user = {"is_logged_in": False}
    at.run()
    assert index_tools(at) == (False, False), "a visitor who has not signed in"


@pytest.mark.parametrize(
    "user, mode, looks_after",
    [
        pytest.param(User("Ada", roles=("admin",), local=False), "signed-in", True, id="signed-in admin"),
        pytest.param(User("Rui", roles=("reviewer",), local=False), "signed-in", False, id="signed-in reviewer"),
        pytest.param(User("Cleo", roles=("curator",), local=False), "signed-in", False, id="signed-in curator"),
        pytest.param(User("Cy", roles=("contributor",), local=False), "signed-in", False, id="signed-in contributor"),
        pytest.param(User("Local user", roles=("contributor", "curator")), "local", True, id="local curator"),
        pytest.param(User("Local user", roles=("reviewer",)), "local", True, id="local reviewer"),
        pytest.param(User("Local user", roles=("contributor",)), "local", False, id="local contributor"),
        pytest.param(User("Local user", roles=()), "local", False, id="local reader"),
        pytest.param(ANONYMOUS, "signed-out", False, id="visitor not signed in"),
    ],
)
def test_who_looks_after_the_index(user, mode, looks_after):
    assert looks_after_the_index(Visitor(user, mode)) == looks_after


# --------------------------------------------------------------------------- search


def search(at: AppTest, query: str) -> AppTest:
    at.text_input(key="search_q").input(query)
    return button(at, "Search").click().run()


def test_search_returns_the_expected_entries(entries_dir):
    at = search(open_app(), "data sharing agreement took too long")
    assert_clean(at)
    ids = linked_ids(at)
    assert "benefits-and-housing-data-sharing-pilot" in ids[:5]
    assert "cross-government-data-sharing-agreement-template" in ids[:5]
    assert at.query_params["q"] == "data sharing agreement took too long"
    assert "<mark>" in texts(at, "html"), "the matching passage has the query's words marked"


def test_an_acronym_finds_its_entries_in_keyword_mode(entries_dir):
    at = open_app(q="DSA", mode="keyword")
    assert "benefits-and-housing-data-sharing-pilot" in linked_ids(at)


PLAN = """We will agree a data sharing agreement with the council before any data moves.

The council's case management system is old; the supplier must build an export.

We will build a weekly dashboard in Power BI for the family support team."""


def test_a_pasted_plan_finds_lessons_failures_first(entries_dir):
    at = open_app(q=PLAN, mode="plan")
    assert_clean(at)
    assert [h.value for h in at.header] == ["Part 1 of 3", "Part 2 of 3", "Part 3 of 3"]
    assert "Your plan, read as 3 parts" in texts(at, "caption")
    assert "speaks to part 3 of your plan" in texts(at, "caption")
    assert "mainframe-blocked-pension-data-share" in linked_ids(
        at
    ) or "benefits-and-housing-data-sharing-pilot" in linked_ids(at)


def test_a_plan_has_its_own_labelled_area_and_switching_mode_carries_the_text(entries_dir):
    at = open_app(q="DSA")
    at.segmented_control(key="search_mode").set_value("plan").run()
    assert_clean(at)
    assert not [w for w in at.text_input if w.key == "search_q"], "one place to type at a time"
    plan = at.text_area(key="search_plan")
    assert plan.label.startswith("Your project plan") and plan.value == "DSA"
    plan.input(PLAN)
    button(at, "Find lessons for this plan").click().run()
    assert at.query_params["mode"] == "plan" and at.query_params["q"] == PLAN.strip()
    at.segmented_control(key="search_mode").set_value("hybrid").run()
    assert at.text_input(key="search_q").value == PLAN.strip() and at.query_params["q"] == PLAN.strip()


def test_filters_narrow_the_results(entries_dir):
    at = search(open_app(), "data sharing")
    everything = linked_ids(at)
    at.multiselect(key="facet_outcome").select("failed").run()
    assert_clean(at)
    failed = linked_ids(at)
    store = EntryStore(entries_dir)
    assert failed and all(store.get(i).outcome == "failed" for i in failed)
    assert at.query_params["outcome"] == "failed"
    assert any(store.get(i).outcome != "failed" for i in everything)


def test_tags_and_teams_are_facets_where_the_collection_uses_them(entries_dir):
    at = open_app()
    entries = EntryStore(entries_dir).load().entries.values()
    tag = next(t for e in entries if e.status == "published" for t in e.tags)
    at.multiselect(key="facet_tag").select(tag).run()
    assert_clean(at)
    assert at.query_params["tag"] == tag
    listed = linked_ids(at)
    assert listed and all(tag in EntryStore(entries_dir).get(i).tags for i in listed)
    teams = at.multiselect(key="facet_team").options
    anonymous_teams = {e.team for e in entries if e.anonymous and e.team}
    named_teams = {e.team for e in entries if not e.anonymous and e.team}
    assert teams and not any(t.rsplit(" (", 1)[0] in anonymous_teams - named_teams for t in teams)


def test_facets_show_counts_of_what_the_user_may_see(entries_dir, monkeypatch):
    from kb.access import can_see, entry_meta
    from kb.identity import local_user

    entries = EntryStore(entries_dir).load().entries.values()

    def expected(outcome: str) -> int:
        user = local_user()
        return sum(
            1 for e in entries if e.outcome == outcome and e.status == "published" and can_see(user, entry_meta(e))
        )

    labels = list(open_app().multiselect(key="facet_outcome").options)  # as shown, counts included
    assert f"Failed ({expected('failed')})" in labels and f"Succeeded ({expected('succeeded')})" in labels, labels
    # a member of the Home Affairs Department also sees its organisation-only failure
    monkeypatch.setenv("KB_USER_ORGANISATION", "Home Affairs Department")
    labels = list(open_app().multiselect(key="facet_outcome").options)
    assert f"Failed ({expected('failed')})" in labels, labels
    assert expected("failed") == 11


def test_query_parameters_round_trip(entries_dir):
    at = open_app(q="DSA", mode="keyword", outcome=["failed", "stopped"], lighthouse="no")
    assert_clean(at)
    assert at.text_input(key="search_q").value == "DSA"
    assert at.segmented_control(key="search_mode").value == "keyword"
    assert at.multiselect(key="facet_outcome").value == ["failed", "stopped"]
    assert at.radio(key="facet_lighthouse").value == "no"
    at.multiselect(key="facet_kind").select("experiment").run()
    assert at.query_params["q"] == "DSA"
    assert at.query_params["mode"] == "keyword"
    assert at.query_params["outcome"] == ["failed", "stopped"]
    assert at.query_params["kind"] == "experiment"
    assert at.query_params["lighthouse"] == "no"


def test_a_shared_link_replaces_what_the_widgets_showed(entries_dir):
    at = search(open_app(), "dashboard")
    at.query_params.clear()
    at.query_params.update({"q": "mainframe"})
    at.run()  # as the back button or a pasted link would
    assert at.text_input(key="search_q").value == "mainframe"
    assert "mainframe-blocked-pension-data-share" in linked_ids(at)


def test_everything_the_filters_allow_is_listed_page_by_page(entries_dir):
    at = open_app(kind="project")
    assert_clean(at)
    caption = next(c for c in texts(at, "caption").split("\n") if "match these filters" in c)
    total, pages = int(caption.split()[0]), -(-int(caption.split()[0]) // 10)
    assert pages > 1 and f"page 1 of {pages}" in caption, caption
    listed = linked_ids(at)
    for page in range(2, pages + 1):
        button(at, "Next page").click().run()
        assert at.query_params["page"] == str(page) and at.query_params["kind"] == "project"
        listed += linked_ids(at)
    assert len(listed) == len(set(listed)) == total, "all of them, each once"
    assert [b for b in at.button if b.label == "Next page"][0].disabled
    at.multiselect(key="facet_outcome").select("succeeded").run()  # a new filter starts at the first page
    assert "page" not in at.query_params and at.query_params["kind"] == "project"


def test_the_sidebar_and_the_search_page_count_the_same_entries(entries_dir):
    at = search(open_app(), "data")
    shown = next(c for c in texts(at.sidebar, "caption").split("\n") if "entries you can see" in c)
    assert f"among {shown.split()[0]} entries" in texts(at, "caption")
    assert RESULTS_LINE.search(texts(at, "caption")), "the browser benchmarks wait for this line"


def test_nothing_close_is_said_before_the_loosely_related(entries_dir, monkeypatch):
    from kb.relevance import CLOSE_SIMILARITY

    monkeypatch.setitem(CLOSE_SIMILARITY, "hashing-bow", 0.3)
    at = open_app(q="purple monkey dishwasher")
    assert_clean(at)
    assert "No close matches for “purple monkey dishwasher”" in texts(at, "info")
    assert "Loosely related" in [h.value for h in at.header] and linked_ids(at)
    assert "0 close matches" in texts(at, "caption")
    at = open_app(q="data sharing agreement took too long")
    assert "No close matches" not in texts(at, "info")
    assert re.search(r"\d+ close match(es)? among \d+ entries, then \d+ loosely related", texts(at, "caption"))
    assert RESULTS_LINE.search(texts(at, "caption")), "the browser benchmarks wait for this line"


def test_a_misspelt_search_offers_the_collection_s_spelling(entries_dir):
    at = open_app(q="sharring agrement", mode="keyword")
    button(at, "sharing agreement").click().run()
    assert at.query_params["q"] == "sharing agreement" and linked_ids(at)
    assert at.text_input(key="search_q").value == "sharing agreement"


def test_keyword_mode_says_which_other_names_it_searched_and_offers_exact_words(entries_dir):
    at = open_app(q="DSA", mode="keyword")
    assert "Also searched: data sharing agreement" in texts(at, "caption").replace("\\", "")
    expanded = linked_ids(at)
    button(at, "Exact words only").click().run()
    assert at.query_params["exact"] == "1" and at.query_params["q"] == "DSA"
    assert set(linked_ids(at)) < set(expanded)
    assert "Exact words only; not searched: data sharing agreement" in texts(at, "caption").replace("\\", "")
    at.multiselect(key="facet_outcome").select("failed").run()  # the choice stays while filters change
    assert at.query_params["exact"] == "1"
    button(at, "Search these too").click().run()
    assert "exact" not in at.query_params


def test_empty_state_suggests_searches_and_lists_the_newest(entries_dir):
    at = open_app()
    headers = [s.value for s in at.header]
    assert "What to try" in headers and "Newest entries" in headers
    assert len(linked_ids(at)) == 5
    from kb import browse
    from kb.vocabulary import Vocabulary

    entries = [e for e in EntryStore(entries_dir).load().entries.values() if e.status == "published"]
    label = Vocabulary.load(entries_dir).label
    most_used = max({t for e in entries for t in e.themes}, key=lambda t: sum(t in e.themes for e in entries))
    suggestion = label(most_used)
    assert suggestion not in browse.SearchRequest().to_params().values()
    button(at, suggestion).click().run()  # the collection's own most used theme, one click away
    assert at.query_params["q"] == suggestion and linked_ids(at)


def test_zero_results_offer_a_way_out(entries_dir):
    at = open_app(q="data sharing agreement", organisation="Nobody at all")
    assert_clean(at)
    assert "No entries matched" in texts(at, "info")
    assert "match without the filters" in texts(at, "markdown")
    button(at, "Clear the filters").click().run()
    assert "organisation" not in at.query_params and linked_ids(at)


def test_searchers_see_published_entries_only(entries_dir, monkeypatch):
    monkeypatch.setenv("KB_USER_ROLES", "contributor")
    at = open_app(q="teacher supply forecasts shared with school trusts", status="in-review")
    assert "teacher-supply-model-shared-with-schools" not in linked_ids(at)
    assert not [m for m in at.multiselect if m.key == "facet_status"]


# --------------------------------------------------------------------------- entry


def test_entry_shows_facts_similar_projects_and_related(entries_dir):
    at = open_app("entry", id="benefits-and-housing-data-sharing-pilot")
    assert_clean(at)
    assert at.title[0].value.startswith("Benefits and housing data")
    headers = [s.value for s in at.header]
    assert {"Context", "Lessons", "Similar projects", "Related entries"} <= set(headers)
    ids = linked_ids(at)
    assert "cross-government-data-sharing-agreement-template" in ids
    assert len([i for i in ids if i != "benefits-and-housing-data-sharing-pilot"]) >= 5
    markdown = texts(at, "markdown")
    assert "Vulnerability Data Unit" in markdown and "vdu-data@dww.example.gov" in markdown.replace("\\", "")


def test_entry_warns_when_similar_projects_failed(entries_dir):
    from kb import Filters, KnowledgeBase, Settings

    entry_id = "legacy-case-management-export-failure"  # most of its neighbours failed or stopped
    at = open_app("entry", id=entry_id)
    similar = KnowledgeBase(Settings()).similar(entry_id, filters=Filters.of(status="published"))
    failed = sum(1 for h in similar if h.outcome in ("failed", "stopped"))
    assert failed >= 2
    assert f"{failed} of these {len(similar)} similar projects failed or stopped" in texts(at, "warning")


def test_anonymous_entry_hides_team_and_contact(entries_dir, monkeypatch):
    entry = EntryStore(entries_dir).get("chatbot-for-policy-guidance-withdrawn")
    assert entry.anonymous and entry.team and entry.visibility == "organisation"
    monkeypatch.setenv("KB_USER_ROLES", "contributor")  # a reader: reviewers see who wrote it
    at = open_app("entry", id=entry.id)
    assert "Entry not found" in [t.value for t in at.title]  # outside the organisation: not there at all
    monkeypatch.setenv("KB_USER_ORGANISATION", entry.organisation)
    at = open_app("entry", id=entry.id)
    shown = (texts(at, "markdown") + texts(at, "caption")).replace("\\", "")
    assert entry.team not in shown
    assert not entry.contact or entry.contact not in shown
    assert "shared anonymously" in shown


def test_user_html_and_images_are_not_rendered(entries_dir):
    path = entries_dir / "flood-response-data-cell.md"
    text = path.read_text().replace(
        "## Lessons\n",
        "## Lessons\n\n<script>alert(1)</script> ![tracker](http://evil.example/x.png) costs $5 to $6\n",
        1,
    )
    path.write_text(text)
    at = open_app("entry", id="flood-response-data-cell")
    assert_clean(at)
    lessons = next(m.value for m in at.markdown if "alert(1)" in m.value)
    assert r"\![tracker]" in lessons and r"\$5" in lessons
    assert all("<script" not in h.value for h in at.get("html"))
    # nothing written by a user goes through Markdown with HTML allowed
    for element in at.markdown:
        if "alert(1)" in element.value or "evil.example" in element.value:
            assert element.proto.allow_html is False


def test_unknown_entry_is_a_friendly_message(entries_dir):
    at = open_app("entry", id="no-such-entry")
    assert_clean(at)
    assert "There is no entry" in texts(at, "warning")


def test_edit_button_opens_the_form_with_the_entry(entries_dir):
    at = open_app("entry", id="flood-response-data-cell")
    button(at, "Edit this entry").click().run()
    assert_clean(at)
    assert at.title[0].value.startswith("Edit:")
    assert at.text_input(key="draft_title").value == EntryStore(entries_dir).get("flood-response-data-cell").title


# --------------------------------------------------------------------------- submit


def fill_in_form(at: AppTest) -> AppTest:
    """The fields inside the form: they are sent with the submit button, as in a browser."""
    at.text_input(key="draft_organisation").input("Office for Tests")
    at.selectbox(key="draft_outcome").select("partial")
    at.radio(key="draft_kind").set_value("experiment")
    at.multiselect(key="draft_themes").select("record-linkage")
    at.text_area(key="draft_section_5").input("Agree the legal basis before you touch the data.")
    return at


def test_valid_submission_is_written_indexed_and_found(entries_dir):
    before = {p.name for p in entries_dir.glob("*.md")}
    at = open_app("submit")
    at.text_input(key="draft_title").input("Finding young carers by matching school and health records")
    at.text_area(key="draft_summary").input("We matched school and health records to find young carers early.")
    at.run()
    assert linked_ids(at), "the 'looks similar' panel lists existing entries while drafting"
    fill_in_form(at)
    button(at, "Send for review").click().run()
    assert_clean(at)
    created = {p.name for p in entries_dir.glob("*.md")} - before
    assert created == {"finding-young-carers-by-matching-school-and-health-records.md"}
    assert at.title[0].value.startswith("Finding young carers")
    assert "Sent for review" in texts(at, "success")
    at.switch_page(page("search")).run()
    at.query_params.update({"q": "young carers school health records", "status": "in-review"})
    at.run()
    assert linked_ids(at)[0] == "finding-young-carers-by-matching-school-and-health-records"


def test_a_submission_whose_indexing_fails_is_saved_once_and_says_so(entries_dir, monkeypatch):
    from kb import KnowledgeBase

    def busy(self, entry_ids):
        raise RuntimeError("the index is busy")

    monkeypatch.setattr(KnowledgeBase, "index_entries", busy)
    before = {p.name for p in entries_dir.glob("*.md")}
    at = open_app("submit")
    at.text_input(key="draft_title").input("Finding young carers by matching school and health records")
    at.text_area(key="draft_summary").input("We matched school and health records to find young carers early.")
    fill_in_form(at)
    button(at, "Send for review").click().run()
    assert_clean(at)
    created = {p.name for p in entries_dir.glob("*.md")} - before
    assert created == {"finding-young-carers-by-matching-school-and-health-records.md"}
    assert at.title[0].value.startswith("Finding young carers"), "the entry opens, as after any save"
    warning = texts(at, "warning").replace("\\", "")  # shown escaped
    assert "once the index has caught up" in warning and "no need to save it again" in warning
    assert "busy" not in warning and "entries/" not in warning, "the cause is for the log, not the page"


def test_invalid_submission_shows_field_messages_and_writes_nothing(entries_dir):
    before = sorted(p.read_text() for p in entries_dir.glob("*.md"))
    at = open_app("submit")
    at.text_input(key="draft_started").input("April 2021")
    button(at, "Send for review").click().run()  # a draft needs only a title: sending it checks everything
    assert_clean(at)
    errors = texts(at, "error")
    for message in (
        "Give the entry a title",
        "Write a summary",
        "Choose how the work turned out",
        "Write at least one section",
        "not a date",
    ):
        assert message in errors
    assert sorted(p.read_text() for p in entries_dir.glob("*.md")) == before


def test_editing_after_someone_else_saved_is_a_clear_conflict(entries_dir):
    at = open_app("submit", edit="flood-response-data-cell")
    at.text_area(key="draft_summary").input("My edit.")
    path = entries_dir / "flood-response-data-cell.md"
    path.write_text(path.read_text().replace("summary:", "summary: Their edit.", 1))
    button(at, "Save as draft").click().run()
    assert "changed by someone else" in texts(at, "error")
    assert "Their edit." in path.read_text() and "My edit." not in path.read_text()


def test_edit_saves_and_lands_on_the_entry(entries_dir):
    at = open_app("submit", edit="flood-response-data-cell")
    at.text_area(key="draft_summary").input("A summary rewritten in the form.")
    button(at, "Save, keep published").click().run()
    assert_clean(at)
    entry = EntryStore(entries_dir).get("flood-response-data-cell")
    assert entry.summary == "A summary rewritten in the form." and entry.status == "published"
    assert "Saved" in texts(at, "success")


# --------------------------------------------------------------------------- review


def test_review_queue_approves(entries_dir):
    at = open_app("review")
    assert linked_ids(at) == ["teacher-supply-model-shared-with-schools", "grading-evidence-in-policy-submissions"]
    button(at, "Approve and publish").click().run()
    assert_clean(at)
    assert EntryStore(entries_dir).get("teacher-supply-model-shared-with-schools").status == "published"
    assert linked_ids(at) == ["grading-evidence-in-policy-submissions"]
    assert "Published" in texts(at, "success")


def test_an_approval_whose_indexing_fails_is_done_and_says_so(entries_dir, monkeypatch):
    from kb import KnowledgeBase

    monkeypatch.setattr(KnowledgeBase, "index_entries", lambda self, ids: 1 / 0)
    at = open_app("review")
    button(at, "Approve and publish").click().run()
    assert_clean(at)
    assert EntryStore(entries_dir).get("teacher-supply-model-shared-with-schools").status == "published"
    assert linked_ids(at) == ["grading-evidence-in-policy-submissions"], "gone from the queue"
    warning = texts(at, "warning").replace("\\", "")  # shown escaped
    assert "once the index has caught up" in warning and "division by zero" not in warning  # the cause is logged


def test_review_queue_sends_back_with_a_comment(entries_dir):
    at = open_app("review")
    entry_id = "teacher-supply-model-shared-with-schools"
    send_back = [b for b in at.button if b.label == "Send back"][0]
    send_back.click().run()
    assert "write a comment" in texts(at, "error").lower()
    assert EntryStore(entries_dir).get(entry_id).status == "in-review"
    at.text_area(key=f"review_comment_{entry_id}").input("Please add the evaluation.")
    [b for b in at.button if b.label == "Send back"][0].click().run()
    entry = EntryStore(entries_dir).get(entry_id)
    assert (entry.status, entry.review_comment) == ("draft", "Please add the evaluation.")
    assert entry_id not in linked_ids(at)


def test_review_queue_is_for_reviewers_only(entries_dir, monkeypatch):
    monkeypatch.setenv("KB_USER_ROLES", "contributor")
    at = AppTest.from_file(APP, default_timeout=TIMEOUT).run()
    with pytest.raises(ValueError):
        at.switch_page(page("review"))
    direct = AppTest.from_file(str(Path(APP).parent / page("review")), default_timeout=TIMEOUT).run()
    assert "for reviewers" in texts(direct, "warning")
    assert not direct.button


# --------------------------------------------------------------------------- showcase and insights


def test_showcase_filters_and_board(entries_dir):
    at = open_app("showcase")
    everything = linked_ids(at)
    assert len(everything) >= 9
    at.multiselect(key="stage").select("pilot").run()
    assert linked_ids(at) == ["single-trade-window-prototype"]
    at.multiselect(key="stage").unselect("pilot")
    at.segmented_control(key="view").set_value("board").run()
    assert_clean(at)
    lanes = [m.value for m in at.markdown if m.value.startswith("**:material/")]
    assert len(lanes) == 4 and any("Replicated" in lane for lane in lanes)


def test_insights_show_charts_and_the_map(entries_dir):
    at = open_app("insights")
    assert_clean(at)
    metrics = {m.label: m.value for m in at.metric}
    # 41 published entries, one of them for the Home Affairs Department only: this user sees 40
    assert metrics["Entries"] == "40" and metrics["Lighthouse projects"] == "9"
    assert len(at.get("vega_lite_chart")) == 6
    assert "Where do we keep failing?" in [s.value for s in at.header]


# --------------------------------------------------------------------------- display helpers


def test_safe_markdown_turns_images_into_links_and_keeps_dollars():
    assert (
        safe_markdown("see ![chart](http://x/y.png) for $5 and $6") == r"see \![chart](http://x/y.png) for \$5 and \$6"
    )


def test_plain_escapes_markdown():
    assert plain("**Bold** [link](javascript:x) <b>") == r"\*\*Bold\*\* \[link\]\(javascript\:x\) \<b\>"


def test_an_organisation_only_entry_never_reaches_other_users(entries_dir, monkeypatch):
    secret = "rco-ledger-reconciliation"
    (entries_dir / f"{secret}.md").write_text(
        f"---\nid: {secret}\ntitle: Quetzal ledger reconciliation\nsummary: Quetzal lagoon ledgers failed.\n"
        "kind: experiment\noutcome: failed\norganisation: Revenue and Customs Office\nstatus: published\n"
        "visibility: organisation\n---\n## Lessons\n\nQuetzal lagoon ledgers need one key.\n"
    )
    monkeypatch.setenv("KB_USER_ORGANISATION", "Home Affairs Department")
    at = open_app(q="quetzal lagoon ledgers")
    assert secret not in linked_ids(at)
    at = open_app("entry", id=secret)
    assert "Entry not found" in [t.value for t in at.title]
    monkeypatch.setenv("KB_USER_ORGANISATION", "Revenue and Customs Office")
    assert linked_ids(open_app(q="quetzal lagoon ledgers"))[0] == secret


def test_entry_page_shows_earlier_versions(entries_dir):
    from kb import KnowledgeBase, Settings

    base = KnowledgeBase(Settings())
    entry = base.get("flood-response-data-cell")
    old_summary = entry.summary
    entry.summary = "A rewritten summary."
    base.save(entry, expected_version=base.store.version(entry.id))
    at = open_app("entry", id=entry.id)
    assert_clean(at)
    assert any(e.label.startswith("Earlier versions (1)") for e in at.expander)
    assert any(old_summary.split()[0] in c.value for c in at.code)


@pytest.mark.parametrize("bad_id", ["../../etc/passwd", "..%2F..%2Fetc", ".hidden", "a/b"])
def test_odd_ids_in_the_url_are_friendly_and_read_nothing(entries_dir, bad_id):
    at = open_app("entry", id=bad_id)
    assert_clean(at)
    assert "Entry not found" in [t.value for t in at.title]
    at = open_app("submit", edit=bad_id)
    assert_clean(at)
