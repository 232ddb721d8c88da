"""Editing and reviewing under the access rules: who may edit, where a non-reviewer's edit of a published
entry waits, who may approve or send it back, and stale versions, through the library and the app."""

from __future__ import annotations

import contextlib
from dataclasses import replace
from pathlib import Path

import pytest
import yaml
from streamlit.testing.v1 import AppTest

from kb import Conflict, KBError, NotFound, review
from kb.access import ANONYMOUS
from kb.drafting import Draft, save_draft
from kb.editing import open_edit, save_edit
from kb.identity import User

APP = str(Path(__file__).resolve().parents[1] / "app.py")
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
    write_entry(entries_dir, ENTRY, author=AUTHOR.name)
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
    own = write_entry(entries_dir, "ravi-ledger-pilot", status="in-review", author=REVIEWER.name)
    collection.sync()
    assert_refused_and_unchanged(review_actions(collection, own, REVIEWER, None, False), entries_dir)


def test_the_proposer_may_not_review_their_own_edit(collection, pending, entries_dir):
    # A reviewer's own edit is written at once, never proposed: here the proposer became a reviewer since.
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


@pytest.fixture
def ritas_entry(collection, entries_dir):
    """A new entry by OWNER_REVIEWER, sent for review."""
    write_entry(entries_dir, "rita-ledger-pilot", status="in-review", author=OWNER_REVIEWER.name)
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
    # The queue is read from a snapshot of the index that `browse` keeps for up to 30 seconds, for changes
    # made by other processes. A sync in this very process must not leave it stale: the snapshot's owner
    # keeps it fresh, no caller should have to remember to drop it.
    assert queue_item(collection, REVIEWER, "rita-ledger-pilot", revision=False) is None
    write_entry(entries_dir, "rita-ledger-pilot", status="in-review", author=OWNER_REVIEWER.name)
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
