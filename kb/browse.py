"""Browsing the collection: search requests, facet counts, newest entries, and entry lookups for the forms.

What the search page needs, as plain functions over a KnowledgeBase (no streamlit here):

    request = SearchRequest.from_params({"q": "DSA", "outcome": ["failed", "stopped"]})
    results = find(kb, request, user)      # hits, facet counts, newest entries

Facet counts, the showcase, the review queue and the charts (kb.showcase, kb.review, kb.insights) read the
index's entry metadata from the mirror's snapshot, taken again whenever the index changes (its own writes,
or another process's, seen at the next read).
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from kb.access import ANONYMOUS, reviews, sees, visible_where
from kb.analysis import words
from kb.entries import Entry
from kb.errors import KBError
from kb.filters import FACETS, Facet, Filters, predicate
from kb.plan import PlanResult, plan_search
from kb.relevance import close_similarity
from kb.search import Hit, parse_query
from kb.searchlog import search_log
from kb.vocabulary import vocabulary_signature

if TYPE_CHECKING:
    from kb.identity import User
    from kb.knowledge import KnowledgeBase

# Search modes as the app names them, and the library mode each one runs.
SEARCH_MODES = {"hybrid": "hybrid", "keyword": "bm25", "meaning": "dense", "plan": "hybrid"}
PLAN_MODE = "plan"  # the query is a project plan: each part is searched, failures first
MAX_QUERY_CHARS = 20_000  # room for a whole pasted project plan
PUBLISHED = ("published",)  # what readers browse: a filter's value, Filters.of(status=PUBLISHED)
FAILED = ("failed", "stopped")
PAGE_SIZE = 10  # results on one page of the search page
MAX_RESULTS = 60  # best matches a query lists, over several pages
NEWEST = 5  # newest entries on the empty search page
SUGGESTIONS = 5  # searches to try on the empty search page


def is_published(status: object) -> bool:
    """Whether an entry with this status (its file's, or its index record's) is published: the one test the
    data-source catalogue, the directory, the glossary and the theme suggestions count by, as a browse's default filter does."""
    return status in PUBLISHED


# --------------------------------------------------------------------------- rows


def rows(kb: KnowledgeBase, viewer: User | None = None) -> list[Any]:
    """Every indexed entry this viewer may see (id and facet metadata), from the mirror's snapshot (kept
    until the index changes, here or in another process). A viewer of None is the operator, who sees
    everything. The list is shared by every page: read-only."""
    if viewer is None:
        return kb.indexed_rows()

    def visible_rows() -> list[Any]:
        visible = sees(viewer)
        return [r for r in kb.indexed_rows() if visible(r.metadata)]

    return kb.view("rows", _reader(viewer), visible_rows)


def _reader(viewer: User | None) -> str:
    """A reader as the snapshot's caches tell readers apart: by what they may see, so two people with the
    same access share their counts."""
    return json.dumps(visible_where(viewer), sort_keys=True)


def _view_key(filters: Filters, viewer: User | None) -> str:
    return f"{_reader(viewer)}|{filters!r}"


# --------------------------------------------------------------------------- search requests


@dataclass(frozen=True)
class SearchRequest:
    """What the search page shows: the query, the mode and the facets chosen (no status chosen means
    published entries only). Lives in the URL."""

    query: str = ""
    mode: str = "hybrid"
    facets: Filters = Filters()
    page: int = 1  # from 1; any other change starts again at the first
    exact: bool = False  # the query's own words only: no other names of the themes it names

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> SearchRequest:
        """From URL query parameters; unknown values are dropped rather than failing the page."""
        query = " ".join(str(v) for v in _listed(params.get("q")))[:MAX_QUERY_CHARS]
        mode = ([str(m).strip().lower() for m in _listed(params.get("mode"))] or ["hybrid"])[-1]
        return cls(
            query=query.strip(),
            mode=mode if mode in SEARCH_MODES else "hybrid",
            facets=Filters.from_params(params),
            page=_page_number(params.get("page")),
            exact=str((_listed(params.get("exact")) or [""])[-1]).strip().lower() in ("1", "true", "yes"),
        )

    def to_params(self) -> dict[str, str | list[str]]:
        """URL query parameters, leaving out everything at its default so links stay short."""
        params: dict[str, str | list[str]] = {}
        if self.query:
            params["q"] = self.query
        if self.mode != "hybrid":
            params["mode"] = self.mode
        params |= self.facets.to_params()
        if self.exact:
            params["exact"] = "1"
        if self.page > 1:
            params["page"] = str(self.page)
        return params

    def filters(self) -> Filters:
        """The filters a search runs with: the facets chosen, published entries unless a status is."""
        return self.facets if self.facets.status else replace(self.facets, status=PUBLISHED)

    @property
    def has_filters(self) -> bool:
        return self.facets.active

    def clear_filters(self) -> SearchRequest:
        return SearchRequest(query=self.query, mode=self.mode, exact=self.exact)

    def for_user(self, user: User | None) -> SearchRequest:
        """Only reviewers may look beyond published entries (drafts, entries in review)."""
        if reviews(user):
            return self
        return replace(self, facets=self.facets.without("status"))


def _page_number(value: Any) -> int:
    """A page number from the URL: a whole number from 1 (anything else is the first page)."""
    text = str((_listed(value) or ["1"])[-1]).strip()
    return max(1, min(int(text), 10_000)) if text.isdigit() else 1


def _listed(value: Any) -> list[Any]:
    return [] if value is None else [value] if isinstance(value, str) else list(value)


@dataclass
class SearchResults:
    """Everything the search page renders for one request: one page of what matched, and how many did."""

    request: SearchRequest
    hits: list[Hit] = field(default_factory=list)  # this page's hits (in plan mode: every part's lessons)
    facets: dict[str, list[tuple[Any, int]]] = field(default_factory=dict)
    in_scope: int = 0  # entries the filters allow
    total: int = 0  # what the query or the filters matched, over every page
    close: int | None = None  # of a query's hits, how many are close matches (kb.relevance); None: not judged
    suggestion: str | None = None  # the query with misspelt words corrected, where that finds more
    other_names: list[str] = field(default_factory=list)  # of the themes the query names: searched unless exact
    page: int = 1  # the page shown, within 1..pages
    unfiltered: int | None = None  # on zero results: hits for the same query without the facet filters
    newest: list[Entry] = field(default_factory=list)  # without a query: this page of entries, newest first
    suggestions: list[str] = field(default_factory=list)  # on the empty page: searches to try, from the collection
    plan: PlanResult | None = None  # in plan mode: each part of the plan with its own lessons
    seconds: float = 0.0

    @property
    def pages(self) -> int:
        return page_count(self.total)


def find(
    kb: KnowledgeBase, request: SearchRequest, user: User | None = None, *, visit: str | None = None
) -> SearchResults:
    """Run one search page request: one page of hits for the query (or of the entries the filters allow,
    newest first; without either, the newest few), the counts behind them, and the facet counts. A query's
    first page is counted in the search log (`visit`: an opaque key of the browser session, so that its
    reruns count once)."""
    started = time.perf_counter()
    request = request.for_user(user)
    filters = _read_themes(kb, request.filters())
    results = SearchResults(request, facets=facet_counts(kb, filters, viewer=user))
    results.in_scope = count_in_scope(kb, filters, user)
    if request.query and request.mode == PLAN_MODE:
        results.plan = plan_search(kb, request.query, filters=filters, viewer=user)
        results.hits = results.plan.hits
        results.total = len(results.hits)
    elif request.query:
        mode = SEARCH_MODES[request.mode]
        expand = not request.exact
        every = _ranked(kb, request, filters, user, record=True, visit=visit)
        if mode != "dense":  # the keyword side looks for the other names of the themes the query names
            results.other_names = kb.vocabulary.expand(parse_query(request.query).text)
        if every and all(h.close is not None for h in every):
            results.close = sum(1 for h in every if h.close)
        results.suggestion = _better_spelling(kb, request.query, filters, user)
        results.total, results.page = len(every), _within(request.page, len(every))
        results.hits = every[(results.page - 1) * PAGE_SIZE : results.page * PAGE_SIZE]
        if not every and request.has_filters:
            wider = request.clear_filters().for_user(user)
            results.unfiltered = len(
                kb.search(
                    request.query, limit=MAX_RESULTS, filters=wider.filters(), mode=mode, expand=expand, viewer=user
                )
            )
    elif request.has_filters:
        results.total, results.page = results.in_scope, _within(request.page, results.in_scope)
        results.newest = newest(kb, limit=PAGE_SIZE, skip=(results.page - 1) * PAGE_SIZE, filters=filters, viewer=user)
    else:
        results.newest = newest(kb, limit=NEWEST, filters=filters, viewer=user)
        results.suggestions = suggested_searches(results.facets, kb.vocabulary.label)
    results.seconds = time.perf_counter() - started
    return results


def _read_themes(kb: KnowledgeBase, filters: Filters) -> Filters:
    """The filters with their themes read through the vocabulary as it is now (kb.vocabulary.widen)."""
    return replace(filters, theme=kb.vocabulary.widen(filters.theme)) if filters.theme else filters


def every_match(kb: KnowledgeBase, request: SearchRequest, user: User | None = None) -> list[str]:
    """The ids of every entry the request lists, over all its pages and in the order shown (without a
    query or filters: every published entry in scope, newest first): what a download of it holds. Not a
    new search: the search log does not count it."""
    if not request.query:
        filters = _read_themes(kb, request.for_user(user).filters())
        return list(newest_ids(kb, filters=filters, viewer=user))  # a copy: kept
    return list(dict.fromkeys(h.id for h in ranked(kb, request, user)))


def download(
    kb: KnowledgeBase,
    entry_ids: Iterable[str] | None,
    fmt: str,
    viewer: User | None = None,
    *,
    visit: str | None = None,
) -> bytes:
    """These entries (None: every entry the viewer may see) as a CSV, Excel or JSONL file (`kb.exporter`),
    in this order and as the viewer may see them: hidden ones left out, withheld fields blank and named in the `withheld` column, cells that a
    spreadsheet would run as formulas neutralised. The entries of a search's or a filter's list (not the
    whole collection) are counted as reused in the search log."""
    from kb.exporter import export_bytes

    shown, _ = kb.readable(viewer, entry_ids)
    if entry_ids is not None:
        activity = search_log(kb.settings)
        for s in shown:
            activity.record_entry(s.entry.id, reused=True, visit=visit)
    return export_bytes([s.entry for s in shown], fmt, withheld={s.entry.id: s.withheld for s in shown})


def ranked(kb: KnowledgeBase, request: SearchRequest, user: User | None = None, *, record: bool = False) -> list[Hit]:
    """A query's hits over every page, in the order the search page lists them (in plan mode: every
    part's lessons), under the request's rules for this user: what the API pages through. The first page
    of a search (not a plan) is counted in the search log when `record` says a person asked it (the API's
    search), never for the library's own uses (downloads, saved searches run for digests and feeds)."""
    request = request.for_user(user)
    filters = _read_themes(kb, request.filters())
    if request.mode == PLAN_MODE:
        return plan_search(kb, request.query, filters=filters, viewer=user).hits
    return _ranked(kb, request, filters, user, record=record)


def _ranked(
    kb: KnowledgeBase,
    request: SearchRequest,
    filters: Filters,
    user: User | None,
    *,
    record: bool = False,
    visit: str | None = None,
) -> list[Hit]:
    """A query's hits, up to MAX_RESULTS: close matches first, then the loosely related. With record, a
    first page is counted in the search log: this is the one place a person's search is counted (the
    app's own searches, such as similar entries or the duplicate check, do not come here)."""
    every = kb.search(
        request.query,
        limit=MAX_RESULTS,
        filters=filters,
        mode=SEARCH_MODES[request.mode],
        expand=not request.exact,
        viewer=user,
    )
    if every and all(h.close is not None for h in every):
        every = [h for h in every if h.close] + [h for h in every if not h.close]
    if record and request.page == 1 and (log := search_log(kb.settings)).counting():
        # Counted as anyone would have seen it: the curators who read the counts may not see what this
        # searcher saw, and a count or a close match must not tell them that a hidden entry exists.
        public = kb.view(
            "public-entries", "", lambda: frozenset(e.entry_id for e in kb.indexed_entries(visible_where(ANONYMOUS)))
        )
        shared = [h for h in every if h.id in public]
        log.record_search(request.query, request.mode, shared, visit=visit)
    return every


def suggested_searches(
    facets: dict[str, list[tuple[Any, int]]], label: Callable[[str], str], limit: int = SUGGESTIONS
) -> list[str]:
    """What to try, taken from the collection itself: its most used themes (by their labels), then its
    most used tags, each once whatever its case; none where it has neither."""
    themes = [label(theme) for theme, _ in facets.get("theme", [])[:3]]
    tags = [str(tag) for tag, _ in facets.get("tag", [])]
    chosen: dict[str, str] = {}
    for name in [*themes, *tags]:
        chosen.setdefault(name.casefold(), name)
        if len(chosen) == limit:
            break
    return list(chosen.values())


def _better_spelling(kb: KnowledgeBase, query: str, filters: Filters, user: User | None) -> str | None:
    """The query with its misspelt words corrected, offered only where it finds more than the query did.
    A word the collection does not use is not always a typo ("quantum basket weaving" is not "base
    leaving"), so: where the model judges closeness, the correction must find more close matches; where
    it does not, some passage this viewer may see must hold every corrected word. Either way the
    corrected words come from every passage indexed, so one is offered only where this viewer finds it."""
    suggestion = kb.did_you_mean(query)
    if suggestion is None:
        return None
    offered = sorted(set(words(suggestion)) - set(words(query)))
    together = " ".join(f'"{word}"' for word in offered)  # quoted: a passage must hold each of them
    if not kb.search(together, limit=1, filters=filters, mode="bm25", expand=False, viewer=user):
        return None
    if close_similarity(kb.embedder.name) is None:
        return suggestion
    before, after = (
        sum(1 for h in kb.search(text, limit=MAX_RESULTS, filters=filters, mode="dense", viewer=user) if h.close)
        for text in (query, suggestion)
    )
    return suggestion if after > before else None


def _within(page: int, total: int) -> int:
    """The page asked for, or the last one when it is past the end (a link kept after entries went)."""
    return min(page, page_count(total))


def page_count(total: int) -> int:
    """Pages of PAGE_SIZE that `total` results fill (one, even when there are none)."""
    return max(1, -(-total // PAGE_SIZE))


def count_in_scope(kb: KnowledgeBase, filters: Filters | None = None, viewer: User | None = None) -> int:
    """How many entries the viewer may see within the filters (published ones unless a status is
    chosen): the one count every page shows, the sidebar's "entries you can see" included."""
    filters = filters or Filters.of(status=PUBLISHED)
    where = filters.where()

    def count() -> int:
        chosen = predicate(where)
        return sum(1 for r in rows(kb, viewer) if chosen(r.metadata))

    return kb.view("in_scope", _view_key(filters, viewer), count)


# --------------------------------------------------------------------------- facets


def _facet_values(meta: Mapping[str, Any], facet: Facet) -> list[Any]:
    value = meta.get(facet.field)
    if facet.kind == "flag":
        return [bool(value)]
    if isinstance(value, list):
        return list(value)
    return [] if value in (None, "") else [value]


def facet_counts(
    kb: KnowledgeBase, filters: Filters | None = None, *, viewer: User | None = None
) -> dict[str, list[tuple[Any, int]]]:
    """(value, entries) for every facet, most entries first (years newest first).

    Each facet is counted with every other filter applied but not its own, so choosing one theme
    still shows how many entries each other theme would add. Counted once per reader and filters on the
    mirror's snapshot, so the next page with the same ones (a search, paging, Back) reuses them until
    the index changes.
    """
    filters = filters or Filters.of(status=PUBLISHED)
    # Themes are counted as the vocabulary reads them now, so the key holds the vocabulary file's signature.
    key = f"{_view_key(filters, viewer)}|{vocabulary_signature(kb.settings.entries_dir)}"
    counted = kb.view("facets", key, lambda: _facet_counts(kb, filters, viewer))
    out = {name: list(counts) for name, counts in counted.items()}  # the caller's own lists
    # Read from the vocabulary as it is now (a curator may have just changed it): a retired theme, or one
    # merged into another, is not offered, though entries still tagged with it are counted under it.
    offers = kb.vocabulary.offers
    if "theme" in out:
        out["theme"] = [(value, n) for value, n in out["theme"] if offers(str(value))]
    return out


def _facet_counts(kb: KnowledgeBase, filters: Filters, viewer: User | None) -> dict[str, list[tuple[Any, int]]]:
    data = rows(kb, viewer)
    counts_under = kb.vocabulary.counts_under
    out: dict[str, list[tuple[Any, int]]] = {}
    for facet in FACETS:
        relaxed = predicate(filters.without(facet.name).where())
        counts: Counter[Any] = Counter()
        for row in data:
            if relaxed(row.metadata):
                values = _facet_values(row.metadata, facet)
                if facet.name == "theme":  # a merged theme's entries count under the theme it went into
                    values = list(dict.fromkeys(counts_under(str(v)) for v in values))
                counts.update(values)
        if facet.kind == "range":
            out[facet.name] = sorted(counts.items(), key=lambda kv: -kv[0])
        else:
            out[facet.name] = sorted(counts.items(), key=lambda kv: (-kv[1], str(kv[0])))
    return out


# --------------------------------------------------------------------------- entries by date


def load_entries(kb: KnowledgeBase, ids: Iterable[str], viewer: User | None = None) -> list[Entry]:
    """The entries with these ids as the viewer sees them, skipping any hidden, vanished or broken."""
    entries = []
    for entry_id in ids:
        try:
            entries.append(kb.get(entry_id, viewer=viewer))
        except KBError:
            continue
    return entries


def newest(
    kb: KnowledgeBase,
    *,
    limit: int = NEWEST,
    skip: int = 0,
    filters: Filters | None = None,
    viewer: User | None = None,
) -> list[Entry]:
    """The most recently written or updated entries within the filters (published ones by default),
    after the first `skip` of them."""
    return load_entries(kb, newest_ids(kb, filters=filters, viewer=viewer)[skip : skip + limit], viewer)


def newest_ids(kb: KnowledgeBase, *, filters: Filters | None = None, viewer: User | None = None) -> list[str]:
    """Every entry the viewer may see within the filters (published ones by default), newest first: kept
    on the index's snapshot per reader and filters (do not change the list)."""
    filters = filters or Filters.of(status=PUBLISHED)
    allowed = predicate(filters.where())

    def ranked() -> list[str]:
        chosen = [r for r in rows(kb, viewer) if allowed(r.metadata)]
        chosen.sort(key=lambda r: (str(r.metadata.get("written", "")), r.entry_id), reverse=True)
        return [r.entry_id for r in chosen]

    return kb.view("newest", _view_key(filters, viewer), ranked)


# --------------------------------------------------------------------------- lookups


def titles(kb: KnowledgeBase, entry_ids: Sequence[str], viewer: User | None = None) -> list[tuple[str, str, str]]:
    """(id, title, outcome) of the indexed entries among these ids that the viewer may see, in order."""
    meta = kb.index.metadata_of(list(entry_ids)) if entry_ids else {}
    visible = sees(viewer)
    return [
        (i, str(meta[i].get("title", i)), str(meta[i].get("outcome", "")))
        for i in entry_ids
        if i in meta and visible(meta[i])
    ]


def entry_choices(kb: KnowledgeBase, viewer: User | None = None) -> dict[str, str]:
    """Every entry the viewer may see, id and title, by title: the options for "related" and "reused by"."""
    pairs = ((r.entry_id, str(r.metadata.get("title", r.entry_id))) for r in rows(kb, viewer))
    return dict(sorted(pairs, key=lambda p: p[1].lower()))


def known_organisations(kb: KnowledgeBase, viewer: User | None = None) -> list[str]:
    """Every organisation named in what the viewer may see, as lead or partner, alphabetically."""
    names = set()
    for r in rows(kb, viewer):
        names.add(str(r.metadata.get("organisation", "")))
        names.update(str(p) for p in r.metadata.get("partners") or ())
    return sorted(n for n in names if n)
