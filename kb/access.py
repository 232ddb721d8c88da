"""Who may do what with an entry: see it, see its anonymous fields, edit it, review it, read its history.

Every rule is written once, here, and every surface (search, entry page, CLI, export, forms, review
queue) calls it. Seeing has two forms that must agree: a Chroma `where` clause (so the top k of every
query is taken over what the viewer may see) and a Python predicate (for lists built from metadata).

- visibility `public`: everyone; `internal`: anyone signed in; `organisation`: members of the
  owning organisation and of the listed partners.
- status `published` and `archived`: whoever the visibility allows; `draft` and `in-review`: the
  author and reviewers only, within the same visibility.
- `anonymous` entries never show team, contact or author to readers: only to reviewers and the author.
  Whom to ask (the directory of teams, "others who have worked on this") never lists an anonymous entry
  under its team or contact, whoever asks: it would point people at the team that asked not to be named.
- links (`related`, `lighthouse.reused_by`) to entries the viewer may not see are left out, so not
  even a hidden entry's id (a slug of its title) reaches them.
- editing: the author, members of the owning organisation (with the contributor role), curators
  and admins. An edit of a published entry by someone who is not a reviewer waits for review as a
  revision; the published version stays as it is meanwhile.
- reviewing: reviewers who may see the entry, never for their own entry or their own revision.
- what people look for (the search log, kb.searchlog) and the wanted requests made from it: curators
  and admins only, on the Insights page's curators' tab and at the command line.
- the vocabulary (kb.vocabulary_edits): curators and admins change it, read its history and see the
  candidate terms (kb.vocabulary_candidates); a candidate shows only the entries the curator may see,
  and one that comes only from entries they may not see is not shown at all.
- lighthouses due for review: a lighthouse's owner is its author, or the person whose e-mail address is
  its contact; each owner hears of their own, and curators and admins of every one they may see (in their
  digest and on the Insights page's curators' tab).
- organisations are matched whatever their case and spacing (`organisation_key`).
- history: an earlier version is shown only to a viewer who could see that version, with its
  anonymous fields withheld from readers.

A viewer of None is the operator at the command line, who sees and may do everything.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from kb.entries import STATUSES, Entry
from kb.errors import Forbidden, KBError
from kb.filters import predicate
from kb.identity import ADMIN, CURATOR, User, author_key, shown_name

READABLE_STATUSES = ("published", "archived")
UNPUBLISHED_STATUSES = ("draft", "in-review")
# What `anonymous: true` hides from readers: who did the work, wrote it up, or last changed it.
ANONYMOUS_FIELDS = ("team", "contact", "author", "revised_by")
_WITHHELD: dict[str, Any] = dict.fromkeys(ANONYMOUS_FIELDS, "")  # what a reader sees of them
LINK_FIELDS = ("related", "lighthouse.reused_by")  # ids of other entries, cut to what the viewer may see

ANONYMOUS = User(name="", organisation="", roles=(), local=False)


def member_of(organisation: str) -> User:
    """A signed-in reader from this organisation, with no special role (`--as ORGANISATION`)."""
    organisation = " ".join(organisation.split())
    if not organisation:
        raise KBError("give an organisation's name to see the knowledge base as its members do, or 'anonymous'")
    return User(name=f"a member of {organisation}", organisation=organisation, roles=(), local=False)


def signed_in(viewer: User) -> bool:
    return bool(viewer.name.strip())


def can_contribute(viewer: User | None) -> bool:
    """May submit entries and edits: a contributor, or a reviewer."""
    return viewer is not None and (viewer.is_contributor or viewer.is_reviewer)


def reviews(viewer: User | None) -> bool:
    """Has the review queue and looks beyond published entries (drafts, entries in review)."""
    return viewer is not None and viewer.is_reviewer


def edits_any(viewer: User | None) -> bool:
    """May edit any entry they may see, not only their own and their organisation's: curators and admins."""
    return viewer is not None and viewer.has_role(CURATOR)


def sees_what_people_look_for(viewer: User | None) -> bool:
    """May see the anonymous search and entry counts (the Insights page's curators' tab) and turn a search
    that found nothing close into a wanted request, or close one: curators and admins; None is the operator."""
    return viewer is None or viewer.has_role(CURATOR)


def keeps_the_vocabulary(viewer: User | None) -> bool:
    """May change the shared vocabulary (add a theme or a synonym, merge, retire), read its history and see
    the candidate terms taken from searches and entries: curators and admins; None is the operator."""
    return viewer is None or viewer.has_role(CURATOR)


def require_keeps_the_vocabulary(viewer: User | None, what: str) -> None:
    """Forbidden, saying who may, unless the viewer keeps the vocabulary (`keeps_the_vocabulary`)."""
    if not keeps_the_vocabulary(viewer):
        raise Forbidden(f"only curators may {what}")


def looks_after_the_index(viewer: User, *, local: bool) -> bool:
    """The person who runs this copy: an admin, or a reviewer on their own machine (local mode). Only
    they see entry file problems, which name files and quote fields of entries others may not see."""
    return viewer.has_role(ADMIN) or (local and viewer.is_reviewer)


def _any(clauses: list[dict[str, Any]]) -> dict[str, Any]:
    return clauses[0] if len(clauses) == 1 else {"$or": clauses}


# --------------------------------------------------------------------------- seeing


def visible_where(viewer: User | None) -> dict[str, Any] | None:
    """The Chroma clause selecting what this viewer may see; None for the operator."""
    if viewer is None:
        return None
    visibility: list[dict[str, Any]] = [{"visibility": "public"}]
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
    status: list[dict[str, Any]] = [{"status": {"$in": list(READABLE_STATUSES)}}]
    if viewer.is_reviewer:
        status.append({"status": {"$in": list(UNPUBLISHED_STATUSES)}})
    elif signed_in(viewer) and viewer.author_key:
        status.append({"author_key": viewer.author_key})
    return {"$and": [_any(visibility), _any(status)]}


def can_see(viewer: User | None, meta: Mapping[str, Any]) -> bool:
    """The same rule as `visible_where`, for one entry's facet metadata: the clause itself, run on it."""
    return sees(viewer)(meta)


def sees(viewer: User | None) -> Callable[[Mapping[str, Any]], bool]:
    """`can_see` for this viewer, with the clause built once: for checking many entries in a row."""
    if viewer is None:
        return lambda meta: True
    return predicate(visible_where(viewer))


def is_author(viewer: User | None, meta: Mapping[str, Any] | Entry) -> bool:
    """True for a signed-in viewer who is the entry's author (`User.wrote`; two blank names never match)."""
    author = meta.author if isinstance(meta, Entry) else str(meta.get("author") or "")
    return viewer is not None and signed_in(viewer) and viewer.wrote(author)


def organisation_key(name: str) -> str:
    """What an organisation's name is matched by: "Home Office" and " home  office" are one organisation."""
    return " ".join(str(name).split()).casefold()


def owns_lighthouse(viewer: User | None, entry: Entry) -> bool:
    """Owns the entry's lighthouse (and hears when it is due for review): its author (`is_author`), or the
    signed-in person whose e-mail address is its contact (the more reliable key, where the entry gives one)."""
    if viewer is None or not signed_in(viewer):
        return False
    email = (viewer.email or "").strip().casefold()
    return is_author(viewer, entry) or (bool(email) and entry.contact.strip().casefold() == email)


def hears_of_every_due_lighthouse(viewer: User | None) -> bool:
    """Hears of every lighthouse due for review that they may see, not only their own (in their digest, and
    listed on the Insights page's curators' tab): curators and admins; None is the operator."""
    return viewer is None or viewer.has_role(CURATOR)


def entry_meta(entry: Entry) -> dict[str, Any]:
    return {
        "visibility": entry.visibility,
        "status": entry.status,
        "organisation": entry.organisation,
        "partners": entry.partners,
        "author": entry.author,
        "author_key": author_key(entry.author),
    }


def sees_anonymous_fields(viewer: User | None, entry: Entry) -> bool:
    """The operator, reviewers and the entry's author: they see an anonymous entry's names, and the address
    a signed-in author is named with (`User.as_author`), which everyone else sees as the name alone."""
    return viewer is None or viewer.is_reviewer or is_author(viewer, entry)


def listed_as_whom_to_ask(entry: Entry) -> bool:
    """Whether the entry may put its team and contact in the directory of whom to ask: never an anonymous
    one, not even for reviewers or its author (who may read its names on the entry itself)."""
    return not entry.anonymous


def listed_name(entry: Entry, name: str) -> str:
    """One of the entry's names (its team, contact or author) as a listing of who did the work shows it (the
    directory, the data-source catalogue, the lighthouses' owners): "" for an anonymous entry, whoever looks
    (`listed_as_whom_to_ask`). Pages draw what this gives; they never decide it again."""
    return shown_name(name) if listed_as_whom_to_ask(entry) else ""


def redact(entry: Entry, viewer: User | None) -> Entry:
    """An anonymous entry as a reader sees it: no team, contact or author (reviewers and the author see all)."""
    if not entry.anonymous or sees_anonymous_fields(viewer, entry):
        return entry
    return replace(entry, **_WITHHELD)


@dataclass(frozen=True)
class Shown:
    """An entry as one viewer may see it, and which of its fields were withheld (by export column name)."""

    entry: Entry
    withheld: tuple[str, ...] = ()


def present(entry: Entry, viewer: User | None, may_see: Callable[[str], bool]) -> Shown:
    """The entry as this viewer sees it: anonymous fields withheld, its authors' addresses too unless they
    see those (`sees_anonymous_fields`), links to entries they may not see (`may_see(entry_id)` is False)
    left out. The caller has checked that the viewer may see the entry."""
    if viewer is None:
        return Shown(entry)
    shown = redact(entry, viewer)
    # Named whether or not anything was there to withhold: "withheld" must not tell a reader that an
    # anonymous entry had a team, or that a link to a hidden entry was cut.
    withheld = list(ANONYMOUS_FIELDS) if shown is not entry else []
    if not sees_anonymous_fields(viewer, entry):
        shown = replace(shown, author=shown_name(shown.author), revised_by=shown_name(shown.revised_by))
    shown = replace(shown, related=[i for i in entry.related if may_see(i)])
    if entry.lighthouse is not None:
        reused = [i for i in entry.lighthouse.reused_by if may_see(i)]
        known = {i: r for i, r in entry.lighthouse.reuse.items() if i in reused}
        shown = replace(shown, lighthouse=replace(entry.lighthouse, reused_by=reused, reuse=known))
    return Shown(shown, (*withheld, *LINK_FIELDS))


def restore_withheld(edited: Entry, stored: Entry, viewer: User | None, may_see: Callable[[str], bool]) -> Entry:
    """An edit made on the viewer's view of `stored`, with what was withheld from them put back: their
    edit can neither blank nor reveal an anonymous entry's team, nor drop a link they could not see."""
    if viewer is None:
        return edited
    restored = edited
    if not sees_anonymous_fields(viewer, stored):  # they saw the authors' names without their addresses
        restored = replace(restored, author=stored.author, revised_by=stored.revised_by)
    if stored.anonymous and not sees_anonymous_fields(viewer, stored):
        # Nor may they lift the anonymity: that would show everyone the names hidden from them.
        restored = replace(restored, anonymous=True, **{name: getattr(stored, name) for name in ANONYMOUS_FIELDS})
    hidden_related = [i for i in stored.related if not may_see(i) and i not in restored.related]
    if hidden_related:
        restored = replace(restored, related=[*restored.related, *hidden_related])
    hidden_reuse = [i for i in (stored.lighthouse.reused_by if stored.lighthouse else ()) if not may_see(i)]
    if hidden_reuse and restored.lighthouse is None:
        raise KBError(
            "this lighthouse project is reused by entries you cannot see, so it stays a lighthouse; "
            "ask a curator to change that"
        )
    if hidden_reuse and restored.lighthouse is not None and stored.lighthouse is not None:
        shown = restored.lighthouse.reused_by
        kept = [*shown, *(i for i in hidden_reuse if i not in shown)]
        known = {
            **restored.lighthouse.reuse,
            **{i: stored.lighthouse.reuse[i] for i in hidden_reuse if i in stored.lighthouse.reuse},
        }
        restored = replace(restored, lighthouse=replace(restored.lighthouse, reused_by=kept, reuse=known))
    return restored


# --------------------------------------------------------------------------- changing


def can_edit(viewer: User | None, entry: Entry) -> bool:
    """The author, members of the owning organisation (as contributors), curators and admins; never
    someone who may not see the entry."""
    if viewer is None:
        return True
    if not signed_in(viewer) or not can_see(viewer, entry_meta(entry)):
        return False
    if edits_any(viewer):
        return True
    own_organisation = bool(viewer.organisation) and viewer.organisation == entry.organisation
    return viewer.is_contributor and (is_author(viewer, entry) or own_organisation)


def edit_waits_for_review(viewer: User | None, stored: Entry) -> bool:
    """An edit of a readable (published or archived) entry by someone who could not approve it (not a
    reviewer, or its own author) must not change what readers see until a reviewer approves it: it is
    kept as a pending revision."""
    return viewer is not None and stored.status in READABLE_STATUSES and not can_review(viewer, stored)


def edit_statuses(viewer: User | None, stored: Entry | None, *, waits_for_review: bool = False) -> tuple[str, ...]:
    """The statuses an editor may save with: a new entry or an edit waiting for review is a draft or sent
    for review; whoever edits a readable entry directly may also keep it as it is (published or archived)."""
    if viewer is None:
        return STATUSES
    if stored is None or waits_for_review or stored.status not in READABLE_STATUSES:
        return UNPUBLISHED_STATUSES
    return (*UNPUBLISHED_STATUSES, stored.status)


def can_review(viewer: User | None, entry: Entry, revision: Entry | None = None) -> bool:
    """A reviewer who may see the entry and did not write it, nor the change under review (a revision's
    proposer, or whoever last changed the entry while it waited: `revised_by`). The operator may."""
    if viewer is None:
        return True
    if not signed_in(viewer) or not viewer.is_reviewer or not can_see(viewer, entry_meta(entry)):
        return False
    # By name too: an entry written before sign-in names its author alone, and its author must not approve it.
    return not viewer.may_have_written(entry.author) and not viewer.may_have_written((revision or entry).revised_by)


# --------------------------------------------------------------------------- history


def version_for(viewer: User | None, version: Entry, current: Entry) -> Entry | None:
    """An earlier version as this viewer may read it, or None. Shown only to a viewer who could see that
    version (its own visibility and status) and can see the entry now; while the entry is anonymous, its
    earlier versions withhold team, contact and author from readers too (`present` does the rest)."""
    if viewer is None:
        return version
    if not can_see(viewer, entry_meta(version)) or not can_see(viewer, entry_meta(current)):
        return None
    if current.anonymous and not sees_anonymous_fields(viewer, current):
        version = replace(version, anonymous=True, **_WITHHELD)
    return version


# --------------------------------------------------------------------------- evidence notes
#
# - adding a note: a signed-in contributor (or reviewer) who may see the entry, whatever organisation owns
#   it. A note on an entry the viewer may not see does not exist for them (the entry's NotFound).
# - an anonymous note shows its organisation and author only to reviewers and its own author; readers
#   see neither, and its organisation is not counted in the entry's recurrence for them (kb.notes).
# - changing or withdrawing a note: its author, curators and admins, among those who may see the entry.
# - a note's history: as for entries, only to those who may see the entry; a withdrawn note's versions
#   only to its author and reviewers; anonymous fields withheld from readers if any version was anonymous.

NOTE_ANONYMOUS_FIELDS = ("organisation", "author")


def can_add_note(viewer: User | None, entry: Entry) -> bool:
    """A signed-in contributor who may see the entry, whoever owns it; the operator."""
    if viewer is None:
        return True
    return signed_in(viewer) and can_contribute(viewer) and can_see(viewer, entry_meta(entry))


def note_organisation(viewer: User | None, given: str | None) -> str:
    """The organisation a note speaks for. A person signed in as a member of an organisation adds
    evidence for that organisation only: otherwise one person could make a lesson look "seen in five
    organisations". The operator and the local user of a copy without sign-in (who curate it) may name
    any; someone signed in without an organisation names their own."""
    own = viewer.organisation if viewer is not None else ""
    if given is None:
        return own
    if not given.strip():
        return given  # no organisation at all: the note's validation says which field to fill in
    if viewer is not None and not viewer.local and own and given.strip().casefold() != own.casefold():
        raise Forbidden(f"you add evidence as a member of {own}; a note cannot speak for another organisation")
    return given


def wrote_note(viewer: User | None, note: Any) -> bool:
    return viewer is not None and signed_in(viewer) and viewer.wrote(note.author)


def sees_note_fields(viewer: User | None, note: Any) -> bool:
    """Sees an anonymous note's organisation and author: the operator, reviewers and its author."""
    return viewer is None or viewer.is_reviewer or wrote_note(viewer, note)


def note_for(viewer: User | None, note: Any) -> Any:
    """A note as this viewer sees it (the caller has checked that they may see its entry): an anonymous
    note's names withheld, and its author's address unless they see it (`sees_note_fields`)."""
    if sees_note_fields(viewer, note):
        return note
    if not note.anonymous:
        return replace(note, author=shown_name(note.author))
    return replace(note, **dict.fromkeys(NOTE_ANONYMOUS_FIELDS, ""))


def can_change_note(viewer: User | None, note: Any, entry: Entry) -> bool:
    """Its author, curators and admins, who may see the entry; the operator."""
    if viewer is None:
        return True
    if not signed_in(viewer) or not can_see(viewer, entry_meta(entry)):
        return False
    return wrote_note(viewer, note) or edits_any(viewer)


def note_version_for(viewer: User | None, version: Any, current: Any | None, *, anonymous_ever: bool) -> Any | None:
    """An earlier version of a note as this viewer may read it, or None (the caller has checked that they
    may see the entry). `current` is None for a withdrawn note; `anonymous_ever`: any version was anonymous."""
    if viewer is None:
        return version
    owner = current if current is not None else version
    if current is None and not sees_note_fields(viewer, owner):
        return None
    if (anonymous_ever or version.anonymous) and not sees_note_fields(viewer, owner):
        return replace(version, anonymous=True, **dict.fromkeys(NOTE_ANONYMOUS_FIELDS, ""))
    return version if sees_note_fields(viewer, owner) else replace(version, author=shown_name(version.author))
