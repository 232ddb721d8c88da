"""Editing and reviewing under the access rules: who may edit, where an edit of a published entry waits,
who may approve or send it back, stale versions and withdrawn edits, through the library and the app."""

from __future__ import annotations

import contextlib
from dataclasses import replace
from pathlib import Path

import pytest
import yaml
from streamlit.testing.v1 import AppTest

from kb import Conflict, KBError, NotFound, editing, review
from kb.access import ANONYMOUS
from kb.drafting import Draft, save_draft
from kb.editing import open_edit, save_edit, withdraw
from kb.errors import Forbidden
from kb.identity import User
from tests.conftest import ROOT

APP = str(ROOT / "app.py")
TIMEOUT = 60

OWNER_ORG = "Alpha Office"
OTHER_ORG = "Beta Agency"

AUTHOR = User("Dee Author", OTHER_ORG, ("contributor",), local=False)  # wrote it, from another organisation
COLLEAGUE = User("Cat Colleague", OWNER_ORG, ("contributor",), local=False)
SECOND_COLLEAGUE = User("Cy Colleague", OWNER_ORG, ("contributor",), local=False)
CURATOR = User("Cora Curator", OTHER_ORG, ("curator",), local=False)
ADMIN = User("Adam Admin", OTHER_ORG, ("admin",), local=False)
OUTSIDER = User("Otto Outsider", OTHER_ORG, ("contributor",), local=False)
READER = User("Rhea Reader", OWNER_ORG, (), local=False)
OWNER_REVIEWER = User("Rita Reviewer", OWNER_ORG, ("contributor", "reviewer"), local=False)
REVIEWER = User("Ravi Reviewer", OTHER_ORG, ("reviewer",), local=False)
AUTHOR_AS_REVIEWER = User(AUTHOR.name, OTHER_ORG, ("contributor", "reviewer"), local=False)
OWNER_CURATOR = User("Olu Curator", OWNER_ORG, ("curator",), local=False)  # sees Alpha Office's own entries

ENTRY = "alpha-ledger-pilot"  # published, public, Alpha Office, written by AUTHOR
HIDDEN = "alpha-only-ledger-audit"  # published, Alpha Office only
DANAS_DRAFT = "alpha-ledger-draft-by-dana"  # a draft by someone else of Alpha Office
MISSING = "no-such-ledger-entry"
OLD_WORDS = "quokka tallies"
NEW_SUMMARY = "The wombat ledgers were reconciled across four councils."
NEW_WORDS = "wombat"


def write_entry(folder: Path, entry_id: str, **fields) -> str:
    """An entry file with YAML front matter (public, published, Alpha Office unless told otherwise)."""
    front = {
        "id": entry_id,
        "title": entry_id.replace("-", " ").capitalize(),
        "summary": f"What the {entry_id.replace('-', ' ')} taught us about {OLD_WORDS}.",
        "kind": "project",
        "outcome": "partial",
        "organisation": OWNER_ORG,
        "status": "published",
        "visibility": "public",
        **fields,
    }
    text = yaml.safe_dump(front, sort_keys=False, allow_unicode=True)
    lessons = f"Count the {OLD_WORDS} before the {entry_id.replace('-', ' ')} starts."
    (folder / f"{entry_id}.md").write_text(f"---\n{text}---\n\n## Lessons\n\n{lessons}\n", encoding="utf-8")
    return entry_id


@pytest.fixture
def collection(kb, entries_dir):
    write_entry(entries_dir, ENTRY, author=AUTHOR.as_author)
    write_entry(entries_dir, HIDDEN, visibility="organisation", author="Dana Drafter")
    write_entry(entries_dir, DANAS_DRAFT, status="draft", author="Dana Drafter")
    kb.sync()
    return kb


def disk(folder: Path) -> dict[str, bytes]:
    """Every file under the entries folder, history and revisions included (the lock file holds nothing)."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file() and p.name != ".lock"}


def published_bytes(folder: Path) -> bytes:
    return (folder / f"{ENTRY}.md").read_bytes()


def edit(route: str, kb, user: User, entry_id: str, summary: str, status: str):
    """Change an entry's summary through the editing API, or through the form's `save_draft`."""
    if route == "editing":
        target = open_edit(kb, entry_id, user)
        return save_edit(kb, target, replace(target.entry, summary=summary), user, status=status).entry
    draft = Draft.from_entry(kb.stored(entry_id))  # what a form would hold; save_draft decides the rest
    draft.summary = summary
    return save_draft(kb, draft, user, status=status, edit_id=entry_id)


def propose(kb, user: User, summary: str, status: str):
    """`user`'s edit of ENTRY, which waits for review as a revision when they are not a reviewer."""
    target = open_edit(kb, ENTRY, user)
    return save_edit(kb, target, replace(target.entry, summary=summary), user, status=status)


def queue_item(kb, viewer: User | None, entry_id: str, *, revision: bool):
    found = [i for i in review.review_queue(kb, viewer) if (i.entry.id, i.revision) == (entry_id, revision)]
    assert len(found) <= 1
    return found[0] if found else None


def found_by(kb, words: str, viewer: User | None) -> list[str]:
    return [h.id for h in kb.search(words, mode="bm25", limit=50, viewer=viewer)]


def not_found_words(call, entry_id: str) -> str:
    with pytest.raises(NotFound) as refused:
        call(entry_id)
    return str(refused.value).replace(entry_id, "<id>")


def open_app(page: str, **query: str) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=TIMEOUT).run()
    at.switch_page(f"app_pages/{page}.py").run()
    at.query_params.update(query)
    return at.run()


def as_local_user(monkeypatch, name: str, organisation: str, roles: str) -> None:
    """Who the app's next run is for (read from KB_USER_* on every run)."""
    monkeypatch.setenv("KB_USER_NAME", name)
    monkeypatch.setenv("KB_USER_ORGANISATION", organisation)
    monkeypatch.setenv("KB_USER_ROLES", roles)


# --------------------------------------------------------------------------- 7. who may edit

ROUTES = ["editing", "drafting"]
EDITORS = {"author": AUTHOR, "owning organisation": COLLEAGUE, "curator": CURATOR, "admin": ADMIN}
MAY_SEE_NOT_EDIT = {"another organisation": OUTSIDER, "reader without roles": READER, "visitor": ANONYMOUS}
MAY_NOT_SEE = {
    "curator, organisation-only entry": (CURATOR, HIDDEN),
    "admin, organisation-only entry": (ADMIN, HIDDEN),
    "contributor, organisation-only entry": (OUTSIDER, HIDDEN),
    "colleague, someone else's draft": (COLLEAGUE, DANAS_DRAFT),
}


@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize("editor", EDITORS)
def test_the_author_the_owning_organisation_curators_and_admins_may_edit(collection, route, editor):
    user = EDITORS[editor]
    saved = edit(route, collection, user, ENTRY, NEW_SUMMARY, status="in-review")
    waits = not user.is_reviewer  # a non-reviewer's edit of a published entry waits for review
    assert (collection.store.revision(ENTRY) is not None) == waits
    # Either way the change is recorded as theirs, so they never approve it themselves.
    assert saved.revised_by == user.name
    written = collection.store.revision(ENTRY)[0] if waits else collection.stored(ENTRY)
    assert written.summary == NEW_SUMMARY


@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize("who", MAY_SEE_NOT_EDIT)
def test_others_who_may_read_an_entry_may_not_edit_it(collection, entries_dir, route, who):
    before = disk(entries_dir)
    with pytest.raises(KBError) as refused:
        edit(route, collection, MAY_SEE_NOT_EDIT[who], ENTRY, NEW_SUMMARY, status="in-review")
    assert not isinstance(refused.value, NotFound)  # they may read it: it is not "not found"
    assert disk(entries_dir) == before


@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize("case", MAY_NOT_SEE)
def test_nobody_may_edit_what_they_may_not_see(collection, entries_dir, route, case):
    user, entry_id = MAY_NOT_SEE[case]
    before = disk(entries_dir)
    missing = not_found_words(lambda i: edit(route, collection, user, i, NEW_SUMMARY, "in-review"), MISSING)
    hidden = not_found_words(lambda i: edit(route, collection, user, i, NEW_SUMMARY, "in-review"), entry_id)
    assert hidden == missing
    assert disk(entries_dir) == before


def test_entry_page_offers_editing_only_to_those_who_may_edit(collection, monkeypatch):
    as_local_user(monkeypatch, AUTHOR.name, OTHER_ORG, "contributor")
    at = open_app("entry", id=ENTRY)
    for name, organisation, roles, may_edit in (
        (AUTHOR.name, OTHER_ORG, "contributor", True),
        (COLLEAGUE.name, OWNER_ORG, "contributor", True),
        (CURATOR.name, OTHER_ORG, "curator", True),
        (ADMIN.name, OTHER_ORG, "admin", True),
        (OUTSIDER.name, OTHER_ORG, "contributor", False),
        (READER.name, OWNER_ORG, ",", False),  # no roles at all (a blank value would mean the defaults)
    ):
        as_local_user(monkeypatch, name, organisation, roles)
        at.run()
        assert not at.exception, [e.value for e in at.exception]
        assert at.title[0].value == "Alpha ledger pilot", name
        assert ("Edit this entry" in [b.label for b in at.button]) == may_edit, name


def test_edit_form_refuses_an_outsider_and_shows_no_form(collection, monkeypatch):
    as_local_user(monkeypatch, OUTSIDER.name, OTHER_ORG, "contributor")
    at = open_app("submit", edit=ENTRY)
    assert not at.exception, [e.value for e in at.exception]
    assert "only the entry's author" in " ".join(e.value for e in at.error).replace("\\", "").lower()
    assert not [w for w in at.text_input if w.key == "draft_title"]
    assert not [b for b in at.button if b.label in ("Send for review", "Save as draft")]
    as_local_user(monkeypatch, COLLEAGUE.name, OWNER_ORG, "contributor")
    at.run()  # the same page for someone who may edit: the form, filled in
    assert at.text_input(key="draft_title").value == "Alpha ledger pilot"


# --------------------------------------------------------------------------- 8. edits of published entries wait


def test_a_draft_edit_of_a_published_entry_leaves_it_published(collection, entries_dir):
    kb, before = collection, published_bytes(entries_dir)
    draft = Draft.from_entry(open_edit(kb, ENTRY, COLLEAGUE).entry)
    draft.summary = NEW_SUMMARY
    saved = save_draft(kb, draft, COLLEAGUE, status="draft", edit_id=ENTRY)
    assert saved.revised_by == COLLEAGUE.name
    assert published_bytes(entries_dir) == before
    for reader in (ANONYMOUS, READER):
        assert kb.get(ENTRY, viewer=reader).status == "published"
        assert ENTRY in found_by(kb, OLD_WORDS, reader)
        assert ENTRY not in found_by(kb, NEW_WORDS, reader)  # readers see the published version only
    revision, _ = kb.store.revision(ENTRY)
    assert (revision.summary, revision.status, revision.revised_by) == (NEW_SUMMARY, "draft", COLLEAGUE.name)


def test_a_pending_edit_reaches_the_review_queue_once_sent_for_review(collection, entries_dir):
    kb, before = collection, published_bytes(entries_dir)
    propose(kb, COLLEAGUE, NEW_SUMMARY, status="draft")
    assert queue_item(kb, REVIEWER, ENTRY, revision=True) is None  # a draft is not waiting for anyone yet
    target = open_edit(kb, ENTRY, COLLEAGUE)  # the proposer opens their own edit again
    assert (target.entry.summary, target.waits_for_review) == (NEW_SUMMARY, True)
    assert target.revision_version == kb.store.revision(ENTRY)[1]
    save_edit(kb, target, replace(target.entry, summary="Reconciled in five councils."), COLLEAGUE, status="in-review")
    item = queue_item(kb, REVIEWER, ENTRY, revision=True)
    assert item is not None and item.may_review
    assert (item.entry.summary, item.proposer) == ("Reconciled in five councils.", COLLEAGUE.name)
    assert queue_item(kb, REVIEWER, ENTRY, revision=False) is None  # the published entry is not in review
    assert published_bytes(entries_dir) == before


@pytest.mark.parametrize("route", ROUTES)
def test_nobody_else_may_start_an_edit_while_one_is_pending(collection, entries_dir, route):
    propose(collection, COLLEAGUE, NEW_SUMMARY, status="draft")
    before = disk(entries_dir)
    for other in (SECOND_COLLEAGUE, AUTHOR, CURATOR, OWNER_REVIEWER):
        with pytest.raises(KBError) as refused:
            edit(route, collection, other, ENTRY, "A second edit.", status="in-review")
        assert not isinstance(refused.value, NotFound), other
    assert disk(entries_dir) == before


def test_a_reviewer_who_edits_may_keep_the_entry_published(collection, entries_dir):
    kb, before = collection, disk(entries_dir)
    with pytest.raises(KBError):  # someone who is not a reviewer may not
        propose(kb, COLLEAGUE, NEW_SUMMARY, status="published")
    assert disk(entries_dir) == before
    result = propose(kb, OWNER_REVIEWER, NEW_SUMMARY, status="published")
    assert not result.pending_review and kb.store.revision(ENTRY) is None
    stored = kb.stored(ENTRY)
    assert (stored.summary, stored.status) == (NEW_SUMMARY, "published")
    assert ENTRY in found_by(kb, NEW_WORDS, ANONYMOUS)


def test_an_editor_who_may_not_see_an_anonymous_entrys_names_cannot_reveal_them(kb, entries_dir):
    # A colleague may edit an anonymous entry without seeing its team, contact or author; the form gives
    # them blank fields, and saving puts the stored values back. Unticking "anonymous" must not then show
    # the stored values to them (or else a reader learns who wrote it, by proposing an edit).
    names = {"team": "Ledger Reconciliation Team", "contact": "ledgers@alpha.example.gov", "author": "Sam Adeyemi"}
    write_entry(entries_dir, ENTRY, anonymous=True, **names)
    kb.sync()
    target = open_edit(kb, ENTRY, COLLEAGUE)
    assert (target.entry.team, target.entry.contact, target.entry.author) == ("", "", "")
    with contextlib.suppress(KBError):  # refusing the change would be one way to keep the names from them
        save_edit(kb, target, replace(target.entry, anonymous=False), COLLEAGUE, status="draft")
    pending = kb.store.revision(ENTRY)
    if pending is not None:  # whatever is kept for review still holds the names: nothing is blanked
        assert pending[0].team == names["team"] and pending[0].author == names["author"]
    again = open_edit(kb, ENTRY, COLLEAGUE).entry
    assert (again.team, again.contact, again.author) == ("", "", "")


def test_an_authors_edit_of_their_published_entry_waits_for_review_even_when_they_review(collection, entries_dir):
    # Kept published, their own words would reach readers with nobody else having read them.
    kb, before = collection, published_bytes(entries_dir)
    target = open_edit(kb, ENTRY, AUTHOR_AS_REVIEWER)
    assert target.waits_for_review and set(target.statuses) == {"draft", "in-review"}
    with pytest.raises(KBError):
        save_edit(kb, target, replace(target.entry, summary=NEW_SUMMARY), AUTHOR_AS_REVIEWER, status="published")
    assert published_bytes(entries_dir) == before and kb.store.revision(ENTRY) is None
    result = save_edit(kb, target, replace(target.entry, summary=NEW_SUMMARY), AUTHOR_AS_REVIEWER, status="in-review")
    assert result.pending_review and published_bytes(entries_dir) == before
    item = queue_item(kb, AUTHOR_AS_REVIEWER, ENTRY, revision=True)
    assert not item.may_review
    assert_refused_and_unchanged(review_actions(kb, ENTRY, AUTHOR_AS_REVIEWER, item.version, True), entries_dir)
    review.approve(kb, ENTRY, REVIEWER, item.version, revision=True)
    stored = kb.stored(ENTRY)
    assert (stored.summary, stored.status, stored.reviewer) == (NEW_SUMMARY, "published", REVIEWER.name)


def clear_lighthouse(route: str, kb, user: User, entry_id: str, status: str) -> None:
    """Save `user`'s edit of an entry that makes it no longer a lighthouse project."""
    if route == "editing":
        target = open_edit(kb, entry_id, user)
        save_edit(kb, target, replace(target.entry, lighthouse=None), user, status=status)
        return
    draft = Draft.from_entry(open_edit(kb, entry_id, user).entry)  # the form as this user is shown it
    draft.lighthouse_stage, draft.lighthouse_impact, draft.lighthouse_benefits = "", "", ""
    draft.lighthouse_reused_by = []
    save_draft(kb, draft, user, status=status, edit_id=entry_id)


@pytest.mark.parametrize("route", ROUTES)
def test_an_editor_may_not_clear_a_lighthouse_reused_by_entries_hidden_from_them(collection, entries_dir, route):
    # Clearing the stage drops the whole reuse list, the links this editor was never shown included.
    kb = collection
    beta = write_entry(
        entries_dir,
        "beta-ledger-lighthouse",
        organisation=OTHER_ORG,
        author="Bo Beta",
        lighthouse={"stage": "proven", "impact": "Ledgers agree.", "reused_by": [HIDDEN, ENTRY]},
    )
    kb.sync()
    before = disk(entries_dir)
    for status in ("draft", "in-review"):
        with pytest.raises(KBError, match="reused by entries you cannot see"):
            clear_lighthouse(route, kb, OUTSIDER, beta, status)  # Beta Agency's own entry: OUTSIDER may edit it
        assert disk(entries_dir) == before, status
    clear_lighthouse(route, kb, OWNER_CURATOR, beta, "published")  # a curator who sees every reuser may
    assert kb.stored(beta).lighthouse is None


@pytest.mark.parametrize(
    "editor, status",
    [(COLLEAGUE, "in-review"), (OWNER_REVIEWER, "published")],
    ids=["edit waiting for review", "edit written at once"],
)
def test_an_edit_never_makes_its_editor_the_author_of_an_entry_without_one(collection, entries_dir, editor, status):
    kb = collection
    entry_id = write_entry(entries_dir, "alpha-ledger-imported")  # no author, as an import may leave it
    kb.sync()
    edit("drafting", kb, editor, entry_id, NEW_SUMMARY, status=status)
    pending = kb.store.revision(entry_id)
    assert (pending is not None) == (editor is COLLEAGUE)
    written = pending[0] if pending else kb.stored(entry_id)
    assert (written.summary, written.author) == (NEW_SUMMARY, "")


# --------------------------------------------------------------------------- 9. who may review


@pytest.fixture
def pending(collection):
    """COLLEAGUE's edit of the published ENTRY, sent for review; the queue item a reviewer reads."""
    propose(collection, COLLEAGUE, NEW_SUMMARY, status="in-review")
    return queue_item(collection, REVIEWER, ENTRY, revision=True)


def review_actions(kb, entry_id: str, user: User, version: str | None, revision: bool):
    return {
        "approve": lambda: review.approve(kb, entry_id, user, version, revision=revision),
        "send back": lambda: review.send_back(kb, entry_id, user, "Add the numbers.", version, revision=revision),
    }


def review_refusal(kb, entry_id: str, action: str, *, revision: bool) -> str:
    """REVIEWER's NotFound for this id (Beta Agency's reviewer may not see Alpha Office's own entries)."""
    return not_found_words(lambda i: review_actions(kb, i, REVIEWER, None, revision)[action](), entry_id)


def assert_refused_and_unchanged(actions, folder: Path) -> None:
    before = disk(folder)
    for name, action in actions.items():
        with pytest.raises(KBError) as refused:
            action()
        assert not isinstance(refused.value, NotFound), name
        assert disk(folder) == before, name


@pytest.mark.parametrize("user", [OUTSIDER, COLLEAGUE, READER, ANONYMOUS], ids=lambda u: u.name or "visitor")
def test_only_reviewers_may_approve_or_send_back(collection, pending, entries_dir, user):
    assert_refused_and_unchanged(review_actions(collection, ENTRY, user, pending.version, True), entries_dir)


def test_the_author_may_not_review_their_entry_or_an_edit_of_it(collection, pending, entries_dir):
    author_now_reviewer = User(AUTHOR.name, OTHER_ORG, ("contributor", "reviewer"), local=False)
    assert_refused_and_unchanged(
        review_actions(collection, ENTRY, author_now_reviewer, pending.version, True), entries_dir
    )
    own = write_entry(entries_dir, "ravi-ledger-pilot", status="in-review", author=REVIEWER.as_author)
    collection.sync()
    assert_refused_and_unchanged(review_actions(collection, own, REVIEWER, None, False), entries_dir)


def test_the_proposer_may_not_review_their_own_edit(collection, pending, entries_dir):
    # A reviewer's edit of someone else's entry is written at once, never proposed: here the proposer became
    # a reviewer since.
    proposer_now_reviewer = User(COLLEAGUE.name, OWNER_ORG, ("contributor", "reviewer"), local=False)
    assert_refused_and_unchanged(
        review_actions(collection, ENTRY, proposer_now_reviewer, pending.version, True), entries_dir
    )


def test_review_answers_a_hidden_entry_like_a_missing_one(collection, entries_dir):
    kb = collection
    in_review = write_entry(entries_dir, "alpha-only-ledger-review", visibility="organisation", status="in-review")
    kb.sync()
    target = open_edit(kb, HIDDEN, COLLEAGUE)  # an edit of Alpha's own published entry, waiting for review
    save_edit(kb, target, replace(target.entry, summary=NEW_SUMMARY), COLLEAGUE, status="in-review")
    before = disk(entries_dir)
    for entry_id, revision in ((in_review, False), (HIDDEN, True)):
        for action in ("approve", "send back"):
            hidden = review_refusal(kb, entry_id, action, revision=revision)
            assert hidden == review_refusal(kb, MISSING, action, revision=revision), (entry_id, action)
    assert disk(entries_dir) == before


def test_approving_an_edit_replaces_the_published_entry(collection, pending, entries_dir):
    kb, old = collection, published_bytes(entries_dir)
    versions_before = len(kb.store.history(ENTRY))
    review.approve(kb, ENTRY, REVIEWER, pending.version, revision=True)
    stored = kb.stored(ENTRY)
    assert (stored.summary, stored.status, stored.reviewer, stored.revised_by) == (
        NEW_SUMMARY,
        "published",
        REVIEWER.name,
        "",
    )
    assert "revised_by" not in (entries_dir / f"{ENTRY}.md").read_text()
    assert kb.store.revision(ENTRY) is None and not kb.store.revision_path(ENTRY).exists()
    history = kb.store.history(ENTRY)
    assert len(history) == versions_before + 1 and history[0].text.encode() == old
    assert ENTRY in found_by(kb, NEW_WORDS, ANONYMOUS)
    assert queue_item(kb, REVIEWER, ENTRY, revision=True) is None


def test_sending_an_edit_back_returns_it_to_its_proposer(collection, pending, entries_dir):
    kb, before = collection, published_bytes(entries_dir)
    review.send_back(kb, ENTRY, REVIEWER, "  Say which councils took part. ", pending.version, revision=True)
    assert published_bytes(entries_dir) == before
    assert ENTRY not in found_by(kb, NEW_WORDS, ANONYMOUS)
    revision, _ = kb.store.revision(ENTRY)
    assert (revision.status, revision.review_comment, revision.reviewer, revision.revised_by) == (
        "draft",
        "Say which councils took part.",
        REVIEWER.name,
        COLLEAGUE.name,
    )
    assert queue_item(kb, REVIEWER, ENTRY, revision=True) is None
    target = open_edit(kb, ENTRY, COLLEAGUE)
    assert (target.entry.summary, target.entry.review_comment) == (NEW_SUMMARY, "Say which councils took part.")


def test_approving_an_edit_of_an_archived_entry_keeps_it_archived(collection, entries_dir):
    kb = collection
    archived = write_entry(entries_dir, "alpha-ledger-archived", status="archived", author=AUTHOR.as_author)
    kb.sync()
    target = open_edit(kb, archived, COLLEAGUE)
    assert target.waits_for_review  # readers still read an archived entry
    save_edit(kb, target, replace(target.entry, summary=NEW_SUMMARY), COLLEAGUE, status="in-review")
    item = queue_item(kb, REVIEWER, archived, revision=True)
    review.approve(kb, archived, REVIEWER, item.version, revision=True)
    stored = kb.stored(archived)
    assert (stored.summary, stored.status) == (NEW_SUMMARY, "archived")


@pytest.mark.parametrize("status", ["in-review", "draft"])
def test_a_reviewer_who_changes_an_entry_waiting_for_review_may_not_approve_it(collection, entries_dir, status):
    # Otherwise a reviewer could rewrite someone's entry and publish the rewrite with nobody else reading it.
    kb = collection
    waiting = write_entry(entries_dir, "alpha-ledger-waiting", status=status, author="Dana Drafter")
    kb.sync()
    target = open_edit(kb, waiting, OWNER_REVIEWER)
    assert not target.waits_for_review  # not published: the change is made in the entry itself
    save_edit(kb, target, replace(target.entry, summary=NEW_SUMMARY), OWNER_REVIEWER, status="in-review")
    changed = kb.stored(waiting)
    assert (changed.summary, changed.status, changed.revised_by) == (NEW_SUMMARY, "in-review", OWNER_REVIEWER.name)
    assert not queue_item(kb, OWNER_REVIEWER, waiting, revision=False).may_review
    version = kb.store.version(waiting)
    assert_refused_and_unchanged(review_actions(kb, waiting, OWNER_REVIEWER, version, False), entries_dir)
    assert queue_item(kb, REVIEWER, waiting, revision=False).may_review
    review.approve(kb, waiting, REVIEWER, version)
    approved = kb.stored(waiting)
    assert (approved.status, approved.reviewer, approved.revised_by) == ("published", REVIEWER.name, "")


@pytest.fixture
def ritas_entry(collection, entries_dir):
    """A new entry by OWNER_REVIEWER, sent for review."""
    write_entry(entries_dir, "rita-ledger-pilot", status="in-review", author=OWNER_REVIEWER.as_author)
    collection.sync()
    return "rita-ledger-pilot"


def test_the_queue_marks_a_reviewers_own_work(collection, ritas_entry, pending):
    kb, own = collection, ritas_entry
    proposer_now_reviewer = User(COLLEAGUE.name, OWNER_ORG, ("contributor", "reviewer"), local=False)
    author_now_reviewer = User(AUTHOR.name, OTHER_ORG, ("contributor", "reviewer"), local=False)
    expected = {  # reviewer: (may review Rita's new entry, may review COLLEAGUE's edit of AUTHOR's entry)
        OWNER_REVIEWER: (False, True),
        proposer_now_reviewer: (True, False),
        author_now_reviewer: (True, False),
        REVIEWER: (True, True),
    }
    for reviewer, (new_entry, edit_of_entry) in expected.items():
        assert queue_item(kb, reviewer, own, revision=False).may_review == new_entry, reviewer.name
        assert queue_item(kb, reviewer, ENTRY, revision=True).may_review == edit_of_entry, reviewer.name


def test_review_page_offers_no_approval_of_a_reviewers_own_work(collection, ritas_entry, monkeypatch):
    kb, own = collection, ritas_entry
    rita_as_contributor = User(OWNER_REVIEWER.name, OWNER_ORG, ("contributor",), local=False)
    propose(kb, rita_as_contributor, NEW_SUMMARY, status="in-review")  # proposed before she became a reviewer
    as_local_user(monkeypatch, OWNER_REVIEWER.name, OWNER_ORG, "contributor,reviewer")
    at = open_app("review")
    assert not at.exception, [e.value for e in at.exception]
    comment_boxes = {t.key for t in at.text_area}
    assert f"review_comment_{own}" not in comment_boxes
    assert f"review_comment_{ENTRY}-edit" not in comment_boxes
    assert "review_comment_teacher-supply-model-shared-with-schools" in comment_boxes  # someone else's
    assert len([b for b in at.button if b.label == "Approve and publish"]) == len(comment_boxes)
    assert sum("your own work" in i.value for i in at.info) == 2


def test_the_queue_shows_an_entry_sent_for_review_as_soon_as_it_is_synced(collection, entries_dir):
    # The queue is read from a snapshot of the index that `browse` keeps until the knowledge base's mirror
    # changes. A sync in this very process changes the mirror, so the snapshot's owner drops it: no caller
    # should have to remember to.
    assert queue_item(collection, REVIEWER, "rita-ledger-pilot", revision=False) is None
    write_entry(entries_dir, "rita-ledger-pilot", status="in-review", author=OWNER_REVIEWER.as_author)
    collection.sync()
    assert queue_item(collection, REVIEWER, "rita-ledger-pilot", revision=False) is not None


# --------------------------------------------------------------------------- 10. stale versions


def test_approving_an_edit_changed_since_it_was_read_is_a_conflict(collection, pending, entries_dir):
    kb, before = collection, published_bytes(entries_dir)
    propose(kb, COLLEAGUE, "Changed again after the reviewer read it.", status="in-review")
    for name, action in review_actions(kb, ENTRY, REVIEWER, pending.version, True).items():
        with pytest.raises(Conflict):
            action()
        assert published_bytes(entries_dir) == before, name
        revision, _ = kb.store.revision(ENTRY)
        assert (revision.summary, revision.status) == ("Changed again after the reviewer read it.", "in-review")


def change_entry_meanwhile(kb) -> None:
    entry = kb.stored(ENTRY)
    kb.save(replace(entry, summary="Someone else's change."), expected_version=kb.store.version(ENTRY))


def change_revision_meanwhile(kb) -> None:
    item = queue_item(kb, REVIEWER, ENTRY, revision=True)
    review.send_back(kb, ENTRY, REVIEWER, "Someone else's change.", item.version, revision=True)


@pytest.mark.parametrize(
    "editor, setup, meanwhile",
    [
        pytest.param(OWNER_REVIEWER, None, change_entry_meanwhile, id="edit written at once"),
        pytest.param(COLLEAGUE, None, change_entry_meanwhile, id="edit waiting for review"),
        pytest.param(COLLEAGUE, "in-review", change_revision_meanwhile, id="own pending edit"),
    ],
)
def test_saving_an_edit_of_an_entry_changed_since_it_was_opened_is_a_conflict(
    collection, entries_dir, editor, setup, meanwhile
):
    kb = collection
    if setup:
        propose(kb, editor, NEW_SUMMARY, status=setup)
    target = open_edit(kb, ENTRY, editor)
    meanwhile(kb)
    before = disk(entries_dir)
    for status in ("in-review", "draft"):
        with pytest.raises(Conflict):
            save_edit(kb, target, replace(target.entry, summary="My late edit."), editor, status=status)
    assert disk(entries_dir) == before


def test_saving_a_form_opened_before_someone_else_saved_is_a_conflict(collection, entries_dir):
    kb = collection
    opened = open_edit(kb, ENTRY, COLLEAGUE)
    change_entry_meanwhile(kb)
    before = disk(entries_dir)
    draft = Draft.from_entry(opened.entry)
    draft.summary = "My late edit."
    with pytest.raises(Conflict):
        save_draft(kb, draft, COLLEAGUE, status="in-review", edit_id=ENTRY, expected_version=opened.version)
    assert disk(entries_dir) == before


def test_an_edit_made_before_the_published_entry_changed_is_not_approved_over_it(collection, pending, entries_dir):
    """Approving would quietly undo a change made to the published entry since the edit was proposed
    (an import, a reviewer's direct edit): the reviewer is told, and the edit goes back for redoing."""
    kb = collection
    path = entries_dir / f"{ENTRY}.md"
    assert OLD_WORDS in path.read_text()
    path.write_text(path.read_text().replace(OLD_WORDS, "numbat tallies"))
    changed = path.read_bytes()
    with pytest.raises(Conflict, match="has changed since this edit was proposed"):
        review.approve(kb, ENTRY, REVIEWER, pending.version, revision=True)
    assert path.read_bytes() == changed and kb.store.revision(ENTRY) is not None
    review.send_back(kb, ENTRY, REVIEWER, "Please apply this to the current version.", pending.version, revision=True)
    assert path.read_bytes() == changed, "sending it back leaves the published entry as it is"


def test_a_stale_edit_sent_back_and_saved_again_can_be_approved(collection, pending, entries_dir):
    kb = collection
    assert not open_edit(kb, ENTRY, COLLEAGUE).rebased  # made from the published entry as it is
    change_entry_meanwhile(kb)
    changed = published_bytes(entries_dir)
    with pytest.raises(Conflict):
        review.approve(kb, ENTRY, REVIEWER, pending.version, revision=True)
    assert published_bytes(entries_dir) == changed
    review.send_back(kb, ENTRY, REVIEWER, "Check it against the current version.", pending.version, revision=True)
    target = open_edit(kb, ENTRY, COLLEAGUE)
    assert target.rebased  # the proposer is told the entry changed under their edit
    checked = "Reconciled in four councils, checked against the current version."
    save_edit(kb, target, replace(target.entry, summary=checked), COLLEAGUE, status="in-review")
    assert not open_edit(kb, ENTRY, COLLEAGUE).rebased  # saved again, it is made from the current version
    item = queue_item(kb, REVIEWER, ENTRY, revision=True)
    review.approve(kb, ENTRY, REVIEWER, item.version, revision=True)
    assert kb.stored(ENTRY).summary == checked and kb.store.revision(ENTRY) is None


def test_a_proposal_racing_another_is_a_conflict_never_an_overwrite(collection, entries_dir):
    kb = collection
    second = open_edit(kb, ENTRY, SECOND_COLLEAGUE)  # both open the entry before either saves
    propose(kb, COLLEAGUE, NEW_SUMMARY, status="in-review")
    before = disk(entries_dir)
    racing = replace(second.entry, summary="A racing edit.")
    with pytest.raises(Conflict):
        save_edit(kb, second, racing, SECOND_COLLEAGUE, status="in-review")
    # The write itself refuses too, for a save whose checks ran just before the first revision was written.
    with pytest.raises(Conflict):
        kb.store.write_revision(
            replace(racing, status="in-review", revised_by=SECOND_COLLEAGUE.name), base=second.version
        )
    assert disk(entries_dir) == before


# --------------------------------------------------------------------------- 11. withdrawing a pending edit


@pytest.mark.parametrize("withdrawer", [COLLEAGUE, CURATOR, ADMIN], ids=["proposer", "curator", "admin"])
def test_the_proposer_or_a_curator_may_withdraw_a_pending_edit(collection, pending, entries_dir, withdrawer):
    kb, before = collection, published_bytes(entries_dir)
    withdraw(kb, ENTRY, withdrawer)
    assert kb.store.revision(ENTRY) is None and not kb.store.revision_path(ENTRY).exists()
    assert published_bytes(entries_dir) == before
    assert queue_item(kb, REVIEWER, ENTRY, revision=True) is None
    with pytest.raises(KBError, match="no pending edit"):
        withdraw(kb, ENTRY, withdrawer)
    propose(kb, SECOND_COLLEAGUE, "A second colleague's edit.", status="in-review")  # the entry is free again
    assert kb.store.revision(ENTRY)[0].revised_by == SECOND_COLLEAGUE.name


def test_nobody_else_may_withdraw_a_pending_edit(collection, pending, entries_dir):
    kb = collection
    others = [SECOND_COLLEAGUE, AUTHOR, OWNER_REVIEWER, REVIEWER, OUTSIDER, READER, ANONYMOUS]
    assert_refused_and_unchanged({u.name or "visitor": lambda u=u: withdraw(kb, ENTRY, u) for u in others}, entries_dir)
    # Nor may anyone who cannot see the entry: they are answered as if it did not exist.
    target = open_edit(kb, HIDDEN, COLLEAGUE)
    save_edit(kb, target, replace(target.entry, summary=NEW_SUMMARY), COLLEAGUE, status="in-review")
    missing = not_found_words(lambda i: withdraw(kb, i, OUTSIDER), MISSING)
    assert not_found_words(lambda i: withdraw(kb, i, OUTSIDER), HIDDEN) == missing
    assert kb.store.revision(HIDDEN) is not None


def button_labels(at: AppTest) -> list[str]:
    assert not at.exception, [e.value for e in at.exception]
    return [b.label for b in at.button]


def test_the_form_offers_the_proposer_a_button_to_withdraw_their_edit(collection, entries_dir, monkeypatch):
    kb, before = collection, published_bytes(entries_dir)
    as_local_user(monkeypatch, COLLEAGUE.name, OWNER_ORG, "contributor")
    at = open_app("submit", edit=ENTRY)
    assert "Withdraw my edit" not in button_labels(at)  # nothing of theirs is pending yet
    propose(kb, COLLEAGUE, NEW_SUMMARY, status="draft")
    at.run()
    assert "Withdraw my edit" in button_labels(at)
    next(b for b in at.button if b.label == "Withdraw my edit").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert kb.store.revision(ENTRY) is None and published_bytes(entries_dir) == before
    assert at.title[0].value == "Alpha ledger pilot"  # back on the entry, as readers see it
    assert any("withdrawn" in s.value for s in at.success)


def test_entry_page_offers_no_edit_while_someone_elses_edit_is_pending(collection, monkeypatch):
    propose(collection, COLLEAGUE, NEW_SUMMARY, status="draft")
    assert editing.may_edit(collection, ENTRY, COLLEAGUE)
    assert not editing.may_edit(collection, ENTRY, SECOND_COLLEAGUE)
    as_local_user(monkeypatch, SECOND_COLLEAGUE.name, OWNER_ORG, "contributor")
    at = open_app("entry", id=ENTRY)
    for user, roles, offered in (
        (SECOND_COLLEAGUE, "contributor", False),  # would only be told that someone else's edit is pending
        (CURATOR, "curator", False),
        (COLLEAGUE, "contributor", True),  # the proposer goes back to their own edit
    ):
        as_local_user(monkeypatch, user.name, user.organisation, roles)
        at.run()
        assert at.title[0].value == "Alpha ledger pilot", user.name
        assert ("Edit this entry" in button_labels(at)) == offered, user.name


def test_a_curator_can_withdraw_an_abandoned_edit_from_the_form(collection, entries_dir, monkeypatch):
    """An edit its author abandoned must not lock the entry for ever: a curator clears it in the app."""
    kb, before = collection, published_bytes(entries_dir)
    propose(kb, COLLEAGUE, NEW_SUMMARY, status="draft")
    as_local_user(monkeypatch, SECOND_COLLEAGUE.name, OWNER_ORG, "contributor")
    at = open_app("submit", edit=ENTRY)
    assert "Withdraw the pending edit" not in button_labels(at), "only a curator may"
    assert any("pending" in e.value for e in at.error)
    as_local_user(monkeypatch, CURATOR.name, CURATOR.organisation, "curator")
    at.run()
    next(b for b in at.button if b.label == "Withdraw the pending edit").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert kb.store.revision(ENTRY) is None and published_bytes(entries_dir) == before
    assert editing.may_edit(kb, ENTRY, SECOND_COLLEAGUE), "the entry can be edited again"


def test_a_change_proposed_on_someones_behalf_follows_the_editing_rules(collection):
    def retitle(entry):
        return replace(entry, title="Retitled on their behalf")

    with pytest.raises(KBError, match="not published"):  # a draft is its author's to change
        editing.propose_change(collection, DANAS_DRAFT, retitle, OWNER_CURATOR)
    with pytest.raises(Forbidden):  # may see it, may not edit it
        editing.propose_change(collection, ENTRY, retitle, OUTSIDER)
    with pytest.raises(NotFound):  # may not see it: the answer for a missing entry
        editing.propose_change(collection, HIDDEN, retitle, CURATOR)
    assert collection.store.revisions() == []

    revision = editing.propose_change(collection, ENTRY, retitle, None, by="Ana Operator")
    assert (revision.status, revision.revised_by, revision.title) == (
        "in-review",
        "Ana Operator",
        "Retitled on their behalf",
    )
    assert collection.store.get(ENTRY).title != revision.title  # readers still see the published entry
    with pytest.raises(Conflict, match="already waiting"):
        editing.propose_change(collection, ENTRY, retitle, CURATOR)
    item = next(i for i in review.review_queue(collection, REVIEWER) if i.entry.id == ENTRY)
    review.approve(collection, ENTRY, REVIEWER, item.version, revision=True)
    assert collection.store.get(ENTRY).title == "Retitled on their behalf"
