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
    edit_statuses,
    edit_waits_for_review,
    is_author,
    present,
    restore_withheld,
)
from kb.entries import Entry
from kb.errors import Conflict, Forbidden, KBError
from kb.identity import CURATOR
from kb.lifecycle import record_stage_change

if TYPE_CHECKING:
    from collections.abc import Callable

    from kb.identity import User
    from kb.knowledge import KnowledgeBase


@dataclass(frozen=True)
class EditTarget:
    """What an editor starts from: the entry as they may see it, the version of the published file it came
    from, whether their edit will wait for review as a revision (`revision_version` is set when they are
    editing their own revision again), and the statuses they may save it with."""

    entry: Entry
    version: str | None
    waits_for_review: bool
    revision_version: str | None = None
    statuses: tuple[str, ...] = UNPUBLISHED_STATUSES
    rebased: bool = False  # their revision was made from an earlier version of the published entry


def open_edit(kb: KnowledgeBase, entry_id: str, user: User | None) -> EditTarget:
    """The entry this user may edit, as they may see it. NotFound for a missing or hidden entry (the same
    words); Forbidden when they may see it but not edit it; Conflict while another person's edit is pending."""
    stored = _editable(kb, entry_id, user)
    version = kb.store.version(entry_id)
    pending = kb.store.revision(entry_id)
    if pending is not None:
        revision, revision_version = pending
        if user is not None and not user.wrote(revision.revised_by):
            raise Conflict(
                "someone else's edit of this entry is pending; once a reviewer has approved it, or its author "
                "has withdrawn it, the entry can be edited again"
            )
        # Saved again, it counts as made from the entry as it is now: say so if that changed meanwhile.
        rebased = kb.store.revision_base(entry_id) not in (None, version)
        statuses = edit_statuses(user, stored, waits_for_review=True)
        return EditTarget(_as_seen(kb, revision, user), version, True, revision_version, statuses, rebased)
    waits = edit_waits_for_review(user, stored)
    statuses = edit_statuses(user, stored, waits_for_review=waits)
    return EditTarget(_as_seen(kb, stored, user), version, waits, statuses=statuses)


def may_edit(kb: KnowledgeBase, entry_id: str, user: User | None) -> bool:
    """Whether `open_edit` would open this entry for this user (the entry page's Edit button)."""
    try:
        open_edit(kb, entry_id, user)
    except KBError:
        return False
    return True


@dataclass(frozen=True)
class EditResult:
    entry: Entry
    pending_review: bool  # kept as a revision: readers still see the published version


def save_edit(
    kb: KnowledgeBase, target: EditTarget, edited: Entry, user: User | None, *, status: str, stage_reason: str = ""
) -> EditResult:
    """Write an edit made from `target`: straight to the entry, or as a revision waiting for review.

    An edit that changes a lighthouse's stage adds the change to its history, dated today, with
    `stage_reason` (required then: KBError without it); the history and what is known of each reuse are
    carried over from the entry (kb.lifecycle).

    Raises Conflict when the entry (or the revision) changed since `target` was opened.
    """
    stored = _editable(kb, target.entry.id, user)
    base = stored
    if target.revision_version is not None:
        pending = kb.store.revision(stored.id)
        if pending is None or pending[1] != target.revision_version:
            raise Conflict("your edit waiting for review was changed or handled since you opened it; reload it")
        base = pending[0]
    if status not in target.statuses:
        if target.waits_for_review:
            raise KBError(
                f"your edit of a {stored.status} entry is reviewed before readers see it; "
                "save it as a draft or send it for review"
            )
        raise KBError(f"you cannot save this entry as '{status}'; use one of: {', '.join(target.statuses)}")
    links = [*base.related, *(base.lighthouse.reused_by if base.lighthouse else ())]
    edited = restore_withheld(edited, base, user, kb.visible_to(user, links))
    edited = record_stage_change(edited, base, stage_reason)
    if target.waits_for_review or edit_waits_for_review(user, stored):
        return EditResult(_propose(kb, target, stored, edited, user, status), pending_review=True)
    if kb.store.version(stored.id) != target.version:
        raise Conflict(f"'{stored.id}' was changed by someone else since you opened it; reload it")
    # Whoever changes an entry waiting for review, other than its author, may not then approve it.
    if status in READABLE_STATUSES:
        changed_by = ""
    elif user is None or is_author(user, stored):
        changed_by = stored.revised_by
    else:
        changed_by = user.as_author
    decided = replace(edited, status=status, revised_by=changed_by)
    return EditResult(kb.save(decided, expected_version=target.version), pending_review=False)


def propose_change(
    kb: KnowledgeBase, entry_id: str, change: Callable[[Entry], Entry], user: User | None, *, by: str = ""
) -> Entry:
    """Propose a change of a published (or archived) entry made on someone's behalf (a retag after a merge of
    themes, kb.vocabulary_edits) as an edit waiting for review, whoever proposes it: the same revision an
    editor's edit that waits is kept as. `by` names the proposer when `user` is the operator.

    NotFound for a missing or hidden entry; Forbidden when `user` may not edit it; KBError for a draft or an
    entry in review (their author changes them); Conflict while an edit of it is already waiting."""
    stored = _editable(kb, entry_id, user)
    if stored.status not in READABLE_STATUSES:
        raise KBError(f"'{entry_id}' is not published ({stored.status}); its author changes it")
    if kb.store.revision(entry_id) is not None:
        raise Conflict(f"an edit of '{entry_id}' is already waiting for review")
    target = EditTarget(stored, kb.store.version(entry_id), waits_for_review=True)
    return _propose(kb, target, stored, change(stored), user, "in-review", by=by)


def _propose(
    kb: KnowledgeBase, target: EditTarget, stored: Entry, edited: Entry, user: User | None, status: str, by: str = ""
) -> Entry:
    """Keep the edit as a revision of the published entry, for a reviewer to approve; it records the
    version of the published entry it was made from (the one the editor opened)."""
    if kb.store.version(stored.id) != target.version:
        raise Conflict(f"'{stored.id}' was changed by someone else since you opened it; reload it")
    revision = replace(edited, status=status, revised_by=user.as_author if user else by, reviewer="", review_comment="")
    kb.store.write_revision(revision, base=target.version, expected_version=target.revision_version)
    return revision


def withdraw(kb: KnowledgeBase, entry_id: str, user: User | None) -> None:
    """Discard a pending edit: its proposer may, and so may curators (an abandoned edit must not lock an
    entry for ever). The published entry is left as it is."""
    stored = kb.stored(entry_id, user)  # missing and hidden answer alike
    pending = kb.store.revision(entry_id)
    if pending is None:
        raise KBError("there is no pending edit of this entry")
    revision, version = pending
    own = user is None or user.wrote(revision.revised_by)
    if not (own or (user is not None and can_edit(user, stored) and user.has_role(CURATOR))):
        raise Forbidden("only the person who proposed this edit, or a curator, can withdraw it")
    kb.store.drop_revision(entry_id, expected_version=version)


def _editable(kb: KnowledgeBase, entry_id: str, user: User | None) -> Entry:
    stored = kb.stored(entry_id, user)  # missing and hidden answer alike
    if not can_edit(user, stored):
        raise Forbidden(
            "only the entry's author, members of the organisation that wrote it, and curators can edit it; "
            "you can still read it"
        )
    return stored


def _as_seen(kb: KnowledgeBase, entry: Entry, user: User | None) -> Entry:
    links = [*entry.related, *(entry.lighthouse.reused_by if entry.lighthouse else ())]
    return present(entry, user, kb.visible_to(user, links)).entry
