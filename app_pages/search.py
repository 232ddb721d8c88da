"""Search (home): one box for a question or a pasted plan, facet filters with counts, result cards.

The query, mode and filters live in the URL, so a search can be shared and the back button works.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import streamlit as st

from app_pages import follow, resources, ui
from kb import browse
from kb.access import reviews
from kb.browse import SearchRequest
from kb.entries import slugify
from kb.filters import CHOICE_FACETS, Filters
from kb.plan import plan_summary

MODES = {"hybrid": "Hybrid", "keyword": "Keyword", "meaning": "Meaning", "plan": "Project plan"}
MODE_HELP = (
    "Hybrid mixes exact words and meaning (best for most searches). Keyword finds the exact words and "
    "acronyms. Meaning finds passages that say the same thing in other words. Project plan splits a "
    "pasted plan into its parts and finds prior lessons for each, failures first."
)
LIGHTHOUSE = {"any": None, "yes": True, "no": False}

kb = resources.knowledge_base()
user = resources.current_user()
vocabulary = kb.vocabulary


def url_request() -> SearchRequest:
    return SearchRequest.from_params({key: st.query_params.get_all(key) for key in st.query_params})


def show(request: SearchRequest) -> None:
    """Put the URL's request into the widgets: on first load, a shared link, Back, or a return from
    another page (which drops this page's widget state)."""
    st.session_state["search_q"] = request.query
    st.session_state["search_plan"] = request.query
    st.session_state["search_mode"] = request.mode
    facets = request.facets
    for facet in CHOICE_FACETS:
        st.session_state[f"facet_{facet.name}"] = list(getattr(facets, facet.name))
    st.session_state["facet_lighthouse"] = {None: "any", True: "yes", False: "no"}[facets.lighthouse]
    st.session_state["facet_year_from"] = facets.year_from
    st.session_state["facet_year_to"] = facets.year_to


def push(request: SearchRequest) -> None:
    """Make a request the page's state: into the URL, a new history entry."""
    st.query_params.from_dict(request.to_params())


def box(mode: str) -> str:
    """The key of the box the query is typed in: one line, or the plan's area."""
    return "search_plan" if mode == browse.PLAN_MODE else "search_q"


def from_widgets(*, typed_in: str | None = None, **changes: Any) -> SearchRequest:
    """The request the widgets say, the query read from the box of `typed_in` mode (default: the mode
    chosen now)."""
    state = st.session_state
    mode = state.get("search_mode") or "hybrid"
    typed = state.get(box(typed_in or mode))
    facets = Filters.of(
        **{facet.name: state.get(f"facet_{facet.name}") for facet in CHOICE_FACETS},
        year_from=state.get("facet_year_from"),
        year_to=state.get("facet_year_to"),
        lighthouse=LIGHTHOUSE[state.get("facet_lighthouse") or "any"],
    )
    request = SearchRequest(
        query=str(typed or "").strip()[: browse.MAX_QUERY_CHARS],
        mode=mode,
        facets=facets,
        exact=url_request().exact,  # a choice made beside the results, kept while the rest changes
    )
    return replace(request, **changes)


def on_change() -> None:
    push(from_widgets())


def on_mode_change() -> None:
    """A new mode takes the query along from the box that was on screen."""
    request = from_widgets(typed_in=url_request().mode)
    push(request)
    show(request)


def run_example(query: str) -> None:
    request = from_widgets(query=query)
    push(request)
    show(request)


def clear_filters() -> None:
    request = from_widgets().clear_filters()
    push(request)
    show(request)


def counted(counts: list[tuple[Any, int]], label=str):
    lookup = dict(counts)
    return lambda value: f"{label(value)} ({lookup.get(value, 0)})"


def facet_panel(request: SearchRequest, facets: dict[str, list[tuple[Any, int]]]) -> None:
    st.markdown("**Filter**")
    # Closed lists read as every page words them; open ones (organisations, themes, tags, teams) as written.
    labels = {"theme": vocabulary.label}
    for facet in CHOICE_FACETS:
        if facet.name == "status" and not reviews(user):
            continue  # only reviewers look beyond published entries
        counts = facets.get(facet.name, [])
        chosen = list(getattr(request.facets, facet.name))
        if not counts and not chosen:
            continue  # a facet the collection does not use (no tags, no teams) is not offered
        options = list(dict.fromkeys([v for v, _ in counts] + chosen))
        closed = facet.values is not None
        st.multiselect(
            facet.label,
            options,
            key=f"facet_{facet.name}",
            on_change=on_change,
            placeholder="Published only" if facet.name == "status" else "Any",
            format_func=counted(counts, labels.get(facet.name, ui.label if closed else str)),
        )
    year_panel(request, facets.get("year", []))
    lh = dict(facets.get("lighthouse", []))
    names = {"any": "Any", "yes": f"Lighthouses ({lh.get(True, 0)})", "no": f"Others ({lh.get(False, 0)})"}
    st.radio(
        "Lighthouse", list(names), key="facet_lighthouse", format_func=names.get, on_change=on_change, horizontal=True
    )


def year_panel(request: SearchRequest, counts: list[tuple[Any, int]]) -> None:
    chosen = (request.facets.year_from, request.facets.year_to)
    years = sorted({y for y, _ in counts} | {y for y in chosen if y is not None})
    label = counted(counts)
    start, end = st.columns(2)
    start.selectbox(
        "Started from",
        years,
        key="facet_year_from",
        on_change=on_change,
        index=None,
        placeholder="Any",
        format_func=label,
    )
    end.selectbox(
        "to", years, key="facet_year_to", on_change=on_change, index=None, placeholder="Any", format_func=label
    )


def search_box(mode: str) -> None:
    """A one-line box where Enter searches; in plan mode, a labelled area to paste the plan into."""
    with st.form("search_form", border=False):
        if mode == browse.PLAN_MODE:
            st.text_area(
                "Your project plan: one part per paragraph, list item or line",
                key="search_plan",
                height=180,
                placeholder="Paste your plan. Each part is searched on its own, and what failed or "
                "stopped elsewhere comes first.",
            )
            st.form_submit_button(
                "Find lessons for this plan", type="primary", icon=":material/search:", on_click=on_change
            )
        else:
            box, button = st.columns([5, 1], vertical_alignment="bottom", gap="small")
            box.text_input(
                "Search",
                key="search_q",
                label_visibility="collapsed",
                placeholder="Ask a question, or type a word or an acronym",
            )
            button.form_submit_button(
                "Search", type="primary", icon=":material/search:", on_click=on_change, use_container_width=True
            )
    st.segmented_control(
        "Search mode",
        list(MODES),
        format_func=MODES.get,
        key="search_mode",
        on_change=on_mode_change,
        help=MODE_HELP,
        required=True,
    )


def empty_state(results: browse.SearchResults) -> None:
    st.header("What to try", anchor=False)
    st.markdown(
        "- A question in your own words: *why did our pilot stop?*\n"
        "- A word, an acronym or a system from your field\n"
        "- A whole project plan: choose **Project plan** and paste it in\n"
        "- The filters alone, e.g. every **failed** or **stopped** experiment in a theme"
    )
    if results.suggestions:  # the collection's own most used themes and tags
        with st.container(horizontal=True):
            for example in results.suggestions:
                st.button(ui.plain(example), on_click=run_example, args=(example,), icon=":material/search:")
    st.header("Newest entries", anchor=False)
    if not results.newest:
        st.info("Nothing has been published yet. Be the first to share what you learned.", icon=":material/lightbulb:")
        st.page_link(ui.SUBMIT_PAGE, label="Submit an entry", icon=":material/edit_note:")
    for entry in results.newest:
        ui.entry_card(entry)


def filtered_listing(results: browse.SearchResults) -> None:
    st.caption(f"{entries(results.total)} match these filters, newest first{page_of(results)}.")
    if not results.newest:
        no_results(results)
    for entry in results.newest:
        ui.entry_card(entry)
    pager(results)
    downloads(results)


def downloads(results: browse.SearchResults) -> None:
    """Every result, over all pages, as a file: built when asked for, under this reader's rules."""
    if not results.total:
        return
    request = results.request
    named = "plan" if request.mode == browse.PLAN_MODE else slugify(request.query, 40) if request.query else "entries"
    stem = f"lighthouse-{named}"

    visit = resources.visit()

    def make(fmt: str) -> bytes:
        return browse.download(kb, browse.every_match(kb, request, user), fmt, user, visit=visit)

    ui.download_buttons(stem, make, key="download-results")


def did_you_mean(results: browse.SearchResults) -> None:
    """A correction of misspelt words, one click away."""
    if results.suggestion:
        with st.container(horizontal=True, vertical_alignment="center"):
            st.markdown("Did you mean")
            st.button(
                ui.plain(results.suggestion),  # built from what was typed: shown as text, never Markdown
                on_click=run_example,
                args=(results.suggestion,),
                type="tertiary",
                icon=":material/spellcheck:",
            )


def set_exact(exact: bool) -> None:
    request = replace(url_request(), exact=exact, page=1)
    push(request)


def other_names(results: browse.SearchResults) -> None:
    """Which other names of the query's themes were searched too, and a way to search the words alone."""
    names = ", ".join(ui.plain(n) for n in results.other_names)
    if not names:
        return
    with st.container(horizontal=True, vertical_alignment="center"):
        if results.request.exact:
            st.caption(f"Exact words only; not searched: {names}")
            st.button("Search these too", on_click=set_exact, args=(False,), type="tertiary")
        else:
            st.caption(f"Also searched: {names}")
            st.button("Exact words only", on_click=set_exact, args=(True,), type="tertiary")


def match_count(results: browse.SearchResults) -> str:
    """How many matched, honestly: close matches apart from the loosely related where that is judged."""
    among = f"among {entries(results.in_scope)}"
    if results.close is None:
        return f"{results.total} best match{'es' if results.total != 1 else ''} {among}"
    loose = results.total - results.close
    close = f"{results.close} close match{'es' if results.close != 1 else ''} {among}"
    return close + (f", then {loose} loosely related" if loose else "")


def entries(n: int) -> str:
    return f"{n} entr{'ies' if n != 1 else 'y'}"


def page_of(results: browse.SearchResults) -> str:
    return f" · page {results.page} of {results.pages}" if results.pages > 1 else ""


def go_to_page(page: int) -> None:
    request = replace(url_request(), page=page)
    push(request)


def pager(results: browse.SearchResults) -> None:
    """Previous and next, with where you are; the page lives in the URL like everything else."""
    if results.pages <= 1:
        return
    with st.container(horizontal=True, vertical_alignment="center"):
        st.button(
            "Previous page",
            icon=":material/chevron_left:",
            disabled=results.page <= 1,
            on_click=go_to_page,
            args=(results.page - 1,),
        )
        st.markdown(f"Page {results.page} of {results.pages}")
        st.button(
            "Next page",
            icon=":material/chevron_right:",
            disabled=results.page >= results.pages,
            on_click=go_to_page,
            args=(results.page + 1,),
        )


def no_results(results: browse.SearchResults) -> None:
    request = results.request
    did_you_mean(results)
    other_names(results)
    what = f"“{request.query[:80]}”" if request.query else "these filters"
    within = " with these filters" if request.query and request.has_filters else ""
    st.info(f"No entries matched {ui.plain(what)}{within}.", icon=":material/search_off:")
    if results.unfiltered:
        st.markdown(f"**{results.unfiltered} entries** match without the filters.")
    if request.has_filters:
        st.button("Clear the filters", on_click=clear_filters, icon=":material/filter_alt_off:")
    st.markdown(
        "- Try fewer or more general words, or a synonym (*agreement* rather than *DSA*).\n"
        "- Switch the mode: **Meaning** finds other wordings, **Keyword** exact terms.\n"
        "- Nobody has written this up yet? Your team may be the first."
    )
    st.page_link(ui.SUBMIT_PAGE, label="Share what you learned", icon=":material/edit_note:")


def plan_results(results: browse.SearchResults) -> None:
    plan = results.plan
    st.caption(f"{plan_summary(len(plan.parts), plan.count)} · {results.seconds:.2f}s")
    for part in plan.parts:
        st.header(f"Part {part.number} of {len(plan.parts)}", anchor=False)
        st.markdown(f"> {ui.plain(part.text)}")
        if not part.matches:
            st.caption("No prior lessons found for this part.")
        for match in part.matches:
            ui.hit_card(match.hit, part.text, note=f"speaks to part {part.number} of your plan")
    downloads(results)


def results_list(results: browse.SearchResults) -> None:
    if results.plan is not None and results.hits:
        plan_results(results)
        return
    if not results.hits:
        no_results(results)
        return
    query = results.request.query
    did_you_mean(results)
    if results.close == 0:
        st.info(
            f"No close matches for “{ui.plain(query[:80])}”. Nothing in the collection is really about "
            "this yet; the entries below are the nearest by meaning.",
            icon=":material/search_off:",
        )
    st.caption(f"{match_count(results)}{page_of(results)} · {results.seconds:.2f}s")
    other_names(results)
    loose_shown = False
    for hit in results.hits:
        if hit.close is False and not loose_shown:
            st.header("Loosely related", anchor=False, divider="gray")
            loose_shown = True
        ui.hit_card(hit, query)
    pager(results)
    downloads(results)


# The URL is the only source of truth: whenever the widgets say something else, they are set from it.
request = url_request().for_user(user)
if "search_mode" not in st.session_state or from_widgets(page=request.page).for_user(user) != request:
    show(request)  # a first visit sets the widgets too: the default mode is shown chosen
with st.spinner("Searching…" if request.query else "Loading…"):  # a busy state while a search runs
    results = browse.find(kb, request, user, visit=resources.visit())  # counted once per visit

st.title("Lighthouse")
st.caption("Lessons learned and lighthouse projects: find who tried something similar, what happened, and whom to ask.")
search_box(request.mode)
phone = ui.on_a_phone()
if phone:  # results near the top: the filters wait behind one control
    filters_column, results_column = st.container(), st.container()
else:
    filters_column, results_column = st.columns([1.3, 3], gap="large")
# The results are drawn first, and the filter panel (dozens of widgets on a large collection) after
# them into its place: what the person asked for reaches the screen before the controls around it.
with results_column:
    follow.search_controls(user, request, vocabulary.label)  # save it; follow the theme or organisation chosen
    if request.query:
        results_list(results)
    elif request.has_filters:
        filtered_listing(results)
    else:
        empty_state(results)
with filters_column:
    if phone:
        with st.expander(f"Filters ({request.facets.chosen})", icon=":material/filter_list:"):
            facet_panel(request, results.facets)
    else:
        facet_panel(request, results.facets)
