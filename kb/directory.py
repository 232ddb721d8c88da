"""Whom to ask: the people and teams behind the entries, the teams elsewhere who worked on the same themes,
and one page per organisation.

    teams = directory(kb, viewer)                    # every team (or contact) with its work
    teams = directory(kb, viewer, query="dsa")       # those whose name, organisation or themes match
    others = others_on_this(kb, "some-entry", viewer) # teams from other organisations on the same themes
    page = organisation(kb, "Home Affairs Department", viewer)

Everything is built from the published entries the viewer may see, as they may see them (kb.access). An
anonymous entry never adds its team or contact, whoever asks (`access.listed_as_whom_to_ask`): it adds
nothing to the directory at all, not even a count, though it is still one of its organisation's entries. An
entry hidden from the viewer answers exactly as a missing one. No streamlit here.

Which work is which: an entry whose outcome is failed or stopped is a *failed experiment* (whatever its
kind: a project that was stopped is a lesson of the same sort); every other entry is a *project*.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from kb.access import can_see, entry_meta, listed_as_whom_to_ask, organisation_key, present
from kb.browse import FAILED, _reader, is_published, rows
from kb.entries import Entry
from kb.errors import KBError, NotFound

if TYPE_CHECKING:
    from kb.identity import User
    from kb.knowledge import KnowledgeBase

OTHERS = 5  # teams shown under "Others who have worked on this"


@dataclass(frozen=True)
class Work:
    """One entry as the directory lists it under its team."""

    entry_id: str
    title: str
    kind: str
    outcome: str
    organisation: str
    started: str = ""
    ended: str = ""
    year: int | None = None
    themes: tuple[str, ...] = ()
    anonymous: bool = False  # shared anonymously: listed under its organisation, never under a team

    @property
    def failed(self) -> bool:
        """A failed experiment: the outcome is failed or stopped."""
        return self.outcome in FAILED

    @property
    def when(self) -> str:
        """When it was: "2021-03 to 2022-01", "since 2023-05", "until 2020", or the year; "" if unknown."""
        if self.started and self.ended:
            return f"{self.started} to {self.ended}" if self.started != self.ended else self.started
        if self.started:
            return f"since {self.started}" if self.outcome == "ongoing" else self.started
        if self.ended:
            return f"until {self.ended}"
        return str(self.year) if self.year else ""

    @property
    def latest(self) -> str:
        """The latest date it names, for ordering newest first."""
        return max(self.ended, self.started, str(self.year or ""))


@dataclass(frozen=True)
class Team:
    """A team (or, where an entry names no team, its contact) with its organisation and its work."""

    organisation: str
    name: str
    contacts: tuple[str, ...] = ()
    themes: tuple[str, ...] = ()  # most of its entries first
    projects: tuple[Work, ...] = ()  # newest first
    failed: tuple[Work, ...] = ()  # failed experiments: failed or stopped, newest first

    @property
    def works(self) -> tuple[Work, ...]:
        return _newest([*self.projects, *self.failed])

    @property
    def latest(self) -> str:
        return max((w.latest for w in self.works), default="")


@dataclass(frozen=True)
class Neighbour:
    """A team from another organisation that worked on the same themes as an entry, and the entries that
    connect them."""

    team: Team
    shared_themes: tuple[str, ...]
    works: tuple[Work, ...]  # its entries that share a theme with the entry, newest first


@dataclass(frozen=True)
class Partner:
    """An organisation another one worked with, and how: its partners on an entry (either way) and reuse
    (either way)."""

    name: str
    partnered: tuple[Work, ...] = ()  # entries the two shared, led by either of them
    reused: tuple[Work, ...] = ()  # the other's lighthouses this organisation reused
    reused_by: tuple[Work, ...] = ()  # this organisation's lighthouses the other reused


@dataclass(frozen=True)
class Reuse:
    """A lighthouse and the entry that reused it."""

    lighthouse: Work
    by: Work


@dataclass(frozen=True)
class OrganisationPage:
    """One organisation as a viewer may see it."""

    name: str
    entries: tuple[Work, ...]  # that it led, newest first
    partnered: tuple[Work, ...]  # other organisations' entries that list it as a partner
    lighthouses: tuple[Work, ...]  # its entries that are lighthouse projects
    teams: tuple[Team, ...]
    worked_with: tuple[Partner, ...]  # most shared work first
    reused: tuple[Reuse, ...]  # lighthouses (of any organisation) that its entries reused
    reused_by: tuple[Reuse, ...]  # its lighthouses that others' entries reused


# --------------------------------------------------------------------------- what the viewer may see


def _newest(works: Iterable[Work]) -> tuple[Work, ...]:
    """Newest first (by the latest date each names), then by title."""
    by_title = sorted(works, key=lambda w: w.title.casefold())
    return tuple(sorted(by_title, key=lambda w: w.latest, reverse=True))


def _stored_published(kb: KnowledgeBase) -> dict[str, Entry]:
    """Every indexed published entry, whole, read once per snapshot of the index (read-only)."""

    def load() -> dict[str, Entry]:
        found = {}
        for row in kb.indexed_rows():
            if not is_published(row.metadata.get("status")):
                continue
            try:
                found[row.entry_id] = kb.stored(row.entry_id)
            except KBError:
                continue  # unreadable: the operator's `check` says why; readers never see it
        return found

    return kb.view("directory-entries", "", load)


def visible_entries(kb: KnowledgeBase, viewer: User | None = None) -> list[Entry]:
    """The published entries the viewer may see (by the index and by the file as read for its snapshot), as
    they may see them: anonymous names withheld from readers, links to entries they may not see left out.
    Kept on the index's snapshot per reader (what they may see decides what is withheld too): shared, so
    read-only."""

    def compute() -> list[Entry]:
        stored = _stored_published(kb)
        ids = [
            r.entry_id
            for r in rows(kb, viewer)
            if r.entry_id in stored
            and is_published(stored[r.entry_id].status)  # the file, as well as the index, says so
            and can_see(viewer, r.metadata)
            and can_see(viewer, entry_meta(stored[r.entry_id]))
        ]
        visible = set(ids)
        return [present(stored[i], viewer, visible.__contains__).entry for i in ids]

    return kb.view("directory-visible", _reader(viewer), compute)


def _work(entry: Entry) -> Work:
    return Work(
        entry_id=entry.id,
        title=entry.title,
        kind=entry.kind,
        outcome=entry.outcome,
        organisation=entry.organisation,
        started=entry.started,
        ended=entry.ended,
        year=entry.year,
        themes=tuple(entry.themes),
        anonymous=entry.anonymous,
    )


def _team_name(entry: Entry) -> str:
    return " ".join((entry.team or entry.contact).split())


def _teams(entries: Iterable[Entry]) -> list[Team]:
    grouped: dict[tuple[str, str], list[Entry]] = {}
    names: dict[tuple[str, str], tuple[str, str]] = {}
    for entry in entries:
        name = _team_name(entry)
        if not name or not entry.organisation.strip() or not listed_as_whom_to_ask(entry):
            continue  # names nobody, or asked not to be named: adds nothing here, not even a count
        organisation = " ".join(entry.organisation.split())
        key = (organisation_key(organisation), name.casefold())
        names.setdefault(key, (organisation, name))
        grouped.setdefault(key, []).append(entry)
    teams = []
    for key, members in grouped.items():
        themes: Counter[str] = Counter(t for e in members for t in dict.fromkeys(e.themes))
        works = _newest(_work(e) for e in members)
        contacts = dict.fromkeys(" ".join(e.contact.split()) for e in members if e.contact.strip())
        organisation, name = names[key]
        teams.append(
            Team(
                organisation=organisation,
                name=name,
                contacts=tuple(c for c in contacts if c.casefold() != name.casefold()),
                themes=tuple(t for t, _ in sorted(themes.items(), key=lambda kv: (-kv[1], kv[0]))),
                projects=tuple(w for w in works if not w.failed),
                failed=tuple(w for w in works if w.failed),
            )
        )
    return sorted(teams, key=lambda t: (t.organisation.casefold(), t.name.casefold()))


# --------------------------------------------------------------------------- the directory


def directory(
    kb: KnowledgeBase, viewer: User | None = None, *, query: str = "", label: Callable[[str], str] | None = None
) -> list[Team]:
    """Every team (or contact, where an entry names no team) in the entries the viewer may see, by
    organisation then name; with a query, those that match every word of it (`matches`)."""
    teams = _teams(visible_entries(kb, viewer))
    label = label or kb.vocabulary.label
    return [t for t in teams if matches(t, query, label)] if query.strip() else teams


def matches(team: Team, query: str, label: Callable[[str], str] = str) -> bool:
    """Whether every word of the query is found (ignoring case) in the team's name, contacts,
    organisation, or one of its themes (id or label)."""
    text = " ".join(
        [team.name, team.organisation, *team.contacts, *team.themes, *(label(t) for t in team.themes)]
    ).casefold()
    return all(word in text for word in query.casefold().split())


def by_organisation(teams: Iterable[Team]) -> dict[str, list[Team]]:
    """The teams grouped under their organisation, in the order given."""
    grouped: dict[str, list[Team]] = {}
    for team in teams:
        grouped.setdefault(team.organisation, []).append(team)
    return grouped


# --------------------------------------------------------------------------- others who have worked on this


def others_on_this(
    kb: KnowledgeBase, entry_id: str, viewer: User | None = None, *, limit: int = OTHERS
) -> list[Neighbour]:
    """Teams from other organisations with entries (that the viewer may see) sharing a theme with this
    one: most shared themes first, then the most recent work. A hidden entry raises the NotFound of a
    missing one."""
    entry = kb.get(entry_id, viewer=viewer)
    themes = set(entry.themes)
    if not themes:
        return []
    own = organisation_key(entry.organisation)
    found = []
    for team in _teams(e for e in visible_entries(kb, viewer) if e.id != entry.id):
        if organisation_key(team.organisation) == own:
            continue
        works = tuple(w for w in team.works if themes & set(w.themes))
        if not works:
            continue
        shared = tuple(t for t in entry.themes if any(t in w.themes for w in works))
        found.append(Neighbour(team, shared, works))
    found.sort(key=lambda n: (n.team.organisation.casefold(), n.team.name.casefold()))
    found.sort(key=lambda n: (len(n.shared_themes), n.works[0].latest), reverse=True)
    return found[:limit]


# --------------------------------------------------------------------------- organisations


@dataclass
class _Links:
    """What one organisation shares with another, by entry id, while a page is put together."""

    name: str
    partnered: dict[str, Work] = field(default_factory=dict)
    reused: dict[str, Work] = field(default_factory=dict)
    reused_by: dict[str, Work] = field(default_factory=dict)


def organisation(kb: KnowledgeBase, name: str, viewer: User | None = None) -> OrganisationPage:
    """One organisation's entries, lighthouses, teams, the organisations it worked with and what it reused,
    over what the viewer may see. An organisation named in none of that raises NotFound, in the same words
    whether it does not exist or all its entries are hidden."""
    wanted = " ".join(str(name).split())
    if not wanted:
        raise KBError("give an organisation's name")
    key = organisation_key(wanted)
    entries = visible_entries(kb, viewer)

    def same(other: str) -> bool:
        return organisation_key(other) == key

    led = [e for e in entries if same(e.organisation)]
    partnered = [e for e in entries if not same(e.organisation) and any(same(p) for p in e.partners)]
    if not led and not partnered:
        raise NotFound(f"no organisation called '{wanted[:120]}' in the entries you can see")
    shown = " ".join((led[0].organisation if led else next(p for p in partnered[0].partners if same(p))).split())
    by_id = {e.id: e for e in entries}
    own_ids = {e.id for e in led}

    reused = [
        Reuse(_work(e), _work(by_id[i]))
        for e in entries
        if e.lighthouse is not None
        for i in e.lighthouse.reused_by
        if i in own_ids and i != e.id
    ]
    reused_by = [
        Reuse(_work(e), _work(by_id[i]))
        for e in led
        if e.lighthouse is not None
        for i in e.lighthouse.reused_by
        if i in by_id and i not in own_ids
    ]

    links: dict[str, _Links] = {}

    def link(other: str, how: str, work: Work) -> None:
        other = " ".join(other.split())
        if other and not same(other):
            getattr(links.setdefault(other.casefold(), _Links(other)), how).setdefault(work.entry_id, work)

    for e in led:
        for p in e.partners:
            link(p, "partnered", _work(e))
    for e in partnered:
        for other in (e.organisation, *e.partners):  # its lead, and any third organisation on it
            link(other, "partnered", _work(e))
    for r in reused:
        link(r.lighthouse.organisation, "reused", r.lighthouse)
    for r in reused_by:
        link(r.by.organisation, "reused_by", r.by)

    partners = [
        Partner(x.name, _newest(x.partnered.values()), _newest(x.reused.values()), _newest(x.reused_by.values()))
        for x in links.values()
    ]
    partners.sort(key=lambda p: (-(len(p.partnered) + len(p.reused) + len(p.reused_by)), p.name.casefold()))
    led_works = _newest(_work(e) for e in led)
    return OrganisationPage(
        name=shown,
        entries=led_works,
        partnered=_newest(_work(e) for e in partnered),
        lighthouses=tuple(w for w in led_works if by_id[w.entry_id].lighthouse is not None),
        teams=tuple(_teams(led)),
        worked_with=tuple(partners),
        reused=tuple(sorted(reused, key=lambda r: r.by.latest, reverse=True)),
        reused_by=tuple(sorted(reused_by, key=lambda r: r.by.latest, reverse=True)),
    )
