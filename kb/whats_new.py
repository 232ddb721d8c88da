"""What is new for a person since a moment: entries first readable to them in the period, lighthouse
stage changes, evidence notes and lighthouses due for review, each matched to the follows and saved
searches (kb.following) that make it theirs, as they may see it.

    updates(kb, viewer, following.profile(user), since, until)   # newest first, as the viewer may see it

The one owner of "what is new": the digest (kb.digest), the Atom feeds (kb.api.feeds) and the
Following page all call it. An entry is new to someone when the first version of it they could read
was written in the period, so an entry published after review, or opened to their organisation, is new
then.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from kb import evidence, lifecycle
from kb.access import READABLE_STATUSES, owns_lighthouse, version_for
from kb.browse import SearchRequest, every_match, ranked
from kb.entries import Entry
from kb.entry_files import parse_entry
from kb.errors import EntryError, KBError, NotFound
from kb.following import LONG_AGO, Followed, Profile, Saved
from kb.identity import User

if TYPE_CHECKING:
    from kb.knowledge import KnowledgeBase

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Update:
    """One new thing for one person: a new entry, an evidence note, a lighthouse's new stage.

    `reasons` say in words why it reached them; `sources` name the follows and saved searches it matched
    (`follow:<id>`, `search:<id>`), so a feed of one of them keeps only its own."""

    kind: str  # "entry", "note" or "stage"
    entry_id: str
    title: str
    summary: str
    when: dt.datetime
    detail: str = ""  # a stage change ("pilot → proven"); a note's words
    reasons: tuple[str, ...] = ()
    sources: frozenset[str] = field(default_factory=frozenset)


KIND_WORDS = {
    "entry": "New entry",
    "note": "Evidence note",
    "stage": "Lighthouse stage",
    "review": "Lighthouse due for review",
}


@dataclass(frozen=True)
class Change:
    """A change found in the entry files, before it is matched with what a person follows."""

    kind: str
    entry_id: str
    when: dt.datetime
    detail: str = ""
    reason: str = ""  # why it reaches this person whatever they follow (a lighthouse due for review)


def _versions(kb: KnowledgeBase, entry_id: str) -> list[tuple[dt.datetime, Entry]]:
    """Every version of an entry that parses, oldest first, each with the time it was written: a version
    was written when the one before it was replaced (kb.store's history). The first version's time is
    its file's, but no later than the end of the day it says it was written: a file copied in (a
    checkout, a restored backup) is not new because its copy is."""
    path = kb.store.path_for(entry_id)
    history = kb.store.history(entry_id)  # newest first
    current_written = dt.datetime.fromtimestamp(path.stat().st_mtime, dt.UTC)
    texts = [(v.replaced, v.text) for v in reversed(history)]
    written: list[dt.datetime] = []
    for i in range(len(texts)):
        written.append(dt.datetime.fromisoformat(texts[i - 1][0]) if i else LONG_AGO)
    versions: list[tuple[dt.datetime, Entry]] = []
    for when, (_, text) in zip(written, texts, strict=True):
        try:
            old, _ = parse_entry(text, f"{entry_id} (earlier)")
        except EntryError:
            continue
        if when is LONG_AGO:
            when = min(_written_day_end(old), dt.datetime.fromisoformat(texts[0][0]))
        versions.append((when, old))
    current = kb.stored(entry_id)
    if history:
        current_written = max(current_written, dt.datetime.fromisoformat(history[0].replaced))
    else:
        current_written = min(current_written, _written_day_end(current))
    versions.append((current_written, current))
    return versions


def _written_day_end(entry: Entry) -> dt.datetime:
    """The latest moment of the day an entry says it was last written, in any time zone (the day's UTC
    midnight plus 38 hours: the day ends that late at UTC+14); far in the future when it does not say."""
    day = max(entry.updated, entry.created)[:10]
    try:
        return dt.datetime.fromisoformat(day).replace(tzinfo=dt.UTC) + dt.timedelta(days=1, hours=14)  # any zone
    except ValueError:
        return dt.datetime.max.replace(tzinfo=dt.UTC)


def _stage(entry: Entry | None) -> str | None:
    return entry.lighthouse.stage if entry is not None and entry.lighthouse is not None else None


def entry_changes(kb: KnowledgeBase, viewer: User | None, since: dt.datetime, until: dt.datetime) -> list[Change]:
    """New entries and lighthouse stage changes in [since, until) as this viewer may read them: a version
    counts only if they could read it (kb.access's rule for history) and it was published or archived."""
    changes: list[Change] = []
    try:
        paths = kb.store.files()
    except KBError:
        return []  # no entries folder: nothing is new
    for path in paths:
        try:
            if dt.datetime.fromtimestamp(path.stat().st_mtime, dt.UTC) < since:
                continue  # not written since: nothing in it is new
            entry_id = path.stem
            versions = _versions(kb, entry_id)
        except (KBError, OSError, ValueError):
            continue  # missing, hidden, malformed or unreadable: nothing to tell
        current = versions[-1][1]
        readable = [
            (when, v)
            for when, v in versions
            if when < until and v.status in READABLE_STATUSES and version_for(viewer, v, current) is not None
        ]
        if not readable:
            continue
        first_when, _ = readable[0]
        if first_when >= since:
            changes.append(Change("entry", entry_id, first_when))
            continue
        before = [v for when, v in readable if when < since][-1]
        now = readable[-1][1]
        if _stage(now) is not None and _stage(now) != _stage(before):
            changed = next(when for when, v in readable if when >= since and _stage(v) == _stage(now))
            was = _stage(before) or "not a lighthouse"
            changes.append(Change("stage", entry_id, changed, f"{was} → {_stage(now)}"))
    return changes


def note_changes(kb: KnowledgeBase, viewer: User | None, since: dt.datetime, until: dt.datetime) -> list[Change]:
    """Evidence notes added in [since, until) that this viewer may read, one change each (kind "note",
    the note's entry, who and what as the detail). The notes come as the viewer may see them
    (`kb.evidence.notes_since` applies kb/access.py): an anonymous note names nobody."""
    changes = []
    for note in evidence.notes_since(kb, since, viewer):
        if since <= note.when < until:
            who = f"{note.organisation}, {note.year}" if note.organisation else str(note.year)
            words = " ".join(note.text.split())
            detail = f"we hit this too ({who}): {words[:200]}{'…' if len(words) > 200 else ''}"
            changes.append(Change("note", note.entry_id, note.when, detail=detail))
    return changes


def review_changes(kb: KnowledgeBase, viewer: User | None, since: dt.datetime, until: dt.datetime) -> list[Change]:
    """Lighthouses due for review at the end of the period (kb.lifecycle), as kb.access says who hears of
    them: for a curator, every one they may see; for anyone else, the ones they own. Each is told once per period, for as long as it is due,
    and reaches them whatever they follow."""
    if viewer is None:
        return []
    changes = []
    for due in lifecycle.due_for(kb, viewer, today=until.date()):
        owner = owns_lighthouse(viewer, due.entry)
        detail = f"review by {due.review_by} has passed" if due.review_by else "it has no review-by date"
        reason = "you own this lighthouse" if owner else "you are a curator"
        changes.append(Change("review", due.entry.id, _due_since(due, until), detail, reason))
    return changes


def _due_since(due: lifecycle.Due, until: dt.datetime) -> dt.datetime:
    """When a lighthouse fell due: the day after its review-by date, or (without one) the day after it
    was last written; the same at every run, so a feed item keeps its id."""
    try:
        day = (
            lifecycle.last_day(due.review_by)
            if due.review_by
            else lifecycle.last_day(max(due.entry.updated, due.entry.created))
        )
    except ValueError:
        return until - dt.timedelta(microseconds=1)
    when = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), dt.UTC)
    return min(when, until - dt.timedelta(microseconds=1))


# Every kind of new thing a person may hear about: each a function of (kb, viewer, since, until).
COLLECTORS: tuple[Callable[..., list[Change]], ...] = (entry_changes, note_changes, review_changes)


def updates(
    kb: KnowledgeBase,
    viewer: User,
    profile: Profile,
    since: dt.datetime,
    until: dt.datetime,
    *,
    only: Iterable[str] | None = None,
) -> list[Update]:
    """What is new for this person in [since, until) that matches what they follow or a search they saved,
    as they may see it, newest first. `only` keeps what matched these follows or searches (their keys)."""
    wanted = set(only) if only is not None else None
    follows = [f for f in profile.follows if wanted is None or f.key in wanted]
    searches = [s for s in profile.searches if wanted is None or s.key in wanted]
    if wanted is not None and not follows and not searches:
        return []
    # What reaches a person whatever they follow (a lighthouse of theirs due for review) is not in the
    # feed of one follow or search.
    changes = [
        c
        for collect in COLLECTORS
        if follows or searches or collect is review_changes
        for c in collect(kb, viewer, since, until)
        if wanted is None or not c.reason
    ]
    if not changes:
        return []
    found = {s.key: _search_ids(kb, s.request, viewer) for s in searches}
    out = []
    for change in changes:
        try:
            entry = kb.get(change.entry_id, viewer=viewer)  # as they may see it now: anonymous fields withheld
        except (KBError, OSError):
            continue
        reasons: tuple[str, ...]
        sources: frozenset[str]
        if change.reason:
            reasons, sources = (change.reason,), frozenset()
        else:
            reasons, sources = _matches(kb, entry, change, follows, searches, found)
        if reasons:
            out.append(
                Update(change.kind, entry.id, entry.title, entry.summary, change.when, change.detail, reasons, sources)
            )
    return sorted(out, key=lambda u: (u.when, u.entry_id), reverse=True)


def _search_ids(kb: KnowledgeBase, request: SearchRequest, viewer: User) -> set[str]:
    """The entries a saved search finds for this viewer: with words, its close matches (every hit where
    closeness is not judged); with filters only, every entry they allow."""
    try:
        if not request.query:
            return set(every_match(kb, request, viewer))
        return {h.id for h in ranked(kb, request, viewer) if h.close is not False}
    except KBError:
        log.warning("a saved search could not run", exc_info=True)
        return set()


def _matches(
    kb: KnowledgeBase,
    entry: Entry,
    change: Change,
    follows: list[Followed],
    searches: list[Saved],
    found: dict[str, set[str]],
) -> tuple[tuple[str, ...], frozenset[str]]:
    reasons: list[str] = []
    sources: set[str] = set()
    for f in follows:
        if (
            (f.kind == "theme" and f.value in entry.themes)
            or (f.kind == "organisation" and f.value in (entry.organisation, *entry.partners))
            or (f.kind == "lighthouse" and f.value == entry.id)
        ):
            shown = kb.vocabulary.label(f.value) if f.kind == "theme" else f.value
            reasons.append(
                f"you follow the {f.kind} {shown}" if f.kind != "lighthouse" else "you follow this lighthouse"
            )
            sources.add(f.key)
    for s in searches:
        if entry.id in found.get(s.key, ()):
            reasons.append(f"your saved search {s.name}")
            sources.add(s.key)
    return tuple(reasons), frozenset(sources)


def followable(kb: KnowledgeBase, kind: str, value: str, viewer: User) -> str:
    """What a follow of this kind and value shows as: a theme's label, an organisation's name, a
    lighthouse's title (a lighthouse they may no longer see shows as its id, never its title)."""
    if kind == "theme":
        return kb.vocabulary.label(value)
    if kind == "lighthouse":
        try:
            return kb.get(value, viewer=viewer).title
        except (NotFound, KBError, OSError):
            return value
    return value
