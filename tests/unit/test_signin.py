"""Sign-in: a `User` from OpenID Connect claims and the access file, and how the app shows who you are.

The real flow against an OpenID provider is in test_signin_browser.py; here the app runs through AppTest,
whose `user` stands in for `st.user`.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from kb.access import ANONYMOUS, can_see
from kb.drafting import Draft, save_draft
from kb.errors import KBError
from kb.identity import User
from kb.signin import (
    SIGNED_IN_NAME,
    Access,
    AccessFileError,
    access_file,
    address_not_used,
    load_access,
    parse_access,
    user_from_claims,
)
from tests.conftest import ROOT

APP = str(ROOT / "app.py")
HAD = "Home Affairs Department"
ACCESS = parse_access(
    {
        "domains": {"had.example.gov": HAD, "@DWW.example.gov.": "Department for Work and Welfare"},
        "roles": {
            "default": ["contributor"],
            "organisations": {"home affairs department": ["reviewer"]},
            "users": {"Ada@had.example.gov": ["admin"]},
        },
    }
)
VERIFIED = {"email_verified": True}  # the provider vouches for the address


# --------------------------------------------------------------------------- claims to a user


def test_a_verified_address_gives_the_organisation_of_its_domain_and_the_roles_add_up():
    user = user_from_claims({"sub": "1", "name": "Ada Lovelace", "email": "ada@had.example.gov", **VERIFIED}, ACCESS)
    assert user == User(
        "Ada Lovelace", HAD, ("contributor", "reviewer", "admin"), local=False, email="ada@had.example.gov", subject="1"
    )
    assert user.account == "ada@had.example.gov"  # where their follows are kept and their digest goes
    assert user.as_author == "Ada Lovelace <ada@had.example.gov>"  # what they write is theirs, not their name's
    assert user.is_reviewer and user.is_contributor and user.has_role("curator")


def test_subdomains_belong_to_the_organisation_and_case_does_not_matter():
    claims = {"sub": "2", "email": "Bo@Digital.HAD.example.gov", "email_verified": True}
    assert user_from_claims(claims, ACCESS).organisation == HAD
    assert user_from_claims({"sub": "3", "email": "cy@dww.example.gov", **VERIFIED}, ACCESS).organisation == (
        "Department for Work and Welfare"
    )


def test_a_lookalike_domain_is_not_the_organisation():
    for email in ("eve@nothad.example.gov", "eve@had.example.gov.evil.test", "had.example.gov@evil.test"):
        user = user_from_claims({"sub": "4", "email": email, **VERIFIED}, ACCESS)
        assert user.organisation == "" and user.roles == ("contributor",), email


def test_an_unverified_address_gives_no_organisation_and_no_personal_roles():
    for verified in (False, "false"):
        user = user_from_claims({"sub": "5", "email": "ada@had.example.gov", "email_verified": verified}, ACCESS)
        assert (user.organisation, user.roles) == ("", ("contributor",))
        assert user.name == "5"  # the address is not shown as the name either
        assert user.email == "" and user.account == ""  # nor is a digest ever sent to it


def test_an_address_the_provider_does_not_vouch_for_counts_only_where_the_access_file_says_so():
    # Microsoft Entra ID sends no email_verified claim, and in a multi-tenant app anyone may type any address.
    claims = {"sub": "5b", "name": "Ada Lovelace", "email": "ada@had.example.gov"}
    unvouched = user_from_claims(claims, ACCESS)
    assert (unvouched.organisation, unvouched.roles, unvouched.email) == ("", ("contributor",), "")
    assert unvouched.as_author == "Ada Lovelace <sub:5b>"
    for odd in ("yes", "1", 1, "", [True], {"value": True}):  # only true, or its spelling, is a yes
        assert user_from_claims({**claims, "email_verified": odd}, ACCESS).email == "", odd
    assert user_from_claims({**claims, "email_verified": " TRUE "}, ACCESS).email == "ada@had.example.gov"

    trusting = parse_access({"domains": {"had.example.gov": HAD}, "email_verified_default": True})
    trusted = user_from_claims(claims, trusting)
    assert (trusted.organisation, trusted.email) == (HAD, "ada@had.example.gov")
    # the default fills in a missing claim only: the provider's own "no" still stands
    assert user_from_claims({**claims, "email_verified": False}, trusting).email == ""


def test_no_address_or_id_can_make_a_name_that_spells_someone_else_s():
    """`Name <id>` is compared by the part in brackets: an id or address holding a bracket or a space is
    no id, so a provider id like "x <ada@had.example.gov" never becomes Ada's key."""
    ada = user_from_claims({"sub": "1", "name": "Ada", "email": "ada@had.example.gov", **VERIFIED}, ACCESS)
    for claims in (
        {"sub": "x <ada@had.example.gov", "name": "Eve"},
        {"sub": "9", "name": "Eve", "email": "eve <ada@had.example.gov", **VERIFIED},
        {"sub": "9", "name": "Eve", "email": "ada@had.example.gov>", **VERIFIED},
    ):
        eve = user_from_claims(claims, ACCESS)
        assert eve.author_key != ada.author_key and not eve.wrote(ada.as_author), claims
        assert not ada.wrote(eve.as_author), claims
    assert user_from_claims({"sub": "x <y", "name": "Eve"}, ACCESS).subject == ""
    assert user_from_claims({"sub": " 1234 ", "name": "Eve"}, ACCESS).subject == "1234"


def test_why_an_address_is_not_used_is_told_apart():
    claims = {"sub": "1", "name": "Ada", "email": "ada@had.example.gov"}
    assert address_not_used(claims, ACCESS) == "unsaid"
    assert address_not_used({**claims, "email_verified": False}, ACCESS) == "unconfirmed"
    assert address_not_used({**claims, "email_verified": "false"}, ACCESS) == "unconfirmed"
    assert address_not_used({**claims, **VERIFIED}, ACCESS) == ""
    trusting = parse_access({"email_verified_default": True})
    assert address_not_used(claims, trusting) == "" and address_not_used({**claims, "email_verified": False}, trusting)
    for malformed in ("ada <x@had.example.gov>", "   ", ["ada@had.example.gov"], None):  # no address to speak of
        assert address_not_used({**claims, "email": malformed}, ACCESS) == "", malformed


def test_email_verified_default_must_be_true_or_false():
    assert parse_access({}).email_verified_default is False
    with pytest.raises(AccessFileError) as raised:
        parse_access({"email_verified_default": "yes"}, "access.yaml")
    assert [(p.field, p.message) for p in raised.value.problems] == [
        ("email_verified_default", "expected true or false")
    ]


def test_the_organisation_claim_wins_over_the_domain():
    access = parse_access({"organisation_claim": "org", "domains": {"had.example.gov": HAD}})
    claims = {"sub": "6", "email": "ada@had.example.gov", "org": " Cabinet  Digital Office ", **VERIFIED}
    assert user_from_claims(claims, access).organisation == "Cabinet Digital Office"
    assert user_from_claims({**claims, "org": ["Cabinet Digital Office"]}, access).organisation == (
        "Cabinet Digital Office"
    )
    # an empty or ambiguous claim falls back on the domain
    for value in ("", None, ["A", "B"], 42):
        assert user_from_claims({**claims, "org": value}, access).organisation == HAD


def test_the_name_comes_from_name_then_username_then_email_then_subject():
    access = Access()
    assert (
        user_from_claims(
            {"sub": "s", "email": "e@x.test", "preferred_username": "pu", "name": "N", **VERIFIED}, access
        ).name
        == "N"
    )
    assert (
        user_from_claims({"sub": "s", "email": "e@x.test", "preferred_username": "pu", **VERIFIED}, access).name == "pu"
    )
    assert user_from_claims({"sub": "s", "email": "e@x.test", "name": "  ", **VERIFIED}, access).name == "e@x.test"
    assert user_from_claims({"sub": "s"}, access).name == "s"
    assert user_from_claims({}, access).name == SIGNED_IN_NAME


def test_a_signed_in_person_sees_internal_entries_and_only_their_organisations():
    user = user_from_claims({"sub": "7", "email": "ada@had.example.gov", **VERIFIED}, ACCESS)
    assert not user.local and user.name
    assert can_see(user, {"visibility": "internal", "status": "published"})
    assert can_see(user, {"visibility": "organisation", "organisation": HAD, "status": "published"})
    assert not can_see(user, {"visibility": "organisation", "organisation": "Other", "status": "published"})
    assert not can_see(ANONYMOUS, {"visibility": "internal", "status": "published"})


def test_defaults_make_every_signed_in_person_a_contributor_without_an_organisation():
    user = user_from_claims({"sub": "8", "email": "ada@had.example.gov", "name": "Ada", **VERIFIED}, Access())
    assert user == User("Ada", "", ("contributor",), local=False, email="ada@had.example.gov", subject="8")
    readers = parse_access({"roles": {"default": []}})
    assert user_from_claims({"sub": "9"}, readers).roles == ()


def test_only_contributors_and_reviewers_may_save_an_entry(kb):
    draft = Draft(title="Signed out", organisation=HAD, summary="Nobody signed in wrote this.", kind="project")
    for viewer in (ANONYMOUS, User("Rea Reader", HAD, (), local=False)):
        with pytest.raises(KBError, match="contributor role"):
            save_draft(kb, draft, viewer, status="draft")


# --------------------------------------------------------------------------- the access file


def test_roles_may_be_a_list_or_a_comma_separated_string_in_any_case():
    access = parse_access({"roles": {"default": "Contributor, reviewer", "users": {"a@b.test": ["CURATOR"]}}})
    assert access.default_roles == ("contributor", "reviewer")
    assert access.user_roles == {"a@b.test": ("curator",)}


@pytest.mark.parametrize(
    ("data", "field", "words"),
    [
        ({"roles": {"default": ["reviwer"]}}, "roles.default", "unknown role 'reviwer'; the roles are contributor"),
        ({"roles": {"users": {"ada@x.test": ["boss"]}}}, "roles.users.ada@x.test", "unknown role 'boss'"),
        ({"roles": {"users": {"ada": ["admin"]}}}, "roles.users.ada", "expected an e-mail address"),
        ({"roles": {"organisations": {"HAD": {"x": 1}}}}, "roles.organisations.HAD", "expected a list of roles"),
        ({"roles": {"admins": ["a@b.test"]}}, "roles.admins", "unknown field; use default, organisations, users"),
        ({"roles": ["admin"]}, "roles", "expected a mapping"),
        ({"domain": {"had.example.gov": HAD}}, "domain", "unknown field; use organisation_claim, domains, roles"),
        ({"domains": {"ada@had.example.gov": HAD}}, "domains.ada@had.example.gov", "expected an e-mail domain"),
        ({"domains": {"had.example.gov": ""}}, "domains.had.example.gov", "expected the name of an organisation"),
        ({"organisation_claim": ["org"]}, "organisation_claim", "expected the name of a claim"),
    ],
)
def test_a_bad_access_file_names_the_file_and_the_field(data, field, words):
    with pytest.raises(AccessFileError) as caught:
        parse_access(data, "conf/access.yaml")
    message = str(caught.value)
    assert message.startswith(f"conf/access.yaml, field '{field}': ") and words in message, message


def test_every_problem_is_reported_at_once():
    with pytest.raises(AccessFileError) as caught:
        parse_access({"domains": {"x.test": 1}, "roles": {"default": ["nobody"]}})
    assert len(caught.value.problems) == 2


def test_load_access_reads_the_named_file_and_reports_yaml_errors_with_the_line(tmp_path):
    path = tmp_path / "access.yaml"
    path.write_text("domains:\n  had.example.gov: Home Affairs Department\n", encoding="utf-8")
    assert load_access(environ={"KB_ACCESS_FILE": str(path)}).domains == {"had.example.gov": HAD}
    path.write_text("roles:\n  default: [contributor\n", encoding="utf-8")
    with pytest.raises(AccessFileError, match=rf"^{path}: not valid YAML at line \d"):
        load_access(path)
    path.write_text("- just a list\n", encoding="utf-8")
    with pytest.raises(AccessFileError, match="not a list"):
        load_access(path)
    path.write_text("", encoding="utf-8")
    assert load_access(path) == Access()


def test_a_missing_default_file_means_the_defaults_but_a_named_one_must_exist(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert access_file({}) == (Path("access.yaml"), False)
    assert load_access(environ={}) == Access()
    with pytest.raises(AccessFileError, match="does not exist"):
        load_access(environ={"KB_ACCESS_FILE": str(tmp_path / "nowhere.yaml")})


def test_the_shipped_access_file_is_valid():
    assert load_access(Path(APP).parent / "access.yaml") == Access()


# --------------------------------------------------------------------------- the app


def run_app(user: dict | None = None) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=60)
    if user is not None:
        at.user = user
    return at.run()


def sidebar_text(at: AppTest) -> str:
    kinds = ("markdown", "caption", "info", "error")
    return "\n".join(str(e.value) for kind in kinds for e in at.sidebar.get(kind))


def labels(at: AppTest) -> list[str]:
    return [b.label for b in at.sidebar.button]


def test_without_sign_in_the_app_is_in_local_mode_and_says_so(entries_dir, monkeypatch):
    monkeypatch.setenv("KB_USER_NAME", "Ada Analyst")
    at = run_app()  # AppTest's default user has no is_logged_in: no [auth] section
    assert not at.exception
    banner = "\n".join(str(e.value) for e in at.sidebar.info)
    assert "Local mode" in banner and "Ada Analyst" in banner and "docs/signin.md" in banner
    assert "Sign in" not in labels(at) and "Sign out" not in labels(at)


def test_signed_out_visitors_see_a_sign_in_button_and_public_entries_only(entries_dir, monkeypatch):
    monkeypatch.setenv("KB_USER_NAME", "Local operator")
    monkeypatch.setenv("KB_USER_ORGANISATION", HAD)
    at = run_app({"is_logged_in": False})
    assert not at.exception
    text = sidebar_text(at)
    assert "Not signed in" in text and "Local operator" not in text and "Local mode" not in text
    assert "Sign in" in labels(at)
    with pytest.raises(ValueError, match="Could not find a navigation page"):
        at.switch_page("app_pages/review.py")  # no role, no review queue

    at.switch_page("app_pages/submit.py").run()
    assert not at.exception
    assert "Sign in to submit" in "\n".join(str(e.value) for e in at.info)
    assert not at.get("form"), "a visitor gets no submission form"


def test_the_sidebar_says_why_an_address_is_not_used(entries_dir, monkeypatch, tmp_path):
    """After unverified addresses stopped counting, someone whose provider does not vouch for theirs is
    told why they have no organisation, and what would change it, rather than left to guess."""
    access = tmp_path / "access.yaml"
    access.write_text("domains:\n  had.example.gov: Home Affairs Department\n", encoding="utf-8")
    monkeypatch.setenv("KB_ACCESS_FILE", str(access))
    claims = {"is_logged_in": True, "sub": "1", "name": "Ada Lovelace", "email": "ada@had.example.gov"}
    unsaid = sidebar_text(run_app(claims))
    assert "No organisation given" in unsaid and "did not say it has confirmed" in unsaid and "can change" in unsaid
    unconfirmed = sidebar_text(run_app({**claims, "email_verified": False}))
    assert "is not confirmed" in unconfirmed and "Confirm it with your provider" in unconfirmed
    vouched = sidebar_text(run_app({**claims, **VERIFIED}))
    assert HAD in vouched and "confirm" not in vouched


def test_signed_in_people_see_who_they_are_and_a_sign_out_button(entries_dir, monkeypatch, tmp_path):
    access = tmp_path / "access.yaml"
    access.write_text("domains:\n  had.example.gov: Home Affairs Department\n", encoding="utf-8")
    monkeypatch.setenv("KB_ACCESS_FILE", str(access))
    at = run_app({"is_logged_in": True, "sub": "1", "name": "Ada Lovelace", "email": "ada@had.example.gov", **VERIFIED})
    assert not at.exception
    text = sidebar_text(at)
    assert "Ada Lovelace" in text and HAD in text and "Contributor: you can" in text
    assert "Sign out" in labels(at) and "Sign in" not in labels(at)


def test_a_broken_access_file_shows_public_entries_only_and_hides_the_details(entries_dir, monkeypatch, tmp_path):
    access = tmp_path / "access.yaml"
    access.write_text("roles:\n  users:\n    boss@had.example.gov: [emperor]\n", encoding="utf-8")
    monkeypatch.setenv("KB_ACCESS_FILE", str(access))
    at = run_app({"is_logged_in": True, "sub": "1", "name": "Ada Lovelace", "email": "ada@had.example.gov", **VERIFIED})
    assert not at.exception
    errors = "\n".join(str(e.value) for e in at.sidebar.error)
    assert "sign-in settings have a problem" in errors and "boss@" not in errors
    assert "Sign out" in labels(at)


def test_two_people_who_share_a_display_name_are_never_each_other_s_author():
    """A display name is the person's own to choose at the provider: what they write is kept under their
    address (or, without one, the provider's id for them), and only that is compared."""
    ada = user_from_claims({"sub": "10", "name": "Ada Lovelace", "email": "ada@had.example.gov", **VERIFIED}, ACCESS)
    copy = user_from_claims(
        {"sub": "11", "name": "Ada Lovelace", "email": "mallory@had.example.gov", **VERIFIED}, ACCESS
    )
    unverified = user_from_claims(
        {"sub": "12", "name": "Ada Lovelace", "email": "ada@had.example.gov", "email_verified": False}, ACCESS
    )
    assert len({ada.as_author, copy.as_author, unverified.as_author}) == 3
    assert unverified.as_author == "Ada Lovelace <sub:12>"
    local = User("Ada Lovelace", HAD)
    assert local.as_author == "Ada Lovelace"  # the local user, named by the operator, is named alone
