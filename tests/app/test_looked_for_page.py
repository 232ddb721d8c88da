"""What people look for, through AppTest: the Insights page's curators' tab (curators see it with the
search log's data; a contributor and a visitor see neither the tab nor the data), a wanted request made
from it, and the submit page's list of write-ups people are looking for, which starts a draft."""

from __future__ import annotations

from streamlit.testing.v1 import AppTest

from app_pages import looked_for, ui
from kb import Settings
from kb.searchlog import search_log
from kb.wanted import add_wanted, load_wanted
from tests.app.test_app import APP, TIMEOUT, assert_clean, button, linked_ids, open_app, texts

PUBLIC = "benefits-and-housing-data-sharing-pilot"
ORG_ONLY = "chatbot-for-policy-guidance-withdrawn"  # visibility organisation: Home Affairs Department
NONSENSE = "zzqx flurble wibbleton"


def seed() -> None:
    """Searches and entry activity, as people's searches and visits would have left them."""
    log = search_log(Settings())
    for _ in range(3):
        log.record_search("Data sharing agreement", "hybrid", [])  # no results: no close match either
    log.record_search(NONSENSE, "keyword", [])
    for entry_id in (PUBLIC, PUBLIC, ORG_ONLY):
        log.record_entry(entry_id)


def curators_tab(at: AppTest) -> AppTest:
    at.session_state[looked_for.TAB_KEY] = looked_for.TABS[1]
    return at.run()


def everything(at: AppTest) -> str:
    return "\n".join(texts(at, kind) for kind in ("markdown", "caption", "header", "dataframe", "button", "info"))


def test_a_curator_sees_what_people_look_for_and_asks_for_a_write_up(entries_dir):
    seed()
    at = open_app("insights")  # the local user curates their own copy
    assert_clean(at)
    assert [t.label for t in at.tabs] == looked_for.TABS
    assert at.get("vega_lite_chart"), "the collection's charts under its own tab"
    curators_tab(at)
    assert_clean(at)
    assert not at.get("vega_lite_chart"), "the curators' tab draws only its own"
    (top,) = at.dataframe
    assert list(top.value["Search"]) == ["data sharing agreement", NONSENSE]
    assert list(top.value["Searches"]) == [3, 1]
    shown = everything(at)
    assert f"**{NONSENSE}** · 1 search, 0 results" in shown
    assert PUBLIC in linked_ids(at) and ORG_ONLY not in linked_ids(at), "only entries the curator may see"
    assert "opened 2, reused 0" in " ".join(link.proto.label for link in at.get("page_link"))
    assert "kept for 180 days" in shown

    asks = [b for b in at.button if b.label == "Ask for a write-up"]
    assert len(asks) == 2
    asks[1].click().run()
    assert_clean(at)
    (wanted,) = load_wanted(Settings().entries_dir).open
    assert (wanted.title, wanted.query) == ("Zzqx flurble wibbleton", NONSENSE)
    assert f"Wanted: {wanted.title}" in texts(at, "caption")
    assert [b.label for b in at.button].count("Ask for a write-up") == 1
    button(at, "Mark as written").click().run()
    assert load_wanted(Settings().entries_dir).open == []


def test_contributors_and_visitors_see_neither_the_tab_nor_the_counts(entries_dir, monkeypatch):
    seed()
    monkeypatch.setenv("KB_USER_ROLES", "contributor,reviewer")
    at = open_app("insights")
    at.session_state[looked_for.TAB_KEY] = looked_for.TABS[1]  # asked for by name all the same
    at.run()
    assert_clean(at)
    assert not at.tabs and at.get("vega_lite_chart")
    assert "data sharing agreement" not in everything(at) and NONSENSE not in everything(at)

    visitor = AppTest.from_file(APP, default_timeout=TIMEOUT)
    visitor.user = {"is_logged_in": False}
    visitor.run()
    visitor.switch_page(ui.INSIGHTS_PAGE).run()
    assert_clean(visitor)
    assert not visitor.tabs and NONSENSE not in everything(visitor)


def test_the_submit_page_lists_what_is_wanted_and_starts_a_draft_with_it(entries_dir):
    add_wanted(Settings().entries_dir, "Ferry passenger data sharing", "ferry passenger data", None)
    closed = add_wanted(Settings().entries_dir, "Written already", "written", None)
    from kb.wanted import close_wanted

    close_wanted(Settings().entries_dir, closed.id, None)
    at = open_app("submit")
    assert_clean(at)
    (listed,) = [e for e in at.expander if e.label == "Write-ups people are looking for"]
    assert [b.label for b in listed.button] == ["Ferry passenger data sharing"]
    listed.button[0].click().run()
    assert at.text_input(key="draft_title").value == "Ferry passenger data sharing"

    at.text_input(key="draft_title").set_value("Something else entirely").run()
    button(at, "Ferry passenger data sharing").click().run()  # the form holds another title: kept
    assert at.text_input(key="draft_title").value == "Something else entirely"
    assert "Save or clear it first" in texts(at, "info")


def test_a_broken_wanted_file_is_a_message_for_curators_and_nothing_on_the_submit_page(entries_dir):
    (entries_dir / "wanted.yaml").write_text("wanted: [unclosed\n")
    at = open_app("submit")
    assert_clean(at)
    assert not [e for e in at.expander if e.label == "Write-ups people are looking for"]
    at = curators_tab(open_app("insights"))
    assert_clean(at)
    assert any("is not valid YAML at line" in e.value for e in at.error), [e.value for e in at.error]


def test_a_hostile_search_is_shown_as_text_on_the_tab_and_the_submit_page(entries_dir):
    hostile = "see ![pixel](http://evil.example/x.png) and [click](javascript:alert(1)) now"
    search_log(Settings()).record_search(hostile, "keyword", [])
    at = curators_tab(open_app("insights"))
    assert_clean(at)
    shown = [m.value for m in at.markdown if "pixel" in m.value]
    assert shown == [f"**{ui.plain(hostile)}** · 1 search, 0 results"]
    button(at, "Ask for a write-up").click().run()
    at = open_app("submit")
    (listed,) = [e for e in at.expander if e.label == "Write-ups people are looking for"]
    assert [b.label for b in listed.button] == [ui.plain(hostile[:1].upper() + hostile[1:])]


def test_the_app_counts_a_search_and_an_entry_once_per_visit(entries_dir):
    at = open_app("search", q="Data sharing agreement")
    at.run()  # the page drawn again: a click elsewhere, a rerun
    at.query_params["page"] = "2"
    at.run()
    at.switch_page(ui.ENTRY_PAGE)
    at.query_params.update(id=PUBLIC)
    at.run()
    at.run()
    log = search_log(Settings())
    assert [(s.query, s.searches) for s in log.searches()] == [("data sharing agreement", 1)]
    assert [(u.entry_id, u.opened, u.reused) for u in log.entries_used()] == [(PUBLIC, 1, 0)]
    open_app("search", q="Data sharing agreement")  # another visit
    assert [(s.query, s.searches) for s in log.searches()] == [("data sharing agreement", 2)]
