"""Small rendering helpers the pages share: Markdown escaping, links, badges, result cards and the sidebar.

How Streamlit shows a string decides how user-written text must be passed to it:

- Markdown: st.markdown, st.caption, st.title and st.subheader, st.info/warning/error/success, st.toast,
  expander, button, widget and page-link labels, `help=` tooltips, st.metric labels, and the options of
  st.radio, st.segmented_control and st.pills. A Markdown image there is fetched from wherever it
  points, so a short value goes through `plain` and a user's Markdown body through `safe_markdown`;
  never with unsafe HTML.
- Text: the options and chosen values of st.selectbox and st.multiselect (their `format_func`), st.text
  and st.code. Pass them as they are: escaping would show its backslashes.
- HTML: only `highlight_html`'s escaped passage (the library marks the words), through `snippet`, a
  form's messages at their fields, escaped by `field_messages` (so a rejected link typed by the user is
  text, never a link), and a chart's legend, escaped by `legend`. The one script is `error_summary`'s, which holds no user text.
- Vega charts: values go in as data. Vega's tooltip handler escapes `&` and `<` itself when it writes
  the tooltip's HTML, so they are passed as they are (only a field named `image` would be fetched). A
  chart's `href` channel only ever holds a link the app built with `page_href` to one of its own pages.
"""

from __future__ import annotations

import datetime as dt
import functools
import html
import json
import logging
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlencode

import streamlit as st

from kb import KBError, KnowledgeBase, access
from kb.browse import PLAN_MODE, SearchRequest, count_in_scope
from kb.entries import Entry
from kb.errors import without_paths
from kb.exporter import MEDIA_TYPES
from kb.identity import ADMIN, CONTRIBUTOR, CURATOR, REVIEWER, User
from kb.search import Hit, highlight

if TYPE_CHECKING:
    from app_pages.resources import Visitor

log = logging.getLogger("lighthouse.signin")

SEARCH_PAGE = "app_pages/search.py"
ENTRY_PAGE = "app_pages/entry.py"
SUBMIT_PAGE = "app_pages/submit.py"
SHOWCASE_PAGE = "app_pages/showcase.py"
REVIEW_PAGE = "app_pages/review.py"
INSIGHTS_PAGE = "app_pages/insights.py"
FOLLOWING_PAGE = "app_pages/following.py"
VOCABULARY_PAGE = "app_pages/vocabulary.py"
PEOPLE_PAGE = "app_pages/people.py"
ORGANISATION_PAGE = "app_pages/organisation.py"
SOURCES_PAGE = "app_pages/sources.py"
GLOSSARY_PAGE = "app_pages/glossary.py"
# Where each page lives in the address, after the app's own: app.py gives the pages these paths, and every
# link the app writes out itself (a chart's bars) is built from them by `page_href`.
PAGE_PATHS = {
    SEARCH_PAGE: "",  # the home page
    ENTRY_PAGE: "entry",
    SUBMIT_PAGE: "submit",
    SHOWCASE_PAGE: "showcase",
    REVIEW_PAGE: "review",
    INSIGHTS_PAGE: "insights",
    FOLLOWING_PAGE: "following",
    VOCABULARY_PAGE: "vocabulary",
    PEOPLE_PAGE: "people",
    ORGANISATION_PAGE: "organisation",
    SOURCES_PAGE: "sources",
    GLOSSARY_PAGE: "glossary",
}

STYLES = Path(__file__).parent / "lighthouse.css"
APP_NAME = "Lighthouse"
TEXT_COLOUR = "#0b0c0c"  # the theme's text colour (.streamlit/config.toml): 19:1 on white

OUTCOME_CHART_COLOURS = {
    "succeeded": "#2e7d32",
    "partial": "#ef8f00",
    "failed": "#c62828",
    "stopped": "#7b1fa2",
    "ongoing": "#1565c0",
    "not-recorded": "#757575",
}
STAGE_ICONS = {
    "pilot": ":material/science:",
    "proven": ":material/verified:",
    "replicated": ":material/content_copy:",
    "retired": ":material/archive:",
}


@dataclass(frozen=True)
class TagStyle:
    """How one of an entry's closed fields is shown as a tag: what the field is called, its icon, and a
    colour (for each value, or one for all)."""

    name: str
    icon: str
    colours: dict[str, str] | str


# The one place the four tags are defined: search cards, the entry page, the showcase, the review queue
# and the similar lists all show them through `tag`.
TAGS = {
    "outcome": TagStyle(
        "Outcome",
        "",
        {
            "succeeded": "green",
            "partial": "orange",
            "failed": "red",
            "stopped": "violet",
            "ongoing": "blue",
            "not-recorded": "gray",
        },
    ),
    "stage": TagStyle("Lighthouse", ":material/lightbulb:", "orange"),
    "evidence": TagStyle("Evidence", ":material/fact_check:", "gray"),
    "status": TagStyle("Status", ":material/flag:", "gray"),
}


# An image opener or a dollar sign not escaped yet: after an even run of backslashes (each pair is one
# literal backslash), so a backslash typed before "![" cannot pair with the added one and leave the image.
_UNESCAPED = re.compile(r"(?<!\\)((?:\\\\)*)(!\[|\$)")


def safe_markdown(text: str) -> str:
    """User Markdown made safe to show: images become links (nothing is fetched from elsewhere) and
    dollar signs stay money rather than starting a formula."""
    return _UNESCAPED.sub(lambda m: m.group(1) + "\\" + m.group(2), text)


_MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>$~:&])")  # & too: "&amp;" stays as typed


def plain(text: str) -> str:
    """A short user-written value (a title, an organisation) escaped so Markdown shows it exactly as typed,
    on one line: for any Markdown surface, a label or a tooltip as much as st.markdown."""
    return _MARKDOWN_SPECIAL.sub(r"\\\1", " ".join(str(text).split()))


def unlinked(text: str) -> str:
    """Text that must never become a link (an address that is not a web address), as Markdown: a code span
    on one line. Escaping is not enough: Streamlit's Markdown turns `http://...` and `www....` in plain text
    into links after the escapes are read, but never inside code."""
    text = " ".join(str(text).split())
    fence = "`" * (max((len(run) for run in re.findall(r"`+", text)), default=0) + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def user_message(message: str) -> str:
    """A library message as the app's users read it: no paths, a capital first letter (not yet escaped)."""
    text = without_paths(message)
    return text[:1].upper() + text[1:]


def message_text(message: str) -> str:
    """`user_message`, escaped for Markdown, to show at once."""
    return plain(user_message(message))


def moment(stamp: str) -> str:
    """A stored UTC time as a reader wants it: "3 Dec 2026 at 13:45 UTC" (seconds are noise)."""
    try:
        when = dt.datetime.fromisoformat(stamp)
    except ValueError:
        return stamp
    if "T" not in stamp:
        return f"{when.day} {when:%b %Y}"
    when = when.astimezone(dt.UTC) if when.tzinfo else when  # stored times are UTC; a naive one is taken as UTC
    return f"{when.day} {when:%b %Y} at {when:%H:%M} UTC"


def label(value: str) -> str:
    """A value of an entry's closed fields (outcome, kind, stage, evidence, status, visibility) as people
    read it, in sentence case: "failed" is "Failed", "in-review" is "In review". The one wording and
    casing of a value on every page: tags, facts, filters, board lanes and charts."""
    text = " ".join(str(value).replace("-", " ").split())
    return text[:1].upper() + text[1:]


def tag(field: str, value: str) -> str:
    """The tag (a Markdown badge) for an entry's outcome, lighthouse stage, evidence or status, worded
    "Outcome: Failed", "Lighthouse: Pilot", "Evidence: Measured", "Status: In review" (the value as
    `label` words it everywhere); "" for no value. Values come from the entry's closed lists, and are
    escaped all the same."""
    if not value:
        return ""
    style = TAGS[field]
    colour = style.colours if isinstance(style.colours, str) else style.colours.get(value, "gray")
    icon = f"{style.icon} " if style.icon else ""
    return f":{colour}-badge[{icon}{style.name}: {plain(label(value))}]"


def facts_line(
    *,
    outcome: str = "",
    kind: str = "",
    organisation: str = "",
    year: int | None = None,
    stage: str = "",
    evidence: str = "",
    status: str = "",
) -> str:
    """An entry's key facts in Markdown: a line of tags (outcome, lighthouse stage, evidence, and a status
    other than published), then a line with its kind, organisation and the year it started."""
    tags = [
        tag("outcome", outcome),
        tag("stage", stage),
        tag("evidence", evidence),
        tag("status", status if status != "published" else ""),
    ]
    words = [
        label(kind) if kind else "",
        plain(organisation) if organisation else "",
        f"Started {year}" if year else "",
    ]
    words = [w for w in words if w]
    return "\\\n".join(line for line in (" ".join(t for t in tags if t), " · ".join(words)) if line)


def page(script: str, title: str, icon: str, **options) -> st.Page:
    """One of the app's pages for st.navigation, at its path in PAGE_PATHS."""
    return st.Page(script, title=title, icon=icon, url_path=PAGE_PATHS[script] or None, **options)


def page_href(page: str, params: Mapping[str, str | list[str]] | None = None) -> str:
    """A link to one of the app's pages with these query parameters, for a link written out as text (a
    chart's `href`) rather than with st.page_link. It is relative: every page sits at the app's root, so
    it works wherever the app is served, under any base path."""
    path = PAGE_PATHS[page] or "./"
    query = urlencode(params or {}, doseq=True)
    return f"{path}?{query}" if query else path


def search_href(request: SearchRequest) -> str:
    """A link to the search page showing this request (its query, mode and filters)."""
    return page_href(SEARCH_PAGE, request.to_params())


def entry_href(entry_id: str) -> str:
    """A link to an entry's page."""
    return page_href(ENTRY_PAGE, {"id": entry_id})


def entry_heading(entry_id: str, title: str) -> None:
    """A card's title: the largest text on the card, a link to the entry that wraps rather than being cut
    (lighthouse.css styles a bold entry link as a title), the title again as its tooltip."""
    text = plain(title)  # the tooltip is Markdown too: a raw title's image would be fetched on hover
    st.page_link(ENTRY_PAGE, label=f"**{text}**", query_params={"id": entry_id}, help=text)


def entry_link(entry_id: str, title: str, *, icon: str | None = None, note: str = "") -> None:
    """A link to an entry in a list (related entries, reuses): its title, and a note after it."""
    text = plain(title)
    st.page_link(
        ENTRY_PAGE,
        label=text + (f" · {plain(note)}" if note else ""),
        query_params={"id": entry_id},
        icon=icon,
        help=text,
    )


def organisation_link(name: str, *, note: str = "", icon: str | None = ":material/domain:") -> None:
    """A link to an organisation's page (its entries, lighthouses, partners and reuse), a note after it."""
    text = plain(name)
    st.page_link(
        ORGANISATION_PAGE,
        label=text + (f" · {plain(note)}" if note else ""),
        query_params={"org": name},
        icon=icon,
        help=f"What {text} has shared, and whom it worked with",
    )


def entry_not_found(entry_id: str) -> None:
    """The page for an entry id that leads nowhere this user may go: missing and hidden look the same."""
    tab_title("Entry not found")
    st.title("Entry not found")
    st.warning(
        f"There is no entry with id “{plain(entry_id[:120])}”. It may have been renamed or removed.",
        icon=":material/search_off:",
    )
    st.page_link(SEARCH_PAGE, label="Search the collection", icon=":material/search:")
    st.stop()


def snippet(text: str, query: str) -> None:
    """The passage, escaped, with the query's words marked: the one HTML the app renders."""
    body = highlight_html(text, query)
    if body.strip():
        st.html(body)


def highlight_html(text: str, query: str, max_chars: int = 400) -> str:
    """The passage as safe HTML: every piece escaped, the query's words in <mark>."""
    pieces = highlight(text, query, max_chars)
    return "".join(f"<mark>{html.escape(p)}</mark>" if marked else html.escape(p) for p, marked in pieces)


def hit_header(hit: Hit, *, show_status: bool = True) -> None:
    """A card's first lines for a search or similar hit: the title, then the key facts."""
    entry_heading(hit.id, hit.title)
    st.markdown(
        facts_line(
            outcome=hit.outcome,
            kind=hit.kind,
            organisation=hit.organisation,
            year=hit.year,
            stage=hit.lighthouse_stage,
            evidence=hit.evidence,
            status=hit.status if show_status else "",
        )
    )


def entry_facts(entry: Entry, *, show_status: bool = True) -> str:
    """`facts_line` for a whole entry."""
    return facts_line(
        outcome=entry.outcome,
        kind=entry.kind,
        organisation=entry.organisation,
        year=entry.year,
        stage=entry.lighthouse.stage if entry.lighthouse else "",
        evidence=entry.evidence,
        status=entry.status if show_status else "",
    )


def entry_header(entry: Entry, *, show_status: bool = True) -> None:
    """A card's first lines for a whole entry: the title, then the key facts."""
    entry_heading(entry.id, entry.title)
    st.markdown(entry_facts(entry, show_status=show_status))


def hit_card(hit: Hit, query: str, note: str = "") -> None:
    with st.container(border=True):
        hit_header(hit)
        st.caption(f"Matched in: {plain(hit.section)}" + (f" · {plain(note)}" if note else ""))
        snippet(hit.passage, query)


def entry_card(entry: Entry) -> None:
    """A compact card for an entry (newest lists, review queue)."""
    with st.container(border=True):
        entry_header(entry)
        st.markdown(plain(entry.summary))


ERROR_COLOUR = "#d4351c"  # GOV.UK's error red
FORM_STYLE = f"""
.lh-field-error {{ border-left: 4px solid {ERROR_COLOUR}; padding-left: 0.75rem; }}
.lh-field-error p {{ color: {ERROR_COLOUR}; font-weight: 600; margin: 0 0 0.25rem 0; }}
.lh-hidden {{ position: absolute !important; width: 1px; height: 1px; margin: 0; padding: 0; overflow: hidden;
  clip: rect(0 0 0 0); clip-path: inset(50%); border: 0; white-space: nowrap; }}
.lh-error-summary:focus, .lh-error-summary:focus-visible {{ outline: 3px solid #ffdd00; outline-offset: 2px; }}
"""
# Moves focus to the error summary, links each of its items to the field it names (focus on the field's
# input, as GOV.UK's does), and marks those inputs invalid for screen readers. No user text goes in it.
FOCUS_SCRIPT = """
(() => {
  const summaryClass = %s;
  const field = (id) => {
    const message = document.getElementById(id);
    const box = message && message.dataset.field ? document.querySelector("." + message.dataset.field) : null;
    return [message, box, box && box.querySelector("input:not([type=hidden]), textarea, [role=combobox]")];
  };
  if (!window.__lighthouseSummaryLinks) {
    window.__lighthouseSummaryLinks = true;
    document.addEventListener("click", (event) => {
      const link = event.target.closest && event.target.closest(".lh-error-summary a[href^='#']");
      if (!link) return;
      const [message, box, input] = field(link.getAttribute("href").slice(1));
      if (!message) return;
      event.preventDefault();
      (box || message).scrollIntoView({ block: "center" });
      if (input) input.focus({ preventScroll: true });
    }, true);
  }
  let tries = 0;
  const focus = () => {
    const summary = document.querySelector("." + summaryClass);
    if (!summary) { if (tries++ < 60) setTimeout(focus, 50); return; }
    summary.classList.add("lh-error-summary");
    summary.setAttribute("tabindex", "-1");
    summary.scrollIntoView({ block: "start" });
    summary.focus({ preventScroll: true });
  };
  // Each field with a message is marked invalid, and described by it, for as long as the message is there:
  // the messages are drawn after the summary (on a busy machine, seconds after) and Streamlit may draw a
  // field's input again, so the marks follow the page rather than being set once.
  const mark = () => {
    const wanted = new Map();
    document.querySelectorAll(".lh-field-error[data-field]").forEach((message) => {
      const input = field(message.id)[2];
      if (input) wanted.set(input, message.id);
    });
    document.querySelectorAll("[data-lh-invalid]").forEach((input) => {
      if (wanted.has(input)) return;
      ["aria-invalid", "aria-describedby", "data-lh-invalid"].forEach((name) => input.removeAttribute(name));
    });
    wanted.forEach((id, input) => {
      if (input.getAttribute("aria-describedby") === id) return;
      input.setAttribute("aria-invalid", "true");
      input.setAttribute("aria-describedby", id);
      input.setAttribute("data-lh-invalid", "");
    });
  };
  if (window.__lighthouseFieldMarks) window.__lighthouseFieldMarks.disconnect();
  window.__lighthouseFieldMarks = new MutationObserver(mark);
  window.__lighthouseFieldMarks.observe(document.body, { childList: true, subtree: true });
  mark();
  focus();
})();
"""


DOWNLOADS = {"csv": ("CSV", MEDIA_TYPES["csv"]), "xlsx": ("Excel", MEDIA_TYPES["xlsx"])}


def download_buttons(stem: str, make: Callable[[str], bytes], *, key: str) -> None:
    """Download as CSV and as Excel; `make(format)` builds the file only when a button is pressed
    (on a server thread, so it must not touch the page), and pressing one does not rerun the page."""
    with st.container(horizontal=True, gap="small"):
        for fmt, (name, media_type) in DOWNLOADS.items():
            st.download_button(
                f"Download as {name}",
                data=functools.partial(make, fmt),
                file_name=f"{stem}.{fmt}",
                mime=media_type,
                on_click="ignore",
                icon=":material/download:",
                type="tertiary",
                key=f"{key}-{fmt}",
            )


def error_summary(items: list[tuple[str, str]], *, key: str, invalid: list[str], attempt: int | None) -> None:
    """GOV.UK's error summary, at the top of a form: "There is a problem", then each message as a link to
    where it is shown at its field (`items` are (anchor id, message) pairs, messages as typed: escaped here).
    The widgets keyed `invalid` are marked; `attempt` (a number new at each failed save, None otherwise)
    moves focus to the summary, as after a save that found problems."""
    if not items:
        return
    lines = [f"- [{plain(message)}](#{anchor})" for anchor, message in items]
    marked = ", ".join(f".st-key-{k}" for k in invalid)
    style = FORM_STYLE + f".st-key-{key} {{ scroll-margin-top: 4.5rem; }}"  # clear of the app's header
    if marked:
        style += f"{marked} {{ border-left: 4px solid {ERROR_COLOUR}; padding-left: 0.75rem; }}"
    with st.container(key=key):
        st.error("\n".join(lines), title="There is a problem", icon=":material/error:")
        page = f"<style>{style}</style>"
        if attempt is not None:  # a new number each time, so the script runs again after each failed save
            script = FOCUS_SCRIPT % json.dumps(f"st-key-{key}")
            page += f"<script data-attempt='{int(attempt)}'>{script}</script>"
        st.html(page, unsafe_allow_javascript=attempt is not None)


def field_messages(messages: dict[str, list[str]], name: str, *, anchor: str, widget_key: str = "") -> None:
    """Validation messages for one form field, right under it, where the error summary links to (`anchor`).
    They may quote what was typed (a rejected link), so they are escaped HTML: never Markdown, never a link."""
    shown = messages.get(name) or []
    if not shown:
        return
    body = "".join(f'<p><span class="lh-hidden">Error: </span>{html.escape(m)}</p>' for m in shown)
    field = f' data-field="st-key-{html.escape(widget_key)}"' if widget_key else ""
    st.html(f'<div id="{html.escape(anchor)}" class="lh-field-error"{field}>{body}</div>')


def legend(title: str, items: list[tuple[str, str]]) -> None:
    """A chart's legend as a list on the page rather than drawn inside the chart: every label whole (it
    wraps, never cut short), read out by screen readers, and under the chart on a phone. `items` are
    (colour, label) pairs: the colours are the app's own, the labels user text, escaped here."""
    rows = "".join(
        f'<li><span class="lh-swatch" aria-hidden="true" style="background-color: {html.escape(colour)}"></span>'
        f"<span>{html.escape(text)}</span></li>"
        for colour, text in items
    )
    st.html(f'<div class="lh-legend"><p>{html.escape(title)}</p><ul>{rows}</ul></div>')


def flash() -> None:
    """Show (once) the confirmation a previous action left for this page."""
    message = st.session_state.pop("flash", None)
    if message:  # may quote a title: escaped here, so callers leave plain text
        st.success(plain(message), icon=":material/check_circle:")
        st.toast(plain(message), icon=":material/check_circle:")
    warning = st.session_state.pop("flash_warning", None)
    if warning:  # the action happened, with a caveat the user should read
        st.warning(plain(warning), icon=":material/warning:")


def styles() -> None:
    """The app's own CSS (lighthouse.css): entry titles as links that wrap, a focus ring on every link."""
    st.html(STYLES)  # only a <style>: Streamlit puts it where it takes no space


def on_a_phone() -> bool:
    """Whether the browser says it is a phone ("Mobi" in its user agent, as every phone browser does): the
    page is laid out for a narrow screen from the start, not squeezed."""
    return "Mobi" in (st.context.headers.get("User-Agent") or "")


def tab_title(*what: str) -> None:
    """The browser tab's title: what this page shows, then the app's name ("Search: DSA – Lighthouse").
    Each part is cut at a word to at most 100 characters; it is text, so nothing is escaped."""
    parts = [_shortened(" ".join(str(w).split()), 100) for w in what if str(w).strip()]
    st.set_page_config(page_title=" – ".join([*parts, APP_NAME]))


def _shortened(text: str, most: int) -> str:
    if len(text) <= most:
        return text
    cut = text[: most + 1].rsplit(" ", 1)[0] if " " in text[:most] else text[:most]
    return cut.rstrip(" ,.;:–-") + "…"


def router_tab_title(page_title: str, *, search: bool) -> None:
    """The tab's title the router gives a page before it runs: its name, and for a search what was
    searched for (kb.browse reads the address). A page that knows more, such as an entry's title, sets
    it again."""
    if search:
        request = SearchRequest.from_params({key: st.query_params.get_all(key) for key in st.query_params})
        if request.mode == PLAN_MODE and request.query:
            tab_title("Lessons for your plan")
            return
        if request.query:
            tab_title(f"Search: {request.query}")
            return
    tab_title(page_title)


def sidebar(visitor: Visitor) -> None:
    """Who you are (with sign-in and sign-out), the collection's size, and, for whoever looks after this
    copy, its entry file problems and a sync button."""
    from app_pages import resources

    user = visitor.user
    with st.sidebar:
        who(visitor)
        try:
            loaded = resources.loaded()
        except KBError:
            return
        st.caption(f"{count_in_scope(loaded.kb, None, user):,} entries you can see")  # the search page's count
        if not looks_after_the_index(visitor):
            return  # file names, the index's health and sync are for whoever runs Lighthouse
        for problem in loaded.report.problems:
            if problem.source == "index":  # e.g. a damaged index rebuilt at start: say so, once per start
                st.info(message_text(problem.message), icon=":material/build:")
        errors = [p for p in loaded.report.problems if p.severity == "error"]
        if errors:
            with st.expander(f":material/warning: {len(errors)} entry files could not be read"):
                st.text("\n".join(without_paths(str(p)) for p in errors[:20]))
                st.caption("Fix them, then sync again. `python -m kb check` lists every problem.")
        if st.button(
            "Sync entry files", icon=":material/sync:", help="Index entry files added or changed outside the app."
        ):
            sync(loaded.kb)


def looks_after_the_index(visitor: Visitor) -> bool:
    """Whether this visitor sees entry file problems (the rule is kb.access's)."""
    return access.looks_after_the_index(visitor.user, local=visitor.mode == "local")


ROLE_NAMES = {CONTRIBUTOR: "Contributor", REVIEWER: "Reviewer", CURATOR: "Curator", ADMIN: "Administrator"}


def what_you_can_do(user: User) -> str:
    """The person's roles in plain words, what they may do from kb.access's rules: "Contributor and
    curator: you can search and read entries, share write-ups, edit any entry and review other people's
    write-ups." Roles Lighthouse does not know are left out."""
    roles = [ROLE_NAMES[r] for r in user.roles if r in ROLE_NAMES]
    can = ["search and read entries"]
    if access.can_contribute(user):
        can.append("share write-ups")
    if access.edits_any(user):
        can.append("edit any entry")
    if access.reviews(user):
        can.append("review other people's write-ups")
    named = _and([roles[0], *(r.lower() for r in roles[1:])]) + ": you" if roles else "You"
    return f"{named} can {_and(can)}."


def _and(words: list[str]) -> str:
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]


_NOT_USED = (
    "so Lighthouse does not use it: not for your organisation or your own roles, not to name you as an "
    "author, and no digest is sent to it."
)
ADDRESS_NOT_USED = {  # kb.signin.address_not_used
    "unconfirmed": f"Your sign-in provider says your e-mail address is not confirmed, {_NOT_USED} Confirm it with "
    "your provider, then sign in again.",
    "unsaid": f"Your sign-in provider did not say it has confirmed your e-mail address, {_NOT_USED} The team that "
    "runs Lighthouse can change this (docs/signin.md, unverified addresses).",
}


def who(visitor: Visitor) -> None:
    """The person's name, organisation and what they may do; a sign-in or sign-out button where sign-in is
    set up. How the local user is configured is for whoever looks after this copy."""
    user = visitor.user
    with st.container(border=True):
        if visitor.mode == "signed-out":
            st.markdown(":material/person_off: **Not signed in**")
            st.caption("You see the public entries. Sign in to see your organisation's entries and to contribute.")
            if st.button("Sign in", icon=":material/login:", type="primary", width="stretch"):
                st.login()
            return
        if visitor.problem:  # the details stay in the log: they may name other people's addresses
            log.error("sign-in: %s", visitor.problem)
            st.error(
                "You are signed in, but your organisation and roles could not be worked out: the sign-in "
                "settings have a problem. Until the team that runs Lighthouse fixes it, you see the public "
                "entries only.",
                icon=":material/error:",
            )
        else:
            st.markdown(f":material/person: **{plain(user.name)}**")
            st.caption(plain(user.organisation) if user.organisation else "No organisation given")
            if visitor.address_not_used:
                st.caption(ADDRESS_NOT_USED[visitor.address_not_used])
            st.caption(what_you_can_do(user))
        if visitor.mode == "signed-in":
            if st.button("Sign out", icon=":material/logout:", width="stretch"):
                st.logout()
            return
        if not looks_after_the_index(visitor):
            return  # how this copy is set up is for whoever runs it
        roles = ", ".join(plain(r) for r in user.roles) or "none"
        st.caption(f"Local user, set by KB_USER_NAME, KB_USER_ORGANISATION and KB_USER_ROLES (roles: {roles}).")
    st.info(
        f"**Local mode**: no sign-in is set up, so everyone who can reach this app acts as {plain(user.name)}. "
        "docs/signin.md says how to set up sign-in.",
        icon=":material/info:",
    )


def sync(kb: KnowledgeBase) -> None:
    """Re-sync the entry files with a progress bar: files added or edited outside the app get indexed."""
    bar = st.progress(0.0, text="Syncing entry files…")
    report = kb.sync(progress=lambda done, total: bar.progress(done / max(total, 1), text=f"{done} of {total}"))
    bar.empty()
    st.toast(f"Synced: {report.summary()}", icon=":material/sync:")
