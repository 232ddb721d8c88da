"""The entries folder: listing, reading, validating and atomically writing entry files, their earlier
versions (`.history/<id>/`) and edits waiting for review (`.revisions/<id>.md`).

The files are the source of truth. Every read and every write validates; a bad file is reported by
name, field and remedy, and never stops the good files from loading. Writes are atomic (a temporary
file and a rename), and symbolic links are never followed.
"""

from __future__ import annotations

import datetime as dt
import errno
import os
import re
import tempfile
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from filelock import FileLock, Timeout

from kb.entries import ENTRY_SUFFIX, MAX_FILE_BYTES, Entry, content_hash, is_valid_id, slugify
from kb.entry_files import parse_entry, render_entry
from kb.errors import Conflict, EntryError, KBError, NotFound, Problem

HISTORY_DIR = ".history"  # earlier versions of each entry, beside the entries (hidden names are not listed)
REVISIONS_DIR = ".revisions"  # edits of published entries waiting for review, one per entry
TEMP_PREFIX, TEMP_SUFFIX = ".tmp-", ".tmp"  # never "*.md": a leftover is never read as an entry or a version
STALE_TEMP_SECONDS = 3600  # a temporary file untouched this long was left by a killed writer


@contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """An exclusive lock on `path`, across processes and threads on this machine (and on Windows)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(path):
        yield


@contextmanager
def file_lock_if_free(path: Path) -> Iterator[bool]:
    """The lock of `file_lock` if nobody holds it now (True), else nothing (False), without waiting."""
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(path, timeout=0)
    try:
        lock.acquire()
    except Timeout:
        yield False
        return
    try:
        yield True
    finally:
        lock.release()


def atomic_write(path: Path, text: str | bytes, *, replace: bool = True) -> None:
    """Write via a temporary file in the same folder and a rename: a crash leaves old or new, never half.
    Text is written as UTF-8, its line endings as given.

    With replace=False the file appears complete or not at all, and never replaces an existing one
    (a hard link fails if the name is taken), so two writers racing for one new id cannot both win.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=TEMP_PREFIX, suffix=TEMP_SUFFIX)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(text.encode("utf-8") if isinstance(text, str) else text)
            handle.flush()
            os.fsync(handle.fileno())
        if replace:
            os.replace(tmp, path)
        else:
            try:
                os.link(tmp, path)
            except FileExistsError:
                raise Conflict(f"an entry with id '{path.stem}' already exists; choose another id") from None
    finally:
        Path(tmp).unlink(missing_ok=True)


def sweep_temporary(folder: Path, older_than: float = STALE_TEMP_SECONDS) -> None:
    """Remove temporary files a killed writer left in this folder (never one a live writer may still use)."""
    stale = time.time() - older_than
    for leftover in folder.glob(f"{TEMP_PREFIX}*") if folder.is_dir() else ():
        try:
            if leftover.is_file() and not leftover.is_symlink() and leftover.stat().st_mtime < stale:
                leftover.unlink()
        except OSError:
            pass  # another process removed it first


def _read_regular(path: Path) -> bytes:
    """A file's bytes, refusing a symbolic link (O_NOFOLLOW where the system has it, so no race either)."""
    if path.is_symlink():
        raise IsSymlink(path)
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise IsSymlink(path) from None
        raise
    with os.fdopen(fd, "rb") as handle:
        return handle.read()


def kept_versions(folder: Path, named: re.Pattern[str]) -> list[tuple[str, str]]:
    """(when, text) of each earlier version kept in a history folder, newest first: the files whose names
    `named` matches (time first), never a symbolic link, and never a temporary file a killed writer left
    behind (swept once stale). The history of entries and of notes alike."""
    sweep_temporary(folder)
    versions = []
    for path in sorted(folder.iterdir(), reverse=True):
        match = named.match(path.name)
        if not match or path.is_symlink() or not path.is_file():
            continue
        when = dt.datetime.strptime(match.group(1), "%Y%m%dT%H%M%S%fZ").replace(tzinfo=dt.UTC)
        try:
            text = _read_regular(path).decode("utf-8", errors="replace")
        except OSError:
            continue
        versions.append((when.isoformat(timespec="seconds"), text))
    return versions


class IsSymlink(OSError):
    """A symbolic link where Lighthouse reads only regular files."""

    def __init__(self, path: Path):
        super().__init__(errno.ELOOP, "is a symbolic link", str(path))
        self.path = path


SYMLINK_PROBLEM = (
    "is a symbolic link; only regular files in the entries folder are read, so it was skipped: "
    "put the file itself in the folder instead"
)


@dataclass
class LoadResult:
    """Every valid entry in the folder, plus every problem found on the way."""

    entries: dict[str, Entry]
    problems: list[Problem]
    hashes: dict[str, str]


@dataclass(frozen=True)
class Version:
    """An earlier version of an entry: when it was replaced (UTC, ISO) and its file text."""

    replaced: str
    text: str


_BASE_NOTE = "# an edit of version "  # a YAML comment in a revision's front matter: what it was made from
_VERSION_NAME = re.compile(r"^(\d{8}T\d{12}Z)-[0-9a-f]{12}" + re.escape(ENTRY_SUFFIX) + "$")


class EntryStore:
    """The `entries/` folder: listing, reading, validating and atomically writing entry files, their
    earlier versions (`.history/<id>/`) and edits waiting for review (`.revisions/<id>.md`).

    Only regular files are read: a symbolic link (which could point anywhere on the server) is
    reported by name and skipped, never followed.
    """

    def __init__(self, root: Path | str):
        self.root = Path(root)

    def path_for(self, entry_id: str) -> Path:
        if not isinstance(entry_id, str) or not entry_id.strip():
            raise NotFound("give an entry id (lowercase letters, digits and hyphens)")
        if not is_valid_id(entry_id):
            raise NotFound(f"'{entry_id}' is not a valid entry id (lowercase letters, digits and hyphens)")
        return self.root / f"{entry_id}{ENTRY_SUFFIX}"

    def require_folder(self) -> None:
        """Refuse a missing folder or a plain file: checking or syncing it would check nothing, and a
        sync would empty the index."""
        if not self.root.exists():
            raise KBError("the entries folder does not exist; create it or set KB_ENTRIES_DIR", where=self.root)
        if not self.root.is_dir():
            raise KBError(
                "the entries folder is a file, not a folder; point KB_ENTRIES_DIR at the folder", where=self.root
            )

    def scan(self) -> tuple[list[Path], list[Problem]]:
        """The entry files, and a problem for each symbolic link that was skipped."""
        self.require_folder()
        files, problems = [], []
        for path in sorted(self.root.glob(f"*{ENTRY_SUFFIX}")):
            if path.name.startswith((".", "_")) or path.name.lower() == "readme.md":
                continue
            if path.is_symlink():
                problems.append(Problem(path.name, SYMLINK_PROBLEM))
            elif path.is_file():
                files.append(path)
        return files, problems

    def files(self) -> list[Path]:
        return self.scan()[0]

    def read_text(self, path: Path) -> str:
        source = path.name
        try:
            raw = _read_regular(path)
        except IsSymlink:
            raise EntryError([Problem(source, SYMLINK_PROBLEM)]) from None
        if len(raw) > MAX_FILE_BYTES:
            raise EntryError([Problem(source, f"is {len(raw):,} bytes; entry files are limited to {MAX_FILE_BYTES:,}")])
        if b"\x00" in raw:
            raise EntryError([Problem(source, "is a binary file, not Markdown text; remove it or replace it")])
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise EntryError([Problem(source, f"is not UTF-8 text (byte {exc.start}); save it as UTF-8")]) from None

    def load_file(self, path: Path) -> tuple[Entry, list[Problem], str]:
        """One file: its entry, its warnings and the hash of its bytes."""
        text = self.read_text(path)
        entry, warnings = parse_entry(text, path.name)
        if entry.id != path.stem:
            raise EntryError(
                [
                    Problem(
                        path.name,
                        f"id '{entry.id}' does not match the file name; "
                        f"rename the file to {entry.id}{ENTRY_SUFFIX} or change the id",
                        field="id",
                    )
                ]
            )
        return entry, warnings, content_hash(text)

    def load(self, paths: Iterable[Path] | None = None) -> LoadResult:
        entries: dict[str, Entry] = {}
        hashes: dict[str, str] = {}
        problems: list[Problem] = []
        if paths is None:
            paths, problems = self.scan()
        for path in paths:
            try:
                entry, warnings, digest = self.load_file(path)
            except EntryError as exc:
                problems.extend(exc.problems)
                continue
            except OSError as exc:
                problems.append(Problem(path.name, f"cannot be read ({exc.strerror}); check its permissions"))
                continue
            problems.extend(warnings)
            entries[entry.id] = entry
            hashes[entry.id] = digest
        return LoadResult(entries, problems, hashes)

    def get(self, entry_id: str) -> Entry:
        """One entry; NotFound (naming no folder) when there is no such regular file."""
        path = self.path_for(entry_id)
        if path.is_symlink() or not path.is_file():
            raise NotFound.entry(entry_id)
        return self.load_file(path)[0]

    def version(self, entry_id: str) -> str | None:
        """The hash of the file on disk now, to detect a concurrent edit; None if there is none."""
        return _version_of(self.path_for(entry_id))

    def unique_id(self, title: str) -> str:
        base = slugify(title)
        candidate, n = base, 2
        while self.path_for(candidate).exists() or self.path_for(candidate).is_symlink():
            candidate, n = f"{base}-{n}", n + 1
        return candidate

    def write(self, entry: Entry, *, expected_version: str | None = None, create: bool = False) -> str:
        """Validate and atomically write one entry; returns the new version hash.

        `create=True` refuses to replace an existing file. `expected_version` (the hash read before
        editing) refuses to overwrite a file someone else changed since.
        """
        text = render_entry(entry)
        parse_entry(text, f"{entry.id}{ENTRY_SUFFIX}")  # validate exactly what goes to disk
        path = self.path_for(entry.id)
        self.root.mkdir(parents=True, exist_ok=True)
        if create:
            atomic_write(path, text, replace=False)
            return content_hash(text)
        with self._lock():  # the version check, the history copy and the write happen as one step
            self._check_version(path, expected_version)
            self._keep_previous(path)
            atomic_write(path, text)
        return content_hash(text)

    def _check_version(self, path: Path, expected_version: str | None) -> None:
        if expected_version is not None and _version_of(path) != expected_version:
            raise Conflict(
                f"'{path.stem}' was changed by someone else since you opened it; reload it and apply your edits again"
            )

    def _keep_previous(self, path: Path) -> None:
        """Copy the version about to be replaced into `.history/<id>/`, named by time and hash."""
        try:
            previous = _read_regular(path)
        except FileNotFoundError:
            return
        stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S%fZ")
        folder = self._own_folder(HISTORY_DIR, path.stem)
        atomic_write(
            folder / f"{stamp}-{content_hash(previous)[:12]}{ENTRY_SUFFIX}", previous.decode("utf-8", "replace")
        )

    def _own_folder(self, *parts: str) -> Path:
        """A folder inside the entries folder, made if need be; refused if any part of it is a symbolic link,
        which could send an entry's text (a copy of an organisation-only version, say) anywhere."""
        folder = self.root
        for part in parts:
            folder = folder / part
            if folder.is_symlink():
                raise KBError(
                    f"{folder.relative_to(self.root)} in the entries folder is a symbolic link; replace it with a folder",
                    where=folder,
                )
            folder.mkdir(exist_ok=True)
        return folder

    def _is_own_folder(self, *parts: str) -> bool:
        """True when this folder inside the entries folder exists and no part of it is a symbolic link."""
        folder = self.root
        for part in parts:
            folder = folder / part
            if folder.is_symlink() or not folder.is_dir():
                return False
        return True

    def history(self, entry_id: str) -> list[Version]:
        """Earlier versions of an entry, newest first. Only files named as `_keep_previous` names them
        are versions: a temporary file a killed save left behind is swept once stale, never read."""
        stem = self.path_for(entry_id).stem
        if not self._is_own_folder(HISTORY_DIR, stem):
            return []
        return [Version(when, text) for when, text in kept_versions(self.root / HISTORY_DIR / stem, _VERSION_NAME)]

    # ----------------------------------------------------------------- revisions waiting for review

    def revision_path(self, entry_id: str) -> Path:
        return self.root / REVISIONS_DIR / f"{self.path_for(entry_id).stem}{ENTRY_SUFFIX}"

    def revision(self, entry_id: str) -> tuple[Entry, str] | None:
        """The edit of this entry waiting for review and its version hash, or None."""
        path = self.revision_path(entry_id)
        if not self._is_own_folder(REVISIONS_DIR) or path.is_symlink() or not path.is_file():
            return None
        entry, _, digest = self.load_file(path)
        return entry, digest

    def revision_base(self, entry_id: str) -> str | None:
        """The version of the published entry its pending revision was made from (None: not recorded)."""
        if not self._is_own_folder(REVISIONS_DIR):
            return None
        try:
            text = _read_regular(self.revision_path(entry_id)).decode("utf-8", errors="replace")
        except OSError:
            return None
        match = re.search(rf"^{re.escape(_BASE_NOTE)}([0-9a-f]{{64}})$", text, re.M)
        return match.group(1) if match else None

    def revisions(self) -> list[str]:
        """Ids of entries with an edit waiting for review."""
        if not self._is_own_folder(REVISIONS_DIR):
            return []
        folder = self.root / REVISIONS_DIR
        return sorted(p.stem for p in folder.glob(f"*{ENTRY_SUFFIX}") if is_valid_id(p.stem) and not p.is_symlink())

    def write_revision(self, entry: Entry, *, base: str | None, expected_version: str | None = None) -> str:
        """Keep an edit of a published entry for review, beside the published file, which stays as it is.

        `base` is the version of the published file the edit was made from (kept in the revision, so an
        approval can tell whether the entry changed since); `expected_version` is the revision's own hash
        when an existing revision is being edited again."""
        rendered = render_entry(entry)
        parse_entry(rendered, f"{entry.id}{ENTRY_SUFFIX}")
        text = rendered.replace("---\n", f"---\n{_BASE_NOTE}{base}\n", 1) if base else rendered
        path = self._own_folder(REVISIONS_DIR) / f"{self.path_for(entry.id).stem}{ENTRY_SUFFIX}"
        with self._lock():
            if expected_version is None:  # a new revision: never over one someone else has just proposed
                if path.exists() or path.is_symlink():
                    raise Conflict("someone else has just proposed an edit of this entry; reload it")
            else:
                self._check_version(path, expected_version)
            atomic_write(path, text)
        return content_hash(text)

    def drop_revision(self, entry_id: str, *, expected_version: str | None = None) -> None:
        path = self.revision_path(entry_id)
        if not self._is_own_folder(REVISIONS_DIR):
            return
        with self._lock():
            self._check_version(path, expected_version)
            path.unlink(missing_ok=True)

    def sweep(self) -> None:
        """Remove stale temporary files from the folder, its history and its revisions (never through a
        symbolic link)."""
        sweep_temporary(self.root)
        if self._is_own_folder(REVISIONS_DIR):
            sweep_temporary(self.root / REVISIONS_DIR)
        if self._is_own_folder(HISTORY_DIR):
            for folder in (self.root / HISTORY_DIR).iterdir():
                if folder.is_dir() and not folder.is_symlink():
                    sweep_temporary(folder)

    def _lock(self):
        """An advisory lock on the folder, held across a read-compare-write."""
        return file_lock(self.root / ".lock")


def _version_of(path: Path) -> str | None:
    try:
        return content_hash(_read_regular(path))
    except FileNotFoundError:
        return None
