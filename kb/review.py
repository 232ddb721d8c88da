"""The review queue: entries in review, oldest first, and a reviewer's approve or send back.

    for item in review_queue(kb):
        approve(kb, item.entry.id, reviewer, item.version)   # refuses if the file changed since

Every write drops the browse snapshot, so facet counts and the queue show the change at once (no streamlit here).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import TYPE_CHECKING

from kb.browse import invalidate, load_entries, rows
from kb.entries import Entry
from kb.errors import KBError

if TYPE_CHECKING:
    from kb.identity import User
    from kb.knowledge import KnowledgeBase


@dataclass(frozen=True)
class QueueItem:
    """An entry waiting for review, with the file version the reviewer saw."""

    entry: Entry
    version: str
    submitted: str


def review_queue(kb: KnowledgeBase, viewer: User | None = None) -> list[QueueItem]:
    """Entries in review, oldest first. Status is read from the files, which are the source of truth."""
    ids = [r.entry_id for r in rows(kb, viewer) if r.metadata.get("status") == "in-review"]
    items = []
    for entry in load_entries(kb, ids, viewer):
        version = kb.store.version(entry.id)
        if entry.status == "in-review" and version is not None:
            items.append(QueueItem(entry, version, max(entry.updated, entry.created)))
    return sorted(items, key=lambda item: (item.submitted or "9999", item.entry.id))


def _today() -> str:
    return dt.date.today().isoformat()


def _reviewable(kb: KnowledgeBase, entry_id: str) -> Entry:
    entry = kb.get(entry_id)
    if entry.status != "in-review":
        raise KBError(
            f"'{entry.title}' is no longer in review (it is now {entry.status}); someone else may have handled it"
        )
    return entry


def approve(kb: KnowledgeBase, entry_id: str, reviewer: User, expected_version: str | None = None) -> Entry:
    """Publish an entry in review. Refuses if the file changed since the reviewer read it."""
    entry = _reviewable(kb, entry_id)
    entry.status, entry.reviewer, entry.review_comment, entry.updated = "published", reviewer.name, "", _today()
    return _save(kb, entry, expected_version)


def send_back(
    kb: KnowledgeBase, entry_id: str, reviewer: User, comment: str, expected_version: str | None = None
) -> Entry:
    """Return an entry to its author as a draft, keeping the reviewer's comment on the entry."""
    comment = comment.strip()
    if not comment:
        raise KBError("write a comment so the author knows what to change")
    entry = _reviewable(kb, entry_id)
    entry.status, entry.reviewer, entry.review_comment, entry.updated = "draft", reviewer.name, comment, _today()
    return _save(kb, entry, expected_version)


def _save(kb: KnowledgeBase, entry: Entry, expected_version: str | None) -> Entry:
    try:
        return kb.save(entry, expected_version=expected_version)
    finally:  # a save whose indexing failed is written all the same: the queue must not show it
        invalidate(kb)
