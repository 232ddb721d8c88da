"""The review queue: new entries and edits of published entries sent for review, oldest first; a
reviewer approves or sends back.

    for item in review_queue(kb, reviewer):
        approve(kb, item.entry.id, reviewer, item.version, revision=item.revision)   # refuses stale versions

Who may review is decided in kb.access (`can_review`): a reviewer who may see the entry, never for
their own entry or their own edit; the check is made here, in the library, whatever surface calls it.
Every write goes through the knowledge base, whose mirror change refreshes counts and the queue at once.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from kb.access import can_review, can_see, entry_meta, present
from kb.browse import load_entries, rows
from kb.entries import Entry
from kb.errors import Conflict, Forbidden, KBError, SavedNotIndexed

if TYPE_CHECKING:
    from kb.identity import User
    from kb.knowledge import KnowledgeBase


@dataclass(frozen=True)
class QueueItem:
    """An entry (or an edit of a published entry) waiting for review, with the file version the
    reviewer saw; `may_review` is False for the reviewer's own work, which another reviewer approves."""

    entry: Entry
    version: str
    submitted: str
    revision: bool = False  # an edit of a published entry; the published version stays until approved
    may_review: bool = True

    @property
    def proposer(self) -> str:
        return self.entry.revised_by if self.revision else self.entry.author


def review_queue(kb: KnowledgeBase, viewer: User | None = None) -> list[QueueItem]:
    """New entries and revisions in review that the viewer may see, oldest first. Status is read from
    the files, which are the source of truth."""
    ids = [r.entry_id for r in rows(kb, viewer) if r.metadata.get("status") == "in-review"]
    items = []
    for entry in load_entries(kb, ids, viewer):
        version = kb.store.version(entry.id)
        if entry.status == "in-review" and version is not None:
            whole = kb.stored(entry.id)
            items.append(QueueItem(entry, version, _submitted(entry), may_review=can_review(viewer, whole)))
    for entry_id in kb.store.revisions():
        item = _revision_item(kb, entry_id, viewer)
        if item is not None:
            items.append(item)
    return sorted(items, key=lambda item: (item.submitted or "9999", item.entry.id, item.revision))


def _revision_item(kb: KnowledgeBase, entry_id: str, viewer: User | None) -> QueueItem | None:
    try:
        published = kb.stored(entry_id, viewer)
        pending = kb.store.revision(entry_id)
    except KBError:
        return None  # the entry is gone, hidden from this viewer, or the revision file is broken
    if pending is None or pending[0].status != "in-review" or not can_see(viewer, entry_meta(pending[0])):
        return None
    revision, version = pending
    links = [*revision.related, *(revision.lighthouse.reused_by if revision.lighthouse else ())]
    shown = present(revision, viewer, kb.visible_to(viewer, links)).entry
    return QueueItem(
        shown, version, _submitted(revision), revision=True, may_review=can_review(viewer, published, revision)
    )


def _submitted(entry: Entry) -> str:
    return max(entry.updated, entry.created)


def _today() -> str:
    return dt.date.today().isoformat()


def _reviewable(kb: KnowledgeBase, entry_id: str, reviewer: User, revision: bool) -> tuple[Entry, str | None]:
    """The entry (or its revision) to review, and the revision's version; refuses anyone `can_review`
    does not allow, and an entry that is no longer waiting."""
    if not reviewer.is_reviewer:
        raise Forbidden("only reviewers can approve or send back entries")
    entry = kb.stored(entry_id, reviewer)  # missing and hidden answer alike
    if revision:
        pending = kb.store.revision(entry_id)
        if pending is None or pending[0].status != "in-review":
            raise KBError(f"the edit of '{entry.title}' is no longer waiting for review; someone may have handled it")
        proposed, version = pending
        if not can_review(reviewer, entry, proposed):
            raise Forbidden("you proposed this edit or wrote the entry: another reviewer must review it")
        return proposed, version
    if entry.status != "in-review":
        raise KBError(
            f"'{entry.title}' is no longer in review (it is now {entry.status}); someone else may have handled it"
        )
    if not can_review(reviewer, entry):
        raise Forbidden("you wrote or last changed this entry: another reviewer must review it")
    return entry, None


def approve(
    kb: KnowledgeBase, entry_id: str, reviewer: User, expected_version: str | None = None, *, revision: bool = False
) -> Entry:
    """Publish an entry in review, or apply an approved revision to its published entry. Refuses if
    the file reviewed changed since the reviewer read it."""
    entry, revision_version = _reviewable(kb, entry_id, reviewer, revision)
    # A new entry is published; an approved revision keeps its entry's status (an archived one stays archived).
    status = kb.stored(entry_id).status if revision else "published"
    decided = replace(entry, status=status, reviewer=reviewer.name, review_comment="", revised_by="", updated=_today())
    if not revision:
        return kb.save(decided, expected_version=expected_version)
    if expected_version is not None and expected_version != revision_version:
        raise Conflict("this edit was changed since you opened it; reload the queue and review it again")
    published = kb.store.version(entry_id)
    base = kb.store.revision_base(entry_id)
    if base is not None and base != published:  # approving would quietly undo that change
        raise Conflict(
            "the published entry has changed since this edit was proposed; send the edit back so that it can "
            "be made again on the current version"
        )
    try:
        saved = kb.save(decided, expected_version=published)
    except SavedNotIndexed:  # written all the same: the revision is done
        kb.store.drop_revision(entry_id, expected_version=revision_version)
        raise
    kb.store.drop_revision(entry_id, expected_version=revision_version)
    return saved


def send_back(
    kb: KnowledgeBase,
    entry_id: str,
    reviewer: User,
    comment: str,
    expected_version: str | None = None,
    *,
    revision: bool = False,
) -> Entry:
    """Return an entry (or a revision) to its author as a draft, with the reviewer's comment on it; a
    published entry whose revision is sent back stays published as it was."""
    comment = comment.strip()
    if not comment:
        raise KBError("write a comment so the author knows what to change")
    entry, revision_version = _reviewable(kb, entry_id, reviewer, revision)
    decided = replace(entry, status="draft", reviewer=reviewer.name, review_comment=comment, updated=_today())
    if not revision:
        return kb.save(decided, expected_version=expected_version)
    if expected_version is not None and expected_version != revision_version:
        raise Conflict("this edit was changed since you opened it; reload the queue and review it again")
    kb.store.write_revision(decided, base=kb.store.revision_base(entry_id), expected_version=revision_version)
    return decided
