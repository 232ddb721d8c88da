"""Wanted write-ups: what people searched for and found nothing close to, turned by a curator into a
request that the submit page shows, until someone writes it and a curator closes it.

They are curated knowledge needs, so they live in a file beside the entries, `entries/wanted.yaml`, and
travel with them in git:

    wanted:
      - id: ferry-passenger-data-sharing
        title: Ferry passenger data sharing
        query: ferry passenger data          # the search nobody found an answer to
        added: 2026-12-03
        closed: 2026-12-20                   # once it is written (optional)

A file that cannot be read is a list of problems with the line to fix, never a traceback (as for the
vocabulary); a missing file is an empty list.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field, replace
from pathlib import Path

import yaml

from kb.access import sees_what_people_look_for
from kb.entries import slugify
from kb.errors import Forbidden, KBError, NotFound, Problem
from kb.identity import User
from kb.store import SYMLINK_PROBLEM, atomic_write, file_lock
from kb.yamlfile import load_yaml

WANTED_FILE = "wanted.yaml"
MAX_TITLE = 200
HEADER = (
    "# Write-ups people are looking for: searches that found nothing close, turned into requests by a\n"
    "# curator (the Insights page's curators' tab). The submit page lists the open ones. docs/app.md\n"
)


@dataclass(frozen=True)
class Wanted:
    id: str
    title: str
    query: str = ""
    added: str = ""  # ISO date
    closed: str = ""  # ISO date; empty while it is still wanted

    @property
    def open(self) -> bool:
        return not self.closed


@dataclass
class WantedList:
    items: list[Wanted] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)

    @property
    def open(self) -> list[Wanted]:
        """The requests still wanted, newest first."""
        return sorted((w for w in self.items if w.open), key=lambda w: (w.added, w.id), reverse=True)

    def for_query(self, query: str) -> Wanted | None:
        """The open request made from this search, if there is one."""
        return next((w for w in self.open if w.query == query), None)


def load_wanted(entries_dir: Path | str) -> WantedList:
    """The wanted requests beside the entries, and every problem with the file."""
    path = Path(entries_dir) / WANTED_FILE
    if path.is_symlink():
        return WantedList(problems=[Problem(path.name, SYMLINK_PROBLEM)])
    if not path.is_file():
        return WantedList()
    try:
        data = load_yaml(path.read_text(encoding="utf-8")) or {}
    except UnicodeDecodeError:
        return WantedList(problems=[Problem(path.name, "is not UTF-8 text; save it as UTF-8")])
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        reason = getattr(exc, "problem", None) or "invalid YAML"
        return WantedList(problems=[Problem(path.name, f"is not valid YAML{where} ({reason}); fix it")])
    items = data.get("wanted", []) if isinstance(data, dict) else None
    if not isinstance(items, list):
        return WantedList(problems=[Problem(path.name, "must hold 'wanted:' followed by a list of requests")])
    wanted, problems, seen = [], [], set()
    for n, item in enumerate(items, start=1):
        if not isinstance(item, dict) or not str(item.get("title") or "").strip():
            problems.append(Problem(path.name, "each request needs a title", row=n))
            continue
        title = " ".join(str(item["title"]).split())[:MAX_TITLE]
        wanted_id = str(item.get("id") or slugify(title))
        if wanted_id in seen:
            problems.append(Problem(path.name, f"the id '{wanted_id}' is given twice; keep one of them", row=n))
            continue
        dates = {}
        for name in ("added", "closed"):
            value = item.get(name)
            if value in (None, ""):
                dates[name] = ""
            elif isinstance(value, dt.date) or _is_date(str(value)):
                dates[name] = str(value)[:10]
            else:
                problems.append(Problem(path.name, f"{name} must be a date such as 2026-12-03", field=name, row=n))
                dates[name] = ""
        seen.add(wanted_id)
        wanted.append(Wanted(wanted_id, title, " ".join(str(item.get("query") or "").split()), **dates))
    return WantedList(wanted, problems)


def _is_date(text: str) -> bool:
    try:
        dt.date.fromisoformat(text)
    except ValueError:
        return False
    return True


def add_wanted(entries_dir: Path | str, title: str, query: str, viewer: User | None) -> Wanted:
    """Add an open request (a curator's); the same search asked for again returns the request it has."""
    title = " ".join(title.split())[:MAX_TITLE]
    if not title:
        raise KBError("give the write-up that is wanted a title")

    def change(current: WantedList) -> tuple[list[Wanted], Wanted]:
        same = current.for_query(query) if query else None
        if same:
            return current.items, same
        ids = {w.id for w in current.items}
        base = slugify(title) or "wanted"
        wanted_id = next(i for n in range(1, len(ids) + 2) if (i := base if n == 1 else f"{base}-{n}") not in ids)
        made = Wanted(wanted_id, title, " ".join(query.split()), added=dt.datetime.now(dt.UTC).date().isoformat())
        return [*current.items, made], made

    return _change(entries_dir, viewer, change)


def close_wanted(entries_dir: Path | str, wanted_id: str, viewer: User | None) -> Wanted:
    """Mark a request written (a curator's): the submit page stops showing it; the file keeps it."""

    def change(current: WantedList) -> tuple[list[Wanted], Wanted]:
        found = next((w for w in current.items if w.id == wanted_id), None)
        if found is None:
            raise NotFound(f"there is no wanted request '{wanted_id}'")
        closed = found if found.closed else replace(found, closed=dt.datetime.now(dt.UTC).date().isoformat())
        return [closed if w.id == wanted_id else w for w in current.items], closed

    return _change(entries_dir, viewer, change)


def _change(entries_dir: Path | str, viewer: User | None, change) -> Wanted:
    if not sees_what_people_look_for(viewer):
        raise Forbidden("only curators may change the wanted requests")
    root = Path(entries_dir)
    with file_lock(root / ".lock"):  # the entry store's lock: one writer in the folder at a time
        current = load_wanted(root)
        if current.problems:
            raise KBError(f"{WANTED_FILE} has problems; fix them first: {current.problems[0]}")
        items, result = change(current)
        if items is not current.items:
            atomic_write(root / WANTED_FILE, render(items))
    return result


def render(items: list[Wanted]) -> str:
    rows = [
        {
            k: v
            for k, v in (("id", w.id), ("title", w.title), ("query", w.query), ("added", w.added), ("closed", w.closed))
            if v
        }
        for w in items
    ]
    return HEADER + yaml.safe_dump({"wanted": rows}, sort_keys=False, allow_unicode=True, width=100)
