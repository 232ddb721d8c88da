"""Whom to ask through AppTest: the directory page (searchable, by organisation), an organisation's page
reached by a link, and the entry page's "Others who have worked on this"; anonymous teams are never named,
and a hidden organisation looks like an unknown one.

What only a browser shows (the layout on a phone, accessibility) is in tests/browser/test_people_browser.py.
"""

from __future__ import annotations

from urllib.parse import parse_qs

import pytest

from kb.store import EntryStore
from tests.app.test_app import assert_clean, open_app, texts

ANONYMOUS_ENTRY = "chatbot-for-policy-guidance-withdrawn"  # anonymous, organisation-only
ENTRY = "benefits-and-housing-data-sharing-pilot"


def shown(at) -> str:
    """Everything the page says, Markdown escapes removed."""
    links = "\n".join(str(p.proto.label) for p in at.get("page_link"))
    return (texts(at, "markdown") + texts(at, "caption") + texts(at, "header") + links).replace("\\", "")


def org_links(at) -> list[str]:
    found = []
    for link in at.get("page_link"):
        values = parse_qs(link.proto.query_string).get("org")
        if values:
            found.append(values[0])
    return list(dict.fromkeys(found))


def team_names(at) -> list[str]:
    prefix = "**:material/groups: "
    return [m.value[len(prefix) : -2].replace("\\", "") for m in at.markdown if m.value.startswith(prefix)]


def test_the_directory_lists_teams_by_organisation_with_their_work(entries_dir):
    at = open_app("people")
    assert_clean(at)
    assert [t.value for t in at.title] == ["Whom to ask"]
    teams = team_names(at)
    assert "Pupil Entitlements Data Team" in teams and len(teams) >= 20
    assert "Failed experiments" in shown(at) and "Projects" in shown(at)
    assert "Home Affairs Department" in [h.value for h in at.header]  # one heading per organisation
    assert "Home Affairs Department" in org_links(at)
    assert ENTRY in [parse_qs(p.proto.query_string).get("id", [""])[0] for p in at.get("page_link")]


def test_the_directory_is_searched_from_the_box_and_from_a_link(entries_dir):
    at = open_app("people")
    everyone = team_names(at)
    at.text_input(key="people_q").input("record linkage").run()
    assert_clean(at)
    found = team_names(at)
    assert at.query_params["q"] == "record linkage"
    assert found and len(found) < len(everyone) and set(found) <= set(everyone)
    assert team_names(open_app("people", q="record linkage")) == found  # a shared link shows the same
    at.text_input(key="people_q").input("quantum basket weaving").run()
    assert team_names(at) == []
    assert "No team, contact, theme or organisation matches" in texts(at, "info")


def test_the_directory_never_names_an_anonymous_team(entries_dir, monkeypatch):
    entry = EntryStore(entries_dir).get(ANONYMOUS_ENTRY)
    assert entry.anonymous and entry.team
    for roles in ("contributor", "contributor,curator"):  # a reader, and one who may read its names
        monkeypatch.setenv("KB_USER_ORGANISATION", entry.organisation)
        monkeypatch.setenv("KB_USER_ROLES", roles)
        at = open_app("people")
        assert_clean(at)
        assert entry.team not in shown(at) and entry.contact not in shown(at)
        at = open_app("organisation", org=entry.organisation)
        assert_clean(at)
        assert entry.team not in shown(at) and entry.contact not in shown(at)


def test_an_organisation_page_shows_entries_lighthouses_partners_and_reuse(entries_dir):
    at = open_app("organisation", org="Cabinet Digital Office")
    assert_clean(at)
    assert [t.value for t in at.title] == ["Cabinet Digital Office"]
    headers = [h.value for h in at.header]
    assert {"Entries", "Lighthouse projects", "What it reused", "Worked with", "Teams"} <= set(headers)
    assert "Northfield City Council" in org_links(at)
    assert "reused 1 lighthouse from here" in shown(at)  # Northfield reused its data sharing agreement template


def test_what_an_organisation_reused_is_listed(entries_dir):
    at = open_app("organisation", org="Environment and Rural Agency")
    assert_clean(at)
    text = shown(at)
    assert "A dashboard of support for shielding people, built in three weeks" in text


@pytest.mark.parametrize("org", ["Nowhere Office", "Ministry of Justice Services"])
def test_an_unknown_or_hidden_organisation_is_not_found(entries_dir, monkeypatch, tmp_path, org):
    if org != "Nowhere Office":  # every entry of this organisation (a partner on none) made organisation-only
        store = EntryStore(entries_dir)
        for entry_id, entry in store.load().entries.items():
            if entry.organisation == org:
                text = (entries_dir / f"{entry_id}.md").read_text(encoding="utf-8")
                (entries_dir / f"{entry_id}.md").write_text(
                    text.replace("visibility: public", "visibility: organisation"), encoding="utf-8"
                )
    monkeypatch.setenv("KB_USER_ORGANISATION", "Some Other Office")
    at = open_app("organisation", org=org)
    assert_clean(at)
    assert [t.value for t in at.title] == ["Organisation not found"]
    assert org not in texts(at, "markdown") + texts(at, "caption")
    monkeypatch.setenv("KB_USER_ORGANISATION", org)  # its own members see it
    at = open_app("organisation", org=org)
    assert [t.value for t in at.title] == (["Organisation not found"] if org == "Nowhere Office" else [org])


def test_the_entry_page_shows_others_who_have_worked_on_this(entries_dir):
    at = open_app("entry", id=ENTRY)
    assert_clean(at)
    text = shown(at)
    assert "Others who have worked on this" in text
    entry = EntryStore(entries_dir).get(ENTRY)
    others = [o for o in org_links(at) if o != entry.organisation]
    assert others, "teams from other organisations, each linked to its organisation's page"
    assert entry.organisation in org_links(at)
    assert len(others) <= 3, "a short block: three teams at most"
    more = [p for p in at.get("page_link") if p.proto.label.startswith("More teams on")]
    assert len(more) == 1 and "q=" in more[0].proto.query_string  # there are more: the directory, searched
