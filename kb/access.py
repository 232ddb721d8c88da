"""Who may see what, as one rule in two forms: a Chroma `where` clause (so the top k of every query
is taken over what the viewer may see) and a Python predicate (for lists built from metadata).

- visibility `public`: everyone; `internal`: anyone signed in; `organisation`: members of the
  owning organisation and of the listed partners.
- status `published` and `archived`: whoever the visibility allows; `draft` and `in-review`: the
  author and reviewers only, within the same visibility.
- `anonymous` entries never show team, contact or author to readers (see `redact`).

A viewer of None is the operator at the command line, who sees everything.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from kb.entries import Entry
from kb.identity import User

READABLE_STATUSES = ("published", "archived")
UNPUBLISHED_STATUSES = ("draft", "in-review")

ANONYMOUS = User(name="", organisation="", roles=(), local=False)


def member_of(organisation: str) -> User:
    """A signed-in reader from this organisation, with no special role (`--as ORGANISATION`)."""
    return User(name=f"a member of {organisation}", organisation=organisation, roles=(), local=False)


def signed_in(viewer: User) -> bool:
    return bool(viewer.name)


def _any(clauses: list[dict[str, Any]]) -> dict[str, Any]:
    return clauses[0] if len(clauses) == 1 else {"$or": clauses}


def visible_where(viewer: User | None) -> dict[str, Any] | None:
    """The Chroma clause selecting what this viewer may see; None for the operator."""
    if viewer is None:
        return None
    visibility = [{"visibility": "public"}]
    if signed_in(viewer):
        visibility.append({"visibility": "internal"})
    if viewer.organisation:
        org = viewer.organisation
        visibility.append(
            {
                "$and": [
                    {"visibility": "organisation"},
                    {"$or": [{"organisation": org}, {"partners": {"$contains": org}}]},
                ]
            }
        )
    status = [{"status": {"$in": list(READABLE_STATUSES)}}]
    if viewer.is_reviewer:
        status.append({"status": {"$in": list(UNPUBLISHED_STATUSES)}})
    elif signed_in(viewer):
        status.append({"author": viewer.name})
    return {"$and": [_any(visibility), _any(status)]}


def can_see(viewer: User | None, meta: Mapping[str, Any]) -> bool:
    """The same rule as `visible_where`, for one entry's facet metadata."""
    if viewer is None:
        return True
    visibility = meta.get("visibility") or "public"
    org = viewer.organisation
    allowed = (
        visibility == "public"
        or (visibility == "internal" and signed_in(viewer))
        or (
            visibility == "organisation"
            and bool(org)
            and (meta.get("organisation") == org or org in (meta.get("partners") or ()))
        )
    )
    if not allowed:
        return False
    status = meta.get("status") or "draft"
    return (
        status in READABLE_STATUSES
        or (viewer.is_reviewer and status in UNPUBLISHED_STATUSES)
        or (signed_in(viewer) and meta.get("author") == viewer.name)
    )


def entry_meta(entry: Entry) -> dict[str, Any]:
    return {
        "visibility": entry.visibility,
        "status": entry.status,
        "organisation": entry.organisation,
        "partners": entry.partners,
        "author": entry.author,
    }


def redact(entry: Entry, viewer: User | None) -> Entry:
    """An anonymous entry as a reader sees it: no team, contact or author (reviewers and the author see all)."""
    if (
        viewer is None
        or not entry.anonymous
        or viewer.is_reviewer
        or (signed_in(viewer) and viewer.name == entry.author)
    ):
        return entry
    return replace(entry, team="", contact="", author="")
