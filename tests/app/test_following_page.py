"""The Following page and the follow and save controls of the search, entry and showcase pages, through
Streamlit's AppTest: a signed-in person (or the local user) follows, saves, unfollows, chooses how often
the digest comes and makes feed addresses; a visitor who has not signed in is told what it is for."""

from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest

from kb import KnowledgeBase, Settings
from kb.browse import SearchRequest
from kb.database import open_database
from kb.embedder import HashingEmbedder
from kb.filters import Filters
from kb.following import Following
from kb.identity import User
from tests.app.test_app import APP, TIMEOUT, assert_clean, button, open_app, page, texts
from tests.app.test_escaping import (
    HOSTILE_ID,
    ORGANISATION,
    assert_no_image,
    hostile,  # noqa: F401  (a fixture)
    image,
    markdown_surfaces,
)
from tests.app.test_escaping import THEME as HOSTILE_THEME
from tests.app.test_escaping import open_app as open_checked
from tests.following import later, write_entry

THEME = "data-sharing-agreements"
LIGHTHOUSE = "benefit-demand-modelling-from-application-data"
LOCAL = User("Local user", roles=("contributor", "curator"), email="local@lighthouse.example")


@pytest.fixture
def local_user(entries_dir, monkeypatch):
    monkeypatch.setenv("KB_USER_EMAIL", LOCAL.email)
    return Following(open_database(Settings()))


def codes(at: AppTest) -> list[str]:
    return [c.value for c in at.code]


def test_follow_a_theme_and_save_a_search_on_the_search_page_then_see_them_on_following(local_user):
    at = open_app("search", q="data sharing", theme=THEME)
    assert_clean(at)
    button(at, "Save this search").click().run()
    assert_clean(at)
    button(at, "Follow theme Data sharing agreements").click().run()
    assert "You follow theme Data sharing agreements" in texts(at, "success")
    assert [b.label for b in at.button if b.label.startswith("Following theme")]  # the toggle now says so

    profile = local_user.profile(LOCAL)
    assert [(f.kind, f.value) for f in profile.follows] == [("theme", THEME)]
    assert [s.request.query for s in profile.searches] == ["data sharing"]

    at.switch_page(page("following")).run()
    assert_clean(at)
    links = [link.label for link in at.get("page_link")]
    assert "Theme: Data sharing agreements" in links and any("data sharing" in label for label in links)
    assert "It goes to local@lighthouse" in texts(at, "caption")  # (a dot escaped for Markdown)

    at.radio(key="digest-frequency").set_value("daily").run()
    assert local_user.profile(LOCAL).frequency == "daily"
    assert "Your digest now comes daily" in texts(at, "success")

    button(at, "Make my feed addresses").click().run()
    first = [c for c in codes(at) if "/feeds/lhf_" in c]
    assert len(first) == 3  # everything, the theme, the saved search
    secret = first[0].split("/feeds/")[1].split("/")[0]
    assert local_user.feed_owner(secret) is not None
    button(at, "Make new feed addresses").click().run()
    assert local_user.feed_owner(secret) is None  # the old secret stopped working
    button(at, "Stop my feeds").click().run()
    assert not local_user.profile(LOCAL).has_feed_secret and not [c for c in codes(at) if "lhf_" in c]

    button(at, "Unfollow").click().run()
    button(at, "Remove").click().run()
    assert_clean(at)
    profile = local_user.profile(LOCAL)
    assert profile.follows == () and profile.searches == ()


def test_following_shows_what_is_new_in_what_you_follow(local_user, settings):
    local_user.follow(LOCAL, "theme", THEME)
    kb = KnowledgeBase(settings, embedder=HashingEmbedder())
    new = write_entry(kb, "A brand new agreement lesson", themes=[THEME])
    write_entry(kb, "Not about agreements", themes=["data-quality"])
    at = open_app("following")
    assert_clean(at)
    new_links = [link.label for link in at.get("page_link") if "New entry" in link.label]
    assert new_links == [f"{new.title} · New entry"]
    assert "you follow the theme Data sharing agreements" in texts(at, "caption")
    assert later() > local_user.profile(LOCAL).seen_at


def test_follow_a_lighthouse_from_its_entry_page_and_from_the_showcase(local_user):
    at = open_app("entry", id=LIGHTHOUSE)
    button(at, "Follow this lighthouse").click().run()
    assert_clean(at)
    assert [(f.kind, f.value) for f in local_user.profile(LOCAL).follows] == [("lighthouse", LIGHTHOUSE)]
    button(at, "Follow organisation Department for Work and Welfare").click().run()
    at = open_app("showcase")
    assert_clean(at)
    assert len([b for b in at.button if b.label == "Following this lighthouse"]) == 1
    assert [b for b in at.button if b.label == "Follow this lighthouse"]


def test_a_visitor_who_has_not_signed_in_is_told_what_following_is_and_asked_to_sign_in(
    entries_dir, tmp_path, monkeypatch
):
    access = tmp_path / "access.yaml"
    access.write_text("roles:\n  default: [contributor]\n")
    monkeypatch.setenv("KB_ACCESS_FILE", str(access))
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.user = {"is_logged_in": False}
    at.run()
    at.switch_page(page("following")).run()
    assert_clean(at)
    assert not at.error
    assert "Sign in to start" in texts(at, "info")
    assert button(at, "Sign in")
    at.switch_page(page("search")).run()
    at.query_params.update({"q": "data sharing"})
    at.run()
    assert "Sign in to follow themes" in texts(at, "caption")
    assert not [b for b in at.button if b.label == "Save this search"]


def test_a_signed_in_person_follows_under_their_own_address(entries_dir, tmp_path, monkeypatch):
    access = tmp_path / "access.yaml"
    access.write_text("domains:\n  had.example.gov: Home Affairs Department\n")
    monkeypatch.setenv("KB_ACCESS_FILE", str(access))
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.user = {
        "is_logged_in": True,
        "sub": "ada",
        "name": "Ada Analyst",
        "email": "ada@had.example.gov",
        "email_verified": True,
    }
    at.run()
    at.switch_page(page("entry")).run()
    at.query_params.update({"id": LIGHTHOUSE})
    at.run()
    button(at, "Follow this lighthouse").click().run()
    assert_clean(at)
    ada = User("Ada Analyst", "Home Affairs Department", local=False, email="ada@had.example.gov")
    profile = Following(open_database(Settings())).profile(ada)
    assert profile.organisation == "Home Affairs Department" and profile.follows[0].value == LIGHTHOUSE


@pytest.mark.usefixtures("hostile")
def test_nothing_followed_renders_an_image_from_user_text(monkeypatch):
    monkeypatch.setenv("KB_USER_EMAIL", LOCAL.email)
    following = Following(open_database(Settings()))
    me = User("Local user", email=LOCAL.email)
    for kind, value in (("theme", HOSTILE_THEME), ("organisation", ORGANISATION), ("lighthouse", HOSTILE_ID)):
        following.follow(me, kind, value)
    following.save_search(me, SearchRequest(query=f"Quokka {image('saved')}", facets=Filters.of(theme=[HOSTILE_THEME])))
    for name, query in (
        ("following", {}),
        ("entry", {"id": HOSTILE_ID}),
        ("search", {"q": "quokka", "theme": HOSTILE_THEME, "organisation": ORGANISATION}),
    ):
        at = open_checked(name, **query)
        assert any("Quokka" in text for _, text in markdown_surfaces(at)), name
        assert_no_image(at)
        if name == "following":  # the feed addresses name each follow and search
            button(at, "Make my feed addresses").click().run()
            assert_no_image(at)
