"""Evidence notes ("we hit this too"): a short note that another team met the same lesson, on an entry.

A note says what happened to them, their organisation and the year, with an optional link, and may be
anonymous. It never changes its entry's text or status. Notes are knowledge, so they are files beside the
entries, one Markdown file each, reviewable in a git diff:

    entries/.notes/<entry-id>/<YYYYMMDD>-<6 hex>.md          the note: front matter, then what happened
    entries/.notes/<entry-id>/.history/<note-id>/<stamp>-<hash>.md   its earlier versions (edits, withdrawal)

This module is the note itself (fields, validation with the entries' `Problem` messages, parsing and
rendering), the folder of notes (`NoteStore`, with the entries' write discipline: atomic writes, a lock,
history, no symbolic links followed) and the recurrence an entry's notes show. Who may add, see and change a
note is kb.access's; indexing a note as a passage of its entry is kb.indexer's.
"""

from __future__ import annotations

import datetime as dt
import re
import secrets
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

import yaml

from kb.entries import content_hash, is_valid_id, is_web_address
from kb.entry_fields import FieldReader
from kb.entry_files import FRONT_MATTER_RE
from kb.errors import EntryError, KBError, NotFound, Problem
from kb.store import IsSymlink, _read_regular, atomic_write, file_lock, kept_versions
from kb.yamlfile import DuplicateKey, load_yaml

NOTES_DIR = ".notes"  # beside the entries; a hidden folder is never listed as an entry
HISTORY_DIR = ".history"  # inside each entry's notes folder
NOTE_SUFFIX = ".md"
NOTE_SECTION = "Evidence from others"  # the section an entry's notes are searched (and shown) under
MAX_NOTE_TEXT = 2_000
MAX_NOTE_BYTES = 20_000
EARLIEST_YEAR = 1950
FIELDS = ("organisation", "year", "link", "anonymous", "author", "created", "updated")
_NOTE_ID = re.compile(r"^\d{8}-[0-9a-f]{6}$")
_VERSION_NAME = re.compile(r"^(\d{8}T\d{12}Z)-[0-9a-f]{12}" + re.escape(NOTE_SUFFIX) + "$")


@dataclass(frozen=True)
class Note:
    """One evidence note on one entry. `created` and `updated` are UTC times in ISO form."""

    entry_id: str
    id: str
    text: str  # what happened to them
    organisation: str
    year: int
    link: str = ""
    anonymous: bool = False  # hides organisation and author from readers (kb.access)
    author: str = ""
    created: str = ""
    updated: str = ""

    @property
    def when(self) -> dt.datetime:
        """When it was written (the epoch for a note without a readable time)."""
        try:
            value = dt.datetime.fromisoformat(self.created)
        except ValueError:
            return dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
        return value if value.tzinfo else value.replace(tzinfo=dt.UTC)

    def to_dict(self) -> dict:
        return asdict(self)


def now_utc() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def new_note_id(when: dt.datetime | None = None) -> str:
    """A fresh note id: the day it was written and six random hex digits ("20261203-4fa91c")."""
    return f"{(when or now_utc()):%Y%m%d}-{secrets.token_hex(3)}"


def is_note_id(note_id: str) -> bool:
    return isinstance(note_id, str) and bool(_NOTE_ID.match(note_id))


def latest_year() -> int:
    return now_utc().year


def validate_fields(
    *, text: str, organisation: str, year: object, link: str = "", source: str = "note"
) -> tuple[str, str, int, str, list[Problem]]:
    """A note's fields as typed, cleaned, with a Problem for each bad one (the form and the file alike)."""
    problems: list[Problem] = []
    text = (text or "").strip()
    organisation = " ".join(str(organisation or "").split())
    link = (link or "").strip()
    if not text:
        problems.append(Problem(source, "say what happened to you, in a sentence or two", field="text"))
    elif len(text) > MAX_NOTE_TEXT:
        problems.append(
            Problem(source, f"is {len(text):,} characters long; keep it to {MAX_NOTE_TEXT:,}", field="text")
        )
    if not organisation:
        problems.append(Problem(source, "give your organisation's name", field="organisation"))
    elif len(organisation) > 200:
        problems.append(Problem(source, "is longer than 200 characters; shorten it", field="organisation"))
    number = 0
    if isinstance(year, bool) or year in (None, ""):
        problems.append(Problem(source, "give the year it happened, e.g. 2024", field="year"))
    else:
        try:
            number = int(str(year).strip())
        except ValueError:
            problems.append(
                Problem(source, f"'{year}' is not a year; write it as four digits, e.g. 2024", field="year")
            )
        else:
            if not EARLIEST_YEAR <= number <= latest_year():
                problems.append(
                    Problem(source, f"{number} is not a year between {EARLIEST_YEAR} and {latest_year()}", field="year")
                )
    if link and not is_web_address(link):
        problems.append(Problem(source, "is not a web address; give an http(s) link or leave it empty", field="link"))
    return text, organisation, number, link, problems


def make_note(
    entry_id: str,
    *,
    text: str,
    organisation: str,
    year: object,
    link: str = "",
    anonymous: bool = False,
    author: str = "",
    when: dt.datetime | None = None,
) -> Note:
    """A new note, validated (EntryError with every problem, each naming its field)."""
    text, organisation, number, link, problems = validate_fields(
        text=text, organisation=organisation, year=year, link=link
    )
    if problems:
        raise EntryError(problems)
    stamp = (when or now_utc()).isoformat(timespec="seconds")
    return Note(entry_id, new_note_id(when), text, organisation, number, link, bool(anonymous), author, stamp, stamp)


# --------------------------------------------------------------------------- the file


def parse_note(text: str, source: str, *, entry_id: str, note_id: str) -> Note:
    """A note from its file text; EntryError names the file, the field and what to do."""
    if "\x00" in text:
        raise EntryError([Problem(source, "is a binary file, not a note; remove it")])
    match = FRONT_MATTER_RE.match(text.lstrip("\ufeff"))
    if not match:
        raise EntryError(
            [Problem(source, "has no front matter; start the note with '---', its fields, '---', then what happened")]
        )
    try:
        data = load_yaml(match.group(1))
    except DuplicateKey as exc:
        raise EntryError([Problem(source, f"gives '{exc.key}' twice; keep one of them", field=str(exc.key))]) from None
    except (yaml.YAMLError, ValueError, TypeError, OverflowError):
        raise EntryError([Problem(source, "front matter is not valid YAML; fix it (quote unusual values)")]) from None
    if not isinstance(data, dict):
        raise EntryError([Problem(source, "front matter must be 'field: value' lines")])
    data = {str(k): v for k, v in data.items()}
    f = FieldReader(data, source)
    for unknown in sorted(set(data) - set(FIELDS)):
        f.problem(unknown, f"is not a note field; use only: {', '.join(FIELDS)}")
    organisation, link = f.text("organisation"), f.text("link", limit=2_000)
    anonymous, author = f.flag("anonymous"), f.text("author")
    created, updated = (_timestamp(f, name) for name in ("created", "updated"))
    body, clean_org, year, clean_link, problems = validate_fields(
        text=match.group(2), organisation=organisation, year=data.get("year"), link=link, source=source
    )
    problems = f.problems + problems
    if not created:
        problems.append(
            Problem(source, "say when the note was written, e.g. 2026-12-03T10:00:00+00:00", field="created")
        )
    if problems:
        raise EntryError(problems)
    return Note(entry_id, note_id, body, clean_org, year, clean_link, anonymous, author, created, updated or created)


def _timestamp(f: FieldReader, name: str) -> str:
    value = f.data.get(name)
    if value is None or value == "":
        return ""
    if isinstance(value, dt.datetime):
        value = value if value.tzinfo else value.replace(tzinfo=dt.UTC)
        return value.isoformat(timespec="seconds")
    try:
        parsed = dt.datetime.fromisoformat(str(value).strip())
    except ValueError:
        f.problem(name, f"'{value}' is not a time; write it as 2026-12-03T10:00:00+00:00")
        return ""
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)).isoformat(timespec="seconds")


def render_note(note: Note) -> str:
    front = {
        "organisation": note.organisation,
        "year": note.year,
        **({"link": note.link} if note.link else {}),
        "anonymous": note.anonymous,
        **({"author": note.author} if note.author else {}),
        "created": note.created,
        "updated": note.updated or note.created,
    }
    header = yaml.safe_dump(front, sort_keys=False, allow_unicode=True, width=100)
    return f"---\n{header}---\n{note.text.strip()}\n"


def passage_text(note: Note) -> str:
    """The words of a note as its entry's passage: what happened, and who and when unless anonymous (a
    passage is shown to every reader of the entry, so an anonymous note names nobody there)."""
    who = f"{note.year}" if note.anonymous else f"{note.organisation}, {note.year}"
    return f"{note.text} ({who})"


# --------------------------------------------------------------------------- recurrence


@dataclass(frozen=True)
class Recurrence:
    """How often an entry's lesson was met: distinct organisations and the earliest year, as one viewer
    may know them (an anonymous note's organisation is not counted for a reader who may not see it)."""

    organisations: int
    since: int | None
    notes: int

    def __str__(self) -> str:
        word = "organisation" if self.organisations == 1 else "organisations"
        since = f" since {self.since}" if self.since else ""
        return f"seen in {self.organisations} {word}{since}"


def recurrence(organisation: str, year: int | None, notes: Iterable[Note]) -> Recurrence:
    """The entry's own organisation and its notes' (those with a name given: an anonymous note as a reader
    sees it has none), distinct, since the earliest year of the entry and its notes."""
    notes = list(notes)
    names = {" ".join(n.organisation.split()).casefold() for n in notes if n.organisation.strip()}
    if organisation.strip():
        names.add(" ".join(organisation.split()).casefold())
    years = [y for y in [year, *(n.year for n in notes)] if y]
    return Recurrence(len(names), min(years) if years else None, len(notes))


# --------------------------------------------------------------------------- the folder


@dataclass(frozen=True)
class NoteVersion:
    """An earlier version of a note: when it was replaced or withdrawn (UTC, ISO) and its file text."""

    replaced: str
    text: str


class NoteStore:
    """`entries/.notes/`: reading, validating and atomically writing notes, and keeping their history."""

    def __init__(self, entries_root: Path | str):
        self.entries_root = Path(entries_root)
        self.root = self.entries_root / NOTES_DIR

    def folder(self, entry_id: str) -> Path:
        if not is_valid_id(entry_id):
            raise NotFound(f"'{entry_id}' is not a valid entry id (lowercase letters, digits and hyphens)")
        return self.root / entry_id

    def path_for(self, entry_id: str, note_id: str) -> Path:
        if not is_note_id(note_id):
            raise NotFound(f"no note with id '{note_id}'")
        return self.folder(entry_id) / f"{note_id}{NOTE_SUFFIX}"

    def _safe(self, folder: Path) -> bool:
        """This folder exists under the entries folder and no part of it is a symbolic link."""
        here = folder
        while here != self.entries_root and here != here.parent:
            if here.is_symlink() or not here.is_dir():
                return False
            here = here.parent
        return True

    def _files(self, entry_id: str) -> list[Path]:
        folder = self.folder(entry_id)
        if not self._safe(folder):
            return []
        return sorted(p for p in folder.glob(f"*{NOTE_SUFFIX}") if not p.name.startswith("."))

    def read(self, path: Path, entry_id: str) -> Note:
        source = f"{NOTES_DIR}/{entry_id}/{path.name}"
        if not is_note_id(path.stem):
            raise EntryError(
                [Problem(source, "is not named as a note (YYYYMMDD-xxxxxx.md); rename it or remove it", field="id")]
            )
        try:
            raw = _read_regular(path)
        except IsSymlink:
            raise EntryError(
                [Problem(source, "is a symbolic link; only regular files are read: put the note itself here")]
            ) from None
        if len(raw) > MAX_NOTE_BYTES:
            raise EntryError([Problem(source, f"is {len(raw):,} bytes; a note file may be {MAX_NOTE_BYTES:,}")])
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise EntryError([Problem(source, "is not UTF-8 text; save it as UTF-8")]) from None
        return parse_note(text, source, entry_id=entry_id, note_id=path.stem)

    def notes(self, entry_id: str) -> tuple[list[Note], list[Problem]]:
        """The entry's notes, oldest first, and a problem for each file that is not a valid note (the
        good files beside a bad one still load)."""
        notes, problems = [], []
        for path in self._files(entry_id):
            try:
                notes.append(self.read(path, entry_id))
            except EntryError as exc:
                problems.extend(exc.problems)
            except OSError as exc:
                problems.append(Problem(f"{NOTES_DIR}/{entry_id}/{path.name}", f"cannot be read ({exc.strerror})"))
        notes.sort(key=lambda n: (n.when, n.id))
        return notes, problems

    def entry_ids(self) -> list[str]:
        """Entries that have a notes folder."""
        if not self._safe(self.root):
            return []
        return sorted(p.name for p in self.root.iterdir() if is_valid_id(p.name) and self._safe(p))

    def all(self) -> tuple[dict[str, list[Note]], list[Problem]]:
        """Every entry's notes, and every bad note file."""
        found, problems = {}, []
        for entry_id in self.entry_ids():
            notes, bad = self.notes(entry_id)
            problems += bad
            if notes:
                found[entry_id] = notes
        return found, problems

    def signature(self, entry_id: str) -> str:
        """What the index must know of an entry's notes to tell they changed: their names and bytes, ""
        when there are none (so an entry without notes is indexed exactly as before)."""
        parts = []
        for path in self._files(entry_id) if is_valid_id(entry_id) else ():
            try:
                parts.append(f"{path.name}\n{content_hash(_read_regular(path))}")
            except OSError:
                continue
        return "\n".join(parts)

    def get(self, entry_id: str, note_id: str) -> Note:
        path = self.path_for(entry_id, note_id)
        if not self._safe(path.parent) or path.is_symlink() or not path.is_file():
            raise NotFound(f"no note with id '{note_id}'")
        return self.read(path, entry_id)

    def write(self, note: Note, *, create: bool = False) -> None:
        """Validate and write a note atomically; an edit keeps the version it replaces in the history."""
        text = render_note(note)
        parse_note(text, note.id, entry_id=note.entry_id, note_id=note.id)  # validate exactly what goes to disk
        path = self.path_for(note.entry_id, note.id)
        self._own(path.parent)
        with self._lock():
            if create:
                atomic_write(path, text, replace=False)
                return
            if not path.is_file() or path.is_symlink():
                raise NotFound(f"no note with id '{note.id}'")
            self._keep_previous(path)
            atomic_write(path, text)

    def remove(self, entry_id: str, note_id: str) -> None:
        """Withdraw a note: its last version goes to the history, the file goes."""
        path = self.path_for(entry_id, note_id)
        with self._lock():
            if not self._safe(path.parent) or path.is_symlink() or not path.is_file():
                raise NotFound(f"no note with id '{note_id}'")
            self._keep_previous(path)
            path.unlink()

    def history(self, entry_id: str, note_id: str) -> list[NoteVersion]:
        """A note's earlier versions, newest first (its last one too, once it is withdrawn)."""
        folder = self.folder(entry_id) / HISTORY_DIR / note_id
        if not is_note_id(note_id) or not self._safe(folder):
            return []
        return [NoteVersion(when, text) for when, text in kept_versions(folder, _VERSION_NAME)]

    def withdrawn(self, entry_id: str) -> list[str]:
        """Ids of the entry's notes that have a history but no file any more."""
        folder = self.folder(entry_id) / HISTORY_DIR
        if not self._safe(folder):
            return []
        return sorted(
            p.name
            for p in folder.iterdir()
            if is_note_id(p.name) and not (self.folder(entry_id) / f"{p.name}{NOTE_SUFFIX}").exists()
        )

    def _keep_previous(self, path: Path) -> None:
        previous = _read_regular(path)
        stamp = now_utc().strftime("%Y%m%dT%H%M%S%fZ")
        folder = self._own(path.parent / HISTORY_DIR / path.stem)
        atomic_write(folder / f"{stamp}-{content_hash(previous)[:12]}{NOTE_SUFFIX}", previous)

    def _own(self, folder: Path) -> Path:
        """Make a folder under the entries folder, refusing a symbolic link anywhere on the way."""
        relative = folder.relative_to(self.entries_root)
        here = self.entries_root
        for part in relative.parts:
            here = here / part
            if here.is_symlink():
                raise KBError(f"{here.relative_to(self.entries_root)} is a symbolic link; replace it with a folder")
            here.mkdir(exist_ok=True)
        return folder

    def _lock(self):
        return file_lock(self.entries_root / ".lock")
