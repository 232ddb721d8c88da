"""A person's own unfinished work: the list where they find it again, and what they read after saving it.

    print(confirmation(kb, entry, user))    # entry as kb.drafting.save_draft returned it: what happens next
    own_work(kb, user)                      # [OwnWork(entry_id, title, status, updated, edit, sent_back), ...]

The confirmation names that list as the submit page shows it (`YOUR_WORK`), and never a file.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from kb import browse
from kb.access import READABLE_STATUSES, UNPUBLISHED_STATUSES, is_author, signed_in
from kb.drafting import DRAFT
from kb.entries import Entry
from kb.errors import KBError

if TYPE_CHECKING:
    from kb.identity import User
    from kb.knowledge import KnowledgeBase

YOUR_WORK = "Your drafts and submissions"  # where the submit page lists a person's unfinished work


def _reviewer(entry: Entry, user: User) -> str:
    """Who will look at an entry sent for review, in words: nobody reviews their own work."""
    who = "another reviewer" if user.is_reviewer else "a reviewer"
    if entry.visibility == "organisation" and entry.organisation:  # only its organisation's reviewers see it
        partners = " or a partner organisation" if entry.partners else ""
        return f"{who} from {entry.organisation}{partners}"
    return who if user.is_reviewer else "a Lighthouse reviewer"


def confirmation(kb: KnowledgeBase, entry: Entry, user: User) -> str:
    """What the person who just saved `entry` (as `save_draft` returned it) reads next: what happened and
    what happens next, in plain words. It names no file or folder."""
    stored = kb.store.get(entry.id) if kb.store.version(entry.id) is not None else entry
    where = f"you will find it under “{YOUR_WORK}” on the Submit page"
    if stored.status in READABLE_STATUSES and entry.status in UNPUBLISHED_STATUSES:  # kept as a revision
        if entry.status == DRAFT:
            return (
                "Your edit is saved as a draft. Readers still see the published version. Send it for review when "
                f"it is ready: {where}."
            )
        return (
            f"Your edit is sent for review: {_reviewer(stored, user)} will look at it, then approve it or send it "
            f"back to you with a comment. Readers see the published version until then; {where}."
        )
    if entry.status == DRAFT:
        return (
            "Saved as a draft. Only you and reviewers can see it. Come back to it whenever you like and send it "
            f"for review when it is ready: {where}."
        )
    if entry.status == "in-review":
        return (
            f"Sent for review: {_reviewer(entry, user)} will look at it, then publish it or send it back to you "
            f"with a comment. Until then only you and reviewers can see it; {where}."
        )
    return f"Saved. The entry stays {entry.status} with your changes."


@dataclass(frozen=True)
class OwnWork:
    """One of a person's unfinished pieces of work: a draft, an entry in review, or an edit of a published
    entry waiting as a revision (`edit`); `sent_back` when a reviewer returned it with a comment."""

    entry_id: str
    title: str
    status: str
    updated: str
    edit: bool = False
    sent_back: bool = False


def own_work(kb: KnowledgeBase, user: User | None) -> list[OwnWork]:
    """This person's drafts, entries in review and pending edits, most recently changed first: where they
    find their work again after saving it."""
    if user is None or not signed_in(user):
        return []
    ids = [
        r.entry_id
        for r in browse.rows(kb, user)
        if is_author(user, r.metadata) and r.metadata.get("status") in UNPUBLISHED_STATUSES
    ]
    work = [
        OwnWork(e.id, e.title, e.status, max(e.updated, e.created), sent_back=bool(e.review_comment))
        for e in browse.load_entries(kb, ids, user)
        if e.status in UNPUBLISHED_STATUSES and is_author(user, e)
    ]
    for entry_id in kb.store.revisions():
        try:
            kb.stored(entry_id, user)  # the entry must still be there for them
            pending = kb.store.revision(entry_id)
        except KBError:
            continue
        if pending is not None and user.wrote(pending[0].revised_by):
            revision = pending[0]
            updated = max(revision.updated, revision.created)
            work.append(
                OwnWork(entry_id, revision.title, revision.status, updated, True, bool(revision.review_comment))
            )
    return sorted(work, key=lambda w: (w.updated, w.entry_id), reverse=True)
