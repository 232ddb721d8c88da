"""Entries: one Markdown file per entry, YAML front matter for the fields, sections for the story.

The files are the source of truth. Every read and every write validates; a bad file is reported by
name, field and remedy, and never stops the good files from loading.
"""

from __future__ import annotations

import datetime as dt
import errno
import fcntl
import hashlib
import os
import re
import tempfile
import time
import unicodedata
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from kb.errors import Conflict, EntryError, KBError, NotFound, Problem
from kb.yamlfile import DuplicateKey, load_yaml

KINDS = ("project", "experiment")
OUTCOMES = ("succeeded", "partial", "failed", "stopped", "ongoing")
VISIBILITIES = ("public", "internal", "organisation")
STATUSES = ("draft", "in-review", "published", "archived")
EVIDENCE_GRADES = ("anecdote", "observed", "measured", "evaluated")
LIGHTHOUSE_STAGES = ("pilot", "proven", "replicated", "retired")
SECTIONS = (
    "Context",
    "What we did",
    "What happened",
    "What worked",
    "What didn't",
    "Lessons",
    "Recommendations",
    "Evidence and links",
)
REQUIRED = ("id", "title", "summary", "kind", "outcome", "organisation", "status", "visibility")

# Documented limits (README, "Entry format"). Generous enough for NASA's longest lesson (44k chars).
MAX_ID = 120
MAX_TITLE = 200
MAX_SUMMARY = 1_500
MAX_SHORT_FIELD = 200
MAX_LIST_ITEMS = 50
MAX_SECTION = 100_000
MAX_FILE_BYTES = 1_000_000

ENTRY_SUFFIX = ".md"
HISTORY_DIR = ".history"  # earlier versions of each entry, beside the entries (hidden names are not listed)
REVISIONS_DIR = ".revisions"  # edits of published entries waiting for review, one per entry
_ID_RE = re.compile(r"^[a-z0-9](?:[a-z0-9-]*[a-z0-9])?$")
_DATE_RE = re.compile(r"^\d{4}(-\d{2}(-\d{2})?)?$")
_FRONT_MATTER_RE = re.compile(r"\A---[ \t]*\r?\n(.*?)\r?\n---[ \t]*(?:\r?\n|\Z)(.*)\Z", re.S)
_SECTION_RE = re.compile(r"^##[ \t]+(.+?)[ \t]*#*[ \t]*$", re.M)


@dataclass
class Lighthouse:
    """What makes an entry a lighthouse project: its stage, impact and who reused it."""

    stage: str
    impact: str = ""
    benefits: list[str] = field(default_factory=list)
    reused_by: list[str] = field(default_factory=list)


@dataclass
class Entry:
    """One project or experiment write-up. Field meanings are in PRODUCT.md and the README."""

    id: str
    title: str
    summary: str
    kind: str
    outcome: str
    organisation: str
    status: str = "draft"
    visibility: str = "public"
    team: str = ""
    contact: str = ""
    anonymous: bool = False
    partners: list[str] = field(default_factory=list)
    themes: list[str] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)
    data_sources: list[str] = field(default_factory=list)
    started: str = ""
    ended: str = ""
    phase: str = ""
    evidence: str = ""
    lighthouse: Lighthouse | None = None
    created: str = ""
    updated: str = ""
    author: str = ""
    reviewer: str = ""
    review_comment: str = ""
    revised_by: str = ""  # who proposed an edit waiting for review (set on `.revisions/` files only)
    source: str = ""
    related: list[str] = field(default_factory=list)
    links: list[str] = field(default_factory=list)
    sections: dict[str, str] = field(default_factory=dict)

    @property
    def year(self) -> int | None:
        """The year the work started (or, failing that, was written up): the year facet."""
        for value in (self.started, self.created, self.ended):
            if value and value[:4].isdigit():
                return int(value[:4])
        return None

    @property
    def is_lighthouse(self) -> bool:
        return self.lighthouse is not None

    def text(self) -> str:
        """All the words of the entry: title, summary and every section, in order."""
        parts = [self.title, self.summary] + [f"{k}\n{v}" for k, v in self.sections.items()]
        return "\n\n".join(p for p in parts if p)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        if self.lighthouse is None:
            data["lighthouse"] = None
        return data


# --------------------------------------------------------------------------- ids


def slugify(text: str, max_length: int = 80) -> str:
    """A safe file-name slug: lowercase ASCII letters, digits and single hyphens, nothing else.

    No path separators, no dots (so no `..` and no hidden files) and never empty.
    """
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")
    slug = slug[:max_length].rstrip("-")
    return slug or "entry"


def is_valid_id(entry_id: str) -> bool:
    return bool(isinstance(entry_id, str) and len(entry_id) <= MAX_ID and _ID_RE.match(entry_id))


# --------------------------------------------------------------------------- parsing


class _Fields:
    """Reads typed fields out of front matter, collecting a Problem for each bad one."""

    def __init__(self, data: dict[str, Any], source: str):
        self.data = data
        self.source = source
        self.problems: list[Problem] = []

    def problem(self, name: str, message: str, severity: str = "error") -> None:
        self.problems.append(Problem(self.source, message, field=name, severity=severity))

    def text(self, name: str, limit: int = MAX_SHORT_FIELD, data: dict | None = None) -> str:
        value = (self.data if data is None else data).get(name)
        if value is None:
            return ""
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            self.problem(name, f"must be text, not {type(value).__name__}; write it as a plain value")
            return ""
        value = str(value).strip()
        if len(value) > limit:
            self.problem(name, f"is {len(value)} characters long; shorten it to at most {limit}")
        return value

    def choice(self, name: str, allowed: tuple[str, ...], default: str = "") -> str:
        value = self.text(name)
        if not value:
            return default
        if value.lower() not in allowed:
            self.problem(name, f"'{value}' is not allowed; use one of: {', '.join(allowed)}")
            return default
        return value.lower()

    def flag(self, name: str) -> bool:
        value = self.data.get(name, False)
        if value is None:
            return False
        if not isinstance(value, bool):
            if str(value).strip().lower() in ("yes", "true", "1"):
                return True
            if str(value).strip().lower() in ("no", "false", "0", ""):
                return False
            self.problem(name, f"must be true or false, not '{value}'")
            return False
        return value

    def items(self, name: str, data: dict | None = None) -> list[str]:
        value = (self.data if data is None else data).get(name)
        if value is None or value == "":
            return []
        if isinstance(value, str):
            value = [v for v in (part.strip() for part in value.split(",")) if v]
        if not isinstance(value, list):
            self.problem(name, "must be a list, e.g. [first, second]")
            return []
        out: list[str] = []
        for item in value:
            if isinstance(item, (dict, list)) or item is None:
                self.problem(name, "each item must be a plain value, not a nested list or mapping")
                continue
            text = str(item).strip()
            if len(text) > MAX_SHORT_FIELD * 5:
                self.problem(name, f"an item is {len(text)} characters; keep items under {MAX_SHORT_FIELD * 5}")
                continue
            if text and text not in out:
                out.append(text)
        if len(out) > MAX_LIST_ITEMS:
            self.problem(name, f"has {len(out)} items; keep it to at most {MAX_LIST_ITEMS}")
        return out

    def date(self, name: str) -> str:
        value = self.data.get(name)
        if value is None or value == "":
            return ""
        if isinstance(value, dt.datetime):
            value = value.date()
        if isinstance(value, dt.date):
            return value.isoformat()
        text = str(value).strip()
        if not _DATE_RE.match(text):
            self.problem(name, f"'{text}' is not a date; write YYYY, YYYY-MM or YYYY-MM-DD")
            return ""
        try:
            parts = [int(p) for p in text.split("-")]
            dt.date(parts[0], parts[1] if len(parts) > 1 else 1, parts[2] if len(parts) > 2 else 1)
        except ValueError:
            self.problem(name, f"'{text}' is not a real calendar date")
            return ""
        return text


def _split_sections(body: str, source: str, problems: list[Problem]) -> dict[str, str]:
    """`## Heading` blocks, in file order. Text before the first heading goes under Context."""
    sections: dict[str, str] = {}
    matches = list(_SECTION_RE.finditer(body))
    preamble = body[: matches[0].start()] if matches else body
    if preamble.strip():
        sections["Context"] = preamble.strip()
    for i, match in enumerate(matches):
        end = matches[i + 1].start() if i + 1 < len(matches) else len(body)
        name = match.group(1).strip()
        canonical = next((s for s in SECTIONS if s.lower() == name.lower()), name)
        text = body[match.end() : end].strip()
        if canonical in sections:
            sections[canonical] += "\n\n" + text
        else:
            sections[canonical] = text
    for name, text in sections.items():
        if len(text) > MAX_SECTION:
            problems.append(
                Problem(
                    source,
                    f"is {len(text)} characters; split it or shorten it to {MAX_SECTION}",
                    field=f"section '{name}'",
                )
            )
    return {name: text for name, text in sections.items() if text}


def entry_from_dict(
    data: dict[str, Any], source: str, sections: dict[str, str] | None = None, *, require_id: bool = True
) -> tuple[Entry, list[Problem]]:
    """Validate a mapping of fields into an Entry and its warnings, or raise EntryError listing every error.

    With require_id=False a missing id is left empty, for a new entry whose id is made from its title.
    """
    f = _Fields(data, source)
    for name in REQUIRED if require_id else [r for r in REQUIRED if r != "id"]:
        value = data.get(name)
        if value is None or (isinstance(value, str) and not value.strip()):
            f.problem(name, "is required but missing; add it to the front matter")

    entry_id = f.text("id", MAX_ID)
    if entry_id and not is_valid_id(entry_id):
        f.problem(
            "id",
            f"'{entry_id}' is not a safe id; use lowercase letters, digits and hyphens, e.g. '{slugify(entry_id)}'",
        )

    lighthouse = None
    raw_lh = data.get("lighthouse")
    if raw_lh not in (None, False, ""):
        if not isinstance(raw_lh, dict):
            f.problem("lighthouse", "must be a mapping with stage, impact, benefits and reused_by")
        else:
            stage = f.text("stage", data=raw_lh).lower()
            if stage not in LIGHTHOUSE_STAGES:
                f.problem("lighthouse.stage", f"'{stage}' is not a stage; use one of: {', '.join(LIGHTHOUSE_STAGES)}")
            lighthouse = Lighthouse(
                stage=stage,
                impact=f.text("impact", MAX_SUMMARY, data=raw_lh),
                benefits=f.items("benefits", data=raw_lh),
                reused_by=f.items("reused_by", data=raw_lh),
            )

    known = {fld for fld in Entry.__dataclass_fields__} - {"sections"}
    for name in data:
        if name not in known:
            f.problem(
                str(name),
                "is not a known field; check its spelling (see the README's entry format)",
                severity="warning",
            )

    entry = Entry(
        id=entry_id,
        title=" ".join(f.text("title", MAX_TITLE).split()),  # one line: passages use it as a heading
        summary=f.text("summary", MAX_SUMMARY),
        kind=f.choice("kind", KINDS),
        outcome=f.choice("outcome", OUTCOMES),
        organisation=f.text("organisation"),
        status=f.choice("status", STATUSES, "draft"),
        visibility=f.choice("visibility", VISIBILITIES, "public"),
        team=f.text("team"),
        contact=f.text("contact"),
        anonymous=f.flag("anonymous"),
        partners=f.items("partners"),
        themes=f.items("themes"),
        tags=f.items("tags"),
        data_sources=f.items("data_sources"),
        started=f.date("started"),
        ended=f.date("ended"),
        phase=f.text("phase"),
        evidence=f.choice("evidence", EVIDENCE_GRADES),
        lighthouse=lighthouse,
        created=f.date("created"),
        updated=f.date("updated"),
        author=f.text("author"),
        reviewer=f.text("reviewer"),
        review_comment=f.text("review_comment", MAX_SUMMARY),
        revised_by=f.text("revised_by"),
        source=f.text("source", MAX_SUMMARY),
        related=f.items("related"),
        links=f.items("links"),
        sections=sections or {},
    )
    if entry.started and entry.ended and entry.ended < entry.started:
        f.problem("ended", f"{entry.ended} is before started ({entry.started}); check both dates")
    if any(p.severity == "error" for p in f.problems):
        raise EntryError(f.problems)
    return entry, f.problems


def parse_entry(text: str, source: str = "<entry>", *, require_id: bool = True) -> tuple[Entry, list[Problem]]:
    """Parse one entry file's text. Returns the entry and its warnings; raises EntryError."""
    if "\x00" in text:
        raise EntryError([Problem(source, "is a binary file, not Markdown text; remove it or replace it")])
    if not text.strip():
        raise EntryError([Problem(source, "is empty; write front matter between '---' lines, then the sections")])
    match = _FRONT_MATTER_RE.match(text.lstrip("\ufeff"))
    if not match:
        raise EntryError([Problem(source, "has no front matter; start the file with '---', the fields, then '---'")])
    try:
        data = load_yaml(match.group(1))
    except DuplicateKey as exc:
        first, second = exc.first_line + 2, exc.problem_mark.line + 2  # the front matter starts on line 2
        message = f"front matter gives '{exc.key}' twice (lines {first} and {second}); keep one of them"
        raise EntryError([Problem(source, message, field=str(exc.key))]) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 2}" if mark else ""
        reason = getattr(exc, "problem", None) or "invalid YAML"
        raise EntryError([Problem(source, f"front matter is not valid YAML{where} ({reason}); fix it")]) from None
    except (ValueError, TypeError, OverflowError) as exc:  # e.g. 2021-13-01 fails inside YAML's date parsing
        raise EntryError(
            [
                Problem(
                    source,
                    f"front matter has a value YAML cannot read ({exc}); "
                    "write dates as YYYY-MM-DD and quote unusual values",
                )
            ]
        ) from None
    if not isinstance(data, dict):
        raise EntryError([Problem(source, "front matter must be 'field: value' lines")])
    problems: list[Problem] = []
    sections = _split_sections(match.group(2), source, problems)
    try:
        entry, warnings = entry_from_dict({str(k): v for k, v in data.items()}, source, sections, require_id=require_id)
    except EntryError as exc:
        raise EntryError(exc.problems + problems) from None
    if problems:
        raise EntryError(problems)
    return entry, warnings


_Dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


def render_entry(entry: Entry) -> str:
    """The file text of an entry: front matter with the fields set, then the sections in order."""
    data = entry.to_dict()
    sections = data.pop("sections")
    front = {k: v for k, v in data.items() if v not in ("", [], None, False) or k in REQUIRED}
    if entry.lighthouse is not None:
        front["lighthouse"] = {k: v for k, v in asdict(entry.lighthouse).items() if v not in ("", [])}
    header = yaml.dump(front, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=100)
    ordered = [s for s in SECTIONS if s in sections] + [s for s in sections if s not in SECTIONS]
    body = "".join(f"\n## {name}\n\n{sections[name].strip()}\n" for name in ordered)
    return f"---\n{header}---\n{body}"


def content_hash(text: str | bytes) -> str:
    data = text.encode("utf-8") if isinstance(text, str) else text
    return hashlib.sha256(data).hexdigest()


# --------------------------------------------------------------------------- the folder


TEMP_PREFIX, TEMP_SUFFIX = ".tmp-", ".tmp"  # never "*.md": a leftover is never read as an entry or a version
STALE_TEMP_SECONDS = 3600  # a temporary file untouched this long was left by a killed writer


@contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """An exclusive advisory lock (flock) on `path`, across processes and threads on this machine."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def atomic_write(path: Path, text: str, *, replace: bool = True) -> None:
    """Write via a temporary file in the same folder and a rename: a crash leaves old or new, never half.

    With replace=False the file appears complete or not at all, and never replaces an existing one
    (a hard link fails if the name is taken), so two writers racing for one new id cannot both win.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=TEMP_PREFIX, suffix=TEMP_SUFFIX)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as handle:
            handle.write(text)
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
        folder = self.root / HISTORY_DIR / stem
        sweep_temporary(folder)
        versions = []
        for path in sorted(folder.iterdir(), reverse=True):
            match = _VERSION_NAME.match(path.name)
            if not match or path.is_symlink() or not path.is_file():
                continue
            when = dt.datetime.strptime(match.group(1), "%Y%m%dT%H%M%S%fZ").replace(tzinfo=dt.UTC)
            try:
                text = _read_regular(path).decode("utf-8", errors="replace")
            except OSError:
                continue
            versions.append(Version(when.isoformat(timespec="seconds"), text))
        return versions

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
