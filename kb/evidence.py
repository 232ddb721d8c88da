"""Evidence notes under the access rules: reading an entry's notes and its recurrence, adding, editing and
withdrawing a note, its history, and what changed since a moment (for digests and feeds).

    evidence.add_note(kb, "benefits-and-housing-data-sharing-pilot", text="We hit this too.", year=2023, viewer=user)
    evidence.notes(kb, "benefits-and-housing-data-sharing-pilot", viewer=user)
    evidence.recurrence(kb, "benefits-and-housing-data-sharing-pilot", viewer=user)   # "seen in 4 organisations since 2019"

The note (its fields, validation, files and history) is kb.notes's; who may add, see or change a note is
kb.access's. A note belongs to its entry: whoever may not see the entry gets the entry's NotFound for its
notes too. Writing a note never touches the entry's file; the entry is indexed again with its notes.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from kb.access import can_add_note, can_change_note, note_for, note_organisation, note_version_for
from kb.errors import Conflict, EntryError, Forbidden, KBError, NotFound, SavedNotIndexed
from kb.notes import Note, Recurrence, make_note, now_utc, parse_note, validate_fields
from kb.notes import recurrence as count_recurrence

if TYPE_CHECKING:
    from kb.entries import Entry
    from kb.identity import User
    from kb.knowledge import KnowledgeBase

__all__ = [
    "NoteNotIndexed",
    "PastNote",
    "add_note",
    "edit_note",
    "may_add_note",
    "may_change_note",
    "note_history",
    "notes",
    "notes_since",
    "recurrence",
    "withdraw_note",
]
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PastNote:
    """An earlier version of an evidence note as one viewer may read it: when it was replaced or withdrawn,
    and the note (anonymous fields withheld from readers)."""

    replaced: str
    note: Note


class NoteNotIndexed(SavedNotIndexed):
    """The note's file was written but indexing its entry failed: the note is kept, search finds it after
    the next sync."""

    def __init__(self, entry_id: str, reason: str):
        super().__init__(entry_id, reason)
        self.args = (
            f"your note is saved, but not searchable yet ({reason}); there is no need to add it again: "
            "search finds it after the next `python -m kb sync`",
        )


def notes(kb: KnowledgeBase, entry_id: str, *, viewer: User | None = None) -> list[Note]:
    """An entry's evidence notes, oldest first, as this viewer may see them; the entry's NotFound when
    they may not see the entry (its notes do not exist for them either)."""
    kb.stored(entry_id, viewer)
    return [note_for(viewer, n) for n in kb.note_store.notes(entry_id)[0]]


def recurrence(kb: KnowledgeBase, entry_id: str, *, viewer: User | None = None) -> Recurrence:
    """ "Seen in 4 organisations since 2019": the entry's organisation and its notes', as this viewer
    may know them (an anonymous note's organisation is not counted for readers, kb.access)."""
    entry = kb.stored(entry_id, viewer)
    return count_recurrence(entry.organisation, entry.year, notes(kb, entry_id, viewer=viewer))


def may_add_note(kb: KnowledgeBase, entry_id: str, viewer: User | None) -> bool:
    """Whether this viewer may add a note to this entry (False, too, for one they may not see)."""
    try:
        return can_add_note(viewer, kb.stored(entry_id, viewer))
    except KBError:
        return False


def may_change_note(kb: KnowledgeBase, entry_id: str, note_id: str, viewer: User | None) -> bool:
    """Whether this viewer may edit or withdraw this note (False for one they may not see)."""
    try:
        _note(kb, kb.stored(entry_id, viewer), note_id, viewer)
    except KBError:
        return False
    return True


def add_note(
    kb: KnowledgeBase,
    entry_id: str,
    *,
    text: str,
    year: int | str,
    organisation: str | None = None,
    link: str = "",
    anonymous: bool = False,
    viewer: User | None = None,
) -> Note:
    """Add an evidence note to an entry the viewer may see (any organisation's): what happened, the
    year, their organisation (the signed-in user's by default), an optional link, anonymous or not.
    The entry's own file is never touched; its passages are indexed again with the note (about one
    entry's save). NoteNotIndexed when the note was written but indexing failed."""
    entry = kb.stored(entry_id, viewer)
    if not can_add_note(viewer, entry):
        raise Forbidden("sign in as a contributor to add your evidence to an entry")
    organisation = note_organisation(viewer, organisation)
    note = make_note(
        entry_id,
        text=text,
        organisation=organisation,
        year=year,
        link=link,
        anonymous=anonymous,
        author=viewer.as_author if viewer is not None else "",
    )
    for _ in range(5):  # two notes written in the same day may draw the same id
        try:
            kb.note_store.write(note, create=True)
            break
        except Conflict:
            note = make_note(
                entry_id, text=note.text, organisation=note.organisation, year=note.year, link=note.link,
                anonymous=note.anonymous, author=note.author,
            )  # fmt: skip
    else:
        raise Conflict("could not find a free id for the note; try again")
    _index_notes(kb, entry_id)
    return note_for(viewer, note)


def edit_note(
    kb: KnowledgeBase,
    entry_id: str,
    note_id: str,
    *,
    text: str | None = None,
    year: int | str | None = None,
    link: str | None = None,
    anonymous: bool | None = None,
    viewer: User | None = None,
) -> Note:
    """Change a note (its author, curators and admins); the version it replaces is kept in its history."""
    entry = kb.stored(entry_id, viewer)
    note = _note(kb, entry, note_id, viewer)
    text, organisation, number, link, problems = validate_fields(
        text=note.text if text is None else text,
        organisation=note.organisation,
        year=note.year if year is None else year,
        link=note.link if link is None else link,
    )
    if problems:
        raise EntryError(problems)
    changed = Note(
        entry_id,
        note.id,
        text,
        organisation,
        number,
        link,
        note.anonymous if anonymous is None else bool(anonymous),
        note.author,
        note.created,
        now_utc().isoformat(timespec="seconds"),
    )
    kb.note_store.write(changed)
    _index_notes(kb, entry_id)
    return note_for(viewer, changed)


def withdraw_note(kb: KnowledgeBase, entry_id: str, note_id: str, *, viewer: User | None = None) -> None:
    """Withdraw a note (its author, curators and admins): it is no longer shown nor searched; its last
    version is kept in its history."""
    entry = kb.stored(entry_id, viewer)
    _note(kb, entry, note_id, viewer)
    kb.note_store.remove(entry_id, note_id)
    _index_notes(kb, entry_id)


def note_history(kb: KnowledgeBase, entry_id: str, note_id: str, *, viewer: User | None = None) -> list[PastNote]:
    """A note's earlier versions, newest first, as this viewer may read them (kb.access)."""
    kb.stored(entry_id, viewer)
    try:
        current = kb.note_store.get(entry_id, note_id)
    except NotFound:
        current = None
    except EntryError:
        if viewer is not None:
            raise NotFound(f"no note with id '{note_id}'") from None
        raise
    parsed = []
    for version in kb.note_store.history(entry_id, note_id):
        try:
            parsed.append((version.replaced, parse_note(version.text, note_id, entry_id=entry_id, note_id=note_id)))
        except EntryError:
            continue
    if current is None and not parsed:
        raise NotFound(f"no note with id '{note_id}'")
    anonymous_ever = any(n.anonymous for _, n in parsed) or bool(current and current.anonymous)
    shown = []
    for replaced, old in parsed:
        seen = note_version_for(viewer, old, current, anonymous_ever=anonymous_ever)
        if seen is not None:
            shown.append(PastNote(replaced, seen))
    if current is None and not shown:
        raise NotFound(f"no note with id '{note_id}'")  # a withdrawn note that is not theirs: none at all
    return shown


def notes_since(kb: KnowledgeBase, when: dt.datetime, viewer: User | None = None) -> list[Note]:
    """Every note added or changed since `when` (aware, or taken as UTC) on an entry this viewer may see,
    as they may see it, oldest first: for digests and feeds."""
    when = when if when.tzinfo else when.replace(tzinfo=dt.UTC)
    found, _ = kb.note_store.all()
    shown = []
    for entry_id, entry_notes in found.items():
        recent = [n for n in entry_notes if _changed_at(n) >= when]
        if not recent:
            continue
        try:
            kb.stored(entry_id, viewer)
        except KBError:
            continue  # missing, unreadable or hidden from this viewer: its notes do not exist for them
        shown += [note_for(viewer, n) for n in recent]
    return sorted(shown, key=lambda n: (_changed_at(n), n.entry_id, n.id))


def _note(kb: KnowledgeBase, entry: Entry, note_id: str, viewer: User | None) -> Note:
    """A note this viewer may change; the same NotFound for a missing note and one they may not see."""
    try:
        note = kb.note_store.get(entry.id, note_id)
    except EntryError:
        if viewer is not None:
            raise NotFound(f"no note with id '{note_id}'") from None
        raise
    if not can_change_note(viewer, note, entry):
        raise Forbidden("only the note's author or a curator may change or withdraw it")
    return note


def _index_notes(kb: KnowledgeBase, entry_id: str) -> None:
    try:
        kb.index_entries([entry_id])
    except Exception as exc:  # the note's file is written and is the record
        log.warning("indexing %s after its notes changed failed", entry_id, exc_info=True)
        raise NoteNotIndexed(entry_id, str(exc) or exc.__class__.__name__) from exc


def _changed_at(note: Note) -> dt.datetime:
    try:
        value = dt.datetime.fromisoformat(note.updated or note.created)
    except ValueError:
        return note.when
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)
