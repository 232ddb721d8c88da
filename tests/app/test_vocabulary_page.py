"""The Vocabulary page, through AppTest: a curator adds a theme and a synonym, is told clearly what is
wrong with a bad change, merges two themes (the retags wait in the review queue), reads the history, and
turns a candidate term into a synonym; a candidate from an entry the curator may not see shows nothing of
it; anyone else sees neither the page nor its data."""

from __future__ import annotations

import pytest
import yaml
from streamlit.testing.v1 import AppTest

from app_pages.ui import plain
from kb import Settings
from kb.searchlog import search_log
from kb.store import EntryStore
from tests.app.test_app import TIMEOUT, assert_clean, button, linked_ids, open_app, texts
from tests.conftest import ROOT

PUBLIC = "benefits-and-housing-data-sharing-pilot"
ORG_ONLY = "chatbot-for-policy-guidance-withdrawn"  # visibility organisation: Home Affairs Department
THEMES_FIELD = "draft_themes"  # the submit form's themes (app_pages/submit.py's key("themes"))


def themes(entries_dir) -> dict[str, dict]:
    return {t["id"]: t for t in yaml.safe_load((entries_dir / "vocabulary.yaml").read_text())["themes"]}


def add_theme_to_entry(entries_dir, entry_id: str, name: str) -> None:
    path = entries_dir / f"{entry_id}.md"
    path.write_text(path.read_text().replace("\nthemes:\n", f"\nthemes:\n- {name}\n", 1))


def shown(at) -> str:
    return "\n".join(texts(at, kind) for kind in ("markdown", "caption", "error", "success", "warning", "code"))


def test_a_curator_changes_the_vocabulary_and_reads_its_history(entries_dir):
    at = open_app("vocabulary")  # the local user curates their own copy
    assert_clean(at)
    assert at.title[0].value == "Vocabulary"
    assert [t.label for t in at.tabs] == ["Change the vocabulary", "Candidate terms", "History"]
    assert "No change has been made in Lighthouse yet." in shown(at)

    at.text_input(key="new_theme_label").input("Ferry data")
    at.text_area(key="new_theme_definition").input("Passenger and freight data from ferries.")
    button(at, "Add the theme").click().run()
    assert_clean(at)
    assert themes(entries_dir)["ferry-data"]["definition"] == "Passenger and freight data from ferries."
    assert plain("Added the theme “Ferry data” (ferry-data).") in shown(at)

    at.selectbox(key="synonym_theme").select("ferry-data")
    at.text_input(key="synonym_text").input("DSA")
    button(at, "Add the synonym").click().run()
    assert_clean(at)
    assert plain("'DSA' already names the theme 'data-sharing-agreements'") in texts(at, "error")
    assert "synonyms" not in themes(entries_dir)["ferry-data"]

    at.selectbox(key="merge_from").select("dashboards-and-reporting")
    at.selectbox(key="merge_into").select("data-quality")
    button(at, "Merge").click().run()
    assert_clean(at)
    assert "dashboards-and-reporting" not in themes(entries_dir)
    waiting = EntryStore(entries_dir).revisions()
    assert waiting and plain(f"{len(waiting)} entries wait in the review queue to be retagged.") in shown(at)
    in_review = "teacher-supply-model-shared-with-schools"  # left to its author, and said so
    assert in_review not in waiting
    assert plain(f"Not retagged: {in_review} (in review: its author retags it") in shown(at)
    assert "dashboards-and-reporting" not in at.selectbox(key="merge_from").options  # no longer offered

    history = shown(at)
    assert "**merged the theme 'dashboards\\-and\\-reporting' into 'data\\-quality'**" in history
    assert "**added the theme 'ferry\\-data' \\(Ferry data\\)**" in history
    assert "by Local user" in history


def test_a_candidate_term_shows_its_sources_and_becomes_a_synonym(entries_dir):
    add_theme_to_entry(entries_dir, PUBLIC, "ferry timetables")
    add_theme_to_entry(entries_dir, ORG_ONLY, "secret programme")
    search_log(Settings()).record_search("ferry timetables", "hybrid", [])
    at = open_app("vocabulary")
    assert_clean(at)
    page = shown(at)
    assert "**ferry timetables**" in page and "Searched 1 time, 0 results, none close" in page
    assert PUBLIC in linked_ids(at)
    # The local user has no organisation: the Home Affairs entry, its id and its term are not shown.
    assert "secret programme" not in page and ORG_ONLY not in linked_ids(at)

    at.selectbox(key="candidate_theme_ferry-timetables").select("data-sharing-agreements")
    button(at, "Add as a synonym").click().run()
    assert_clean(at)
    assert "ferry timetables" in themes(entries_dir)["data-sharing-agreements"]["synonyms"]
    assert "**ferry timetables**" not in shown(at)
    assert "No candidate terms" in shown(at)


def test_a_candidate_search_becomes_a_new_theme(entries_dir):
    search_log(Settings()).record_search("Quantum widgets", "keyword", [])
    at = open_app("vocabulary")
    assert "**quantum widgets**" in shown(at)
    at.text_input(key="candidate_definition_quantum-widgets").input("Widgets that are quantum.")
    button(at, "Add as a new theme").click().run()
    assert_clean(at)
    added = themes(entries_dir)["quantum-widgets"]
    assert (added["label"], added["definition"]) == ("Quantum widgets", "Widgets that are quantum.")
    assert "No candidate terms" in shown(at)


def test_only_curators_see_the_page(entries_dir, monkeypatch):
    add_theme_to_entry(entries_dir, PUBLIC, "ferry timetables")
    monkeypatch.setenv("KB_USER_ROLES", "contributor,reviewer")
    at = open_app()
    assert_clean(at)
    with pytest.raises(ValueError, match="Could not find a navigation page"):
        at.switch_page("app_pages/vocabulary.py")  # not in the navigation
    alone = AppTest.from_file(
        str(ROOT / "app_pages" / "vocabulary.py"), default_timeout=TIMEOUT
    ).run()  # the page itself
    assert not alone.exception
    assert "kept by curators" in texts(alone, "warning")
    assert "ferry timetables" not in shown(alone)
    assert not alone.button and not alone.text_input


def test_a_retired_theme_is_not_offered_in_the_form_unless_the_entry_has_it(entries_dir):
    from kb import KnowledgeBase
    from kb.vocabulary_edits import retire

    retire(KnowledgeBase(Settings()), "legacy-infrastructure", "too broad", viewer=None)
    new = open_app("submit")
    assert_clean(new)
    options = new.multiselect(key=THEMES_FIELD).options
    assert "Legacy infrastructure" not in options and "Data quality" in options

    edit = open_app("submit", edit="mainframe-blocked-pension-data-share")  # tagged with it
    assert_clean(edit)
    themes_field = edit.multiselect(key=THEMES_FIELD)
    assert "Legacy infrastructure" in themes_field.options and "legacy-infrastructure" in themes_field.value
