"""Editing an entry under the access rules: who may, what they start from, and where the edit goes.

    target = open_edit(kb, "benefits-and-housing-data-sharing-pilot", user)   # NotFound, or KBError
    ... the form shows target.entry (what this user may see of it) ...
    result = save_edit(kb, target, edited_entry, user, status="in-review")

The rules themselves are in kb.access. An edit of a published (or archived) entry by someone who is
not a reviewer never changes what readers see: it is kept in `.revisions/<id>.md` until a reviewer
approves it (kb.review), and the published version stays as it is. Whatever was withheld from the
editor (an anonymous entry's team, links to entries they may not see) is put back before writing, so
an edit can never blank it.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from kb.access import (
    READABLE_STATUSES,
    UNPUBLISHED_STATUSES,
    can_edit,
    edit_waits_for_review,
    present,
    restore_withheld,
)
from kb.entries import Entry
from kb.errors import Conflict, KBError

if TYPE_CHECKING:
    from kb.identity import User
    from kb.knowledge import KnowledgeBase


@dataclass(frozen=True)
class EditTarget:
    """What an editor starts from: the entry as they may see it, the version of the file it came from,
    and whether their edit will wait for review as a revision (`revision_version` is set when they are
    editing their own revision again)."""

    entry: Entry
    version: str | None
    waits_for_review: bool
    revision_version: str | None = None


def open_edit(kb: KnowledgeBase, entry_id: str, user: User | None) -> EditTarget:
    """The entry this user may edit, as they may see it. NotFound for a missing or hidden entry (the same
    words); KBError when they may see it but not edit it, or another person's edit is waiting for review."""
    stored = _editable(kb, entry_id, user)
    pending = kb.store.revision(entry_id)
    if pending is not None:
        revision, revision_version = pending
        if user is not None and revision.revised_by != user.name:
            raise KBError(
                "another edit of this entry is waiting for review; it can be edited again once a reviewer "
                "has approved it or sent it back"
            )
        return EditTarget(_as_seen(kb, revision, user), kb.store.version(entry_id), True, revision_version)
    return EditTarget(_as_seen(kb, stored, user), kb.store.version(entry_id), edit_waits_for_review(user, stored))


@dataclass(frozen=True)
class EditResult:
    entry: Entry
    pending_review: bool  # kept as a revision: readers still see the published version


def save_edit(kb: KnowledgeBase, target: EditTarget, edited: Entry, user: User | None, *, status: str) -> EditResult:
    """Write an edit made from `target`: straight to the entry, or as a revision waiting for review.

    Raises Conflict when the entry (or the revision) changed since `target` was opened.
    """
    stored = _editable(kb, target.entry.id, user)
    base = stored
    if target.revision_version is not None:
        pending = kb.store.revision(stored.id)
        if pending is None or pending[1] != target.revision_version:
            raise Conflict("your edit waiting for review was changed or handled since you opened it; reload it")
        base = pending[0]
    links = [*base.related, *(base.lighthouse.reused_by if base.lighthouse else ())]
    edited = restore_withheld(edited, base, user, kb.visible_to(user, links))
    if target.waits_for_review or edit_waits_for_review(user, stored):
        return EditResult(_propose(kb, target, stored, edited, user, status), pending_review=True)
    allowed = UNPUBLISHED_STATUSES + (stored.status,) if stored.status in READABLE_STATUSES else UNPUBLISHED_STATUSES
    if user is None:
        allowed = (*UNPUBLISHED_STATUSES, *READABLE_STATUSES)
    if status not in allowed:
        raise KBError(f"you cannot save this entry as '{status}'; use one of: {', '.join(allowed)}")
    return EditResult(kb.save(replace(edited, status=status), expected_version=target.version), pending_review=False)


def _propose(
    kb: KnowledgeBase, target: EditTarget, stored: Entry, edited: Entry, user: User | None, status: str
) -> Entry:
    """Keep the edit as a revision of the published entry, for a reviewer to approve."""
    if status not in UNPUBLISHED_STATUSES:
        raise KBError(
            f"your edit of a {stored.status} entry is reviewed before readers see it; "
            "save it as a draft or send it for review"
        )
    if target.revision_version is None:
        if kb.store.version(stored.id) != target.version:
            raise Conflict(f"'{stored.id}' was changed by someone else since you opened it; reload it")
        if kb.store.revision(stored.id) is not None:
            raise Conflict("someone else has just proposed an edit of this entry; reload it")
    revision = replace(edited, status=status, revised_by=user.name if user else "", reviewer="", review_comment="")
    base = target.version if target.revision_version is None else kb.store.revision_base(stored.id)
    kb.store.write_revision(revision, base=base, expected_version=target.revision_version)
    return revision


def _editable(kb: KnowledgeBase, entry_id: str, user: User | None) -> Entry:
    stored = kb.stored(entry_id, user)  # missing and hidden answer alike
    if not can_edit(user, stored):
        raise KBError(
            "only the entry's author, members of the organisation that wrote it, and curators can edit it; "
            "you can still read it"
        )
    return stored


def _as_seen(kb: KnowledgeBase, entry: Entry, user: User | None) -> Entry:
    links = [*entry.related, *(entry.lighthouse.reused_by if entry.lighthouse else ())]
    return present(entry, user, kb.visible_to(user, links)).entry
