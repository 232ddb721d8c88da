"""Entry (?id=...): the whole entry, its facts, lighthouse panel, contact, evidence from others (notes, with
the recurrence "seen in 3 organisations since 2019" and the form to add one), similar projects and related
entries.

User text is Markdown rendered without HTML; images become links (nothing is fetched from elsewhere).
"""

from __future__ import annotations

import streamlit as st

from app_pages import follow, lifecycle, notes, resources, ui, whom
from app_pages.ui import plain, safe_markdown
from kb import Entry, Filters, KBError, NotFound, SimilarHit, browse
from kb.editing import may_edit
from kb.entries import is_web_address  # anything else is shown as text, not linked
from kb.searchlog import search_log
from kb.sources import source_id

kb = resources.knowledge_base()
user = resources.current_user()


def dates(entry: Entry) -> str:
    span = " to ".join(d for d in (entry.started, entry.ended) if d)
    if entry.started and not entry.ended:
        span += " (ongoing)" if entry.outcome == "ongoing" else ""
    return span


def facts(entry: Entry) -> None:
    label = kb.vocabulary.label
    rows = [
        ("Outcome", ui.label(entry.outcome)),
        ("Kind", ui.label(entry.kind)),
        ("Organisation", plain(entry.organisation)),
        ("Team", "*Hidden: shared anonymously*" if entry.anonymous else plain(entry.team)),
        ("Partners", ", ".join(plain(p) for p in entry.partners)),
        ("Dates", plain(dates(entry))),
        ("Phase", plain(entry.phase)),
        ("Themes", ", ".join(plain(label(t)) for t in entry.themes)),
        ("Evidence", ui.label(entry.evidence)),
        ("Tags", ", ".join(plain(t) for t in entry.tags)),
        ("Status", ui.label(entry.status)),
        ("Visibility", ui.label(entry.visibility)),
        ("Written up", plain(" · updated ".join(dict.fromkeys(d for d in (entry.created, entry.updated) if d)))),
        ("Author", "" if entry.anonymous else plain(entry.author)),
        ("Reviewer", plain(entry.reviewer)),
    ]
    with st.container(border=True):
        st.markdown("**Facts**")
        st.markdown("\n".join(f"- **{name}:** {value}" for name, value in rows if value))


def data_sources_panel(entry: Entry) -> None:
    """The data sources the work used, each linked to the catalogue (who else used it), with the grades this
    entry gave it on the Data Quality Framework's dimensions."""
    if not entry.data_sources:
        return
    with st.container(border=True):
        st.markdown("**:material/dataset: Data sources**")
        for name in entry.data_sources:
            if entry.status == "published":  # the catalogue lists the sources of published entries
                st.page_link(
                    ui.SOURCES_PAGE,
                    label=plain(name),
                    query_params={"source": source_id(kb.vocabulary, name)},
                    help=f"Who else used {plain(name)}, and how they graded it",
                )
            else:
                st.markdown(plain(name))
            quality = entry.data_quality.get(name)
            if quality and quality.grades:
                lines = [
                    f"- {ui.label(d)}: **{ui.label(g.rating)}**" + (f" ({plain(g.note)})" if g.note else "")
                    for d, g in quality.grades.items()
                ]
                when = f"Graded {plain(quality.graded)}" if quality.graded else "Graded"
                st.markdown(f"{when}:\n" + "\n".join(lines))


def lighthouse_panel(entry: Entry) -> None:
    lh = entry.lighthouse
    if lh is None:
        return
    with st.container(border=True):
        st.markdown(f"**:material/lightbulb: Lighthouse project** {ui.tag('stage', lh.stage)}")
        if lh.impact:
            st.markdown(safe_markdown(lh.impact))
        if lh.benefits:
            st.markdown("**Measured benefits**")
            st.markdown("\n".join(f"- {plain(b)}" for b in lh.benefits))
        lifecycle.review_flag(entry)
        lifecycle.timeline(entry)
        lifecycle.reuse_chain(kb, entry, user)


def whom_to_ask(entry: Entry) -> None:
    """The contact and team, near the top: whom to talk to, before the whole story."""
    with st.container(border=True):
        if entry.anonymous:
            st.markdown(
                "**:material/contact_mail: Whom to ask:** nobody is named. This entry was shared anonymously: "
                "the team and contact are hidden, so that what went wrong can be shared without blame."
            )
            return
        who = ", ".join(plain(v) for v in (entry.team, entry.organisation) if v)
        if entry.contact:
            text = plain(entry.contact) + (f" ({who})" if who else "")
        else:
            text = f"no contact is given; ask {who}." if who else "no contact is given."
        st.markdown(f"**:material/contact_mail: Whom to ask:** {text}")


def similar_card(hit: SimilarHit) -> None:
    with st.container(border=True):
        ui.hit_header(hit, show_status=False)
        if hit.shared_themes:
            st.caption("Shared themes: " + ", ".join(plain(kb.vocabulary.label(t)) for t in hit.shared_themes))
        link = f"close to this entry's {plain(hit.source_section)}" if hit.source_section else ""
        st.caption(f"What links them: its {plain(hit.section)}" + (f", {link}" if link else ""))
        ui.snippet(hit.passage, "")


def similar_projects(entry: Entry) -> None:
    st.header("Similar projects", anchor=False)
    try:
        hits = kb.similar(entry.id, limit=5, filters=Filters.of(status=browse.PUBLISHED), viewer=user)
    except KBError as exc:
        st.info(
            f"Similar projects are not available yet: {plain(ui.without_paths(str(exc)))}",
            icon=":material/hourglass_empty:",
        )
        return
    if not hits:
        st.caption("No similar projects yet.")
        return
    failed = sum(1 for h in hits if h.outcome in browse.FAILED)
    if failed >= 2:
        st.warning(
            f"**{failed} of these {len(hits)} similar projects failed or stopped.** "
            "Read what happened before you start.",
            icon=":material/report:",
        )
    for hit in hits:
        similar_card(hit)


def related(entry: Entry) -> None:
    if not entry.related:
        return
    st.header("Related entries", anchor=False)
    found = browse.titles(kb, entry.related, user)
    for other_id, title, outcome in found:
        note = f"Outcome: {ui.label(outcome)}" if outcome else ""
        ui.entry_link(other_id, title, icon=":material/link:", note=note)


def body(entry: Entry) -> None:
    for name, text in entry.sections.items():
        st.header(plain(name), anchor=False)
        st.markdown(safe_markdown(text))
    if entry.links:
        st.header("Links", anchor=False)
        st.markdown(
            "\n".join(f"- <{link}>" if is_web_address(link) else f"- {ui.unlinked(link)}" for link in entry.links)
        )


def history(entry: Entry) -> None:
    """Earlier versions, as this user may read them (the library decides which, and what they withhold)."""
    versions = kb.history(entry.id, viewer=user)
    if not versions:
        return
    with st.expander(f"Earlier versions ({len(versions)})", icon=":material/history:"):
        for version in versions:
            st.caption(f"Replaced on {ui.moment(version.replaced)}")
            st.code(version.text, language="markdown", wrap_lines=True)


entry_id = st.query_params.get("id", "")
if not entry_id:
    st.title("Entry")
    st.info("Choose an entry from a search, the showcase or the insights map.", icon=":material/article:")
    st.page_link(ui.SEARCH_PAGE, label="Go to search", icon=":material/search:")
    st.stop()
try:
    entry = kb.get(entry_id, viewer=user)  # NotFound too for an entry this user may not see
except NotFound:
    ui.entry_not_found(entry_id)
search_log(kb.settings).record_entry(entry.id, visit=resources.visit())  # anonymous: opened

ui.tab_title(entry.title)
ui.flash()
st.title(plain(entry.title))
st.markdown(ui.entry_facts(entry))  # the key facts first: outcome, stage, evidence, kind, organisation, year
notes.recurrence_line(kb, entry.id, user)
if entry.status != "published":
    st.info(
        f"This entry is **{ui.label(entry.status).lower()}**: it is not published, so searchers do not see it yet.",
        icon=":material/visibility_off:",
    )
if entry.review_comment:
    with st.container(border=True):
        st.markdown(f":material/rate_review: **Reviewer's comment** ({plain(entry.reviewer or 'reviewer')})")
        st.markdown(safe_markdown(entry.review_comment))

if entry.summary:
    st.markdown(f"**{safe_markdown(entry.summary)}**")
contact, edit = st.columns([4, 1], vertical_alignment="center")  # on a phone the button follows the contact
with contact:
    whom_to_ask(entry)
with edit:
    if may_edit(kb, entry.id, user) and st.button("Edit this entry", icon=":material/edit:", width="stretch"):
        st.switch_page(ui.SUBMIT_PAGE, query_params={"edit": entry.id})

main, side = st.columns([2, 1], gap="large")
with side:
    facts(entry)
    data_sources_panel(entry)
    lighthouse_panel(entry)
    whom.others_block(kb, entry, user)  # whom to ask: others on the same themes, the organisation's page
    follow.entry_controls(user, entry, kb.vocabulary.label)
with main:
    body(entry)
    notes.notes_section(kb, entry.id, user)
    similar_projects(entry)
    related(entry)
    history(entry)
