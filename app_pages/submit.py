"""Submit an entry, or edit one (?edit=<id>): every field, guidance in each, messages next to the fields.

A draft needs only a title; sending it for review checks everything (the rules are kb.drafting's). After a
save that found problems, an error summary at the top of the form links to each field's message. The form
keeps what was typed when you go to another page and come back, and asks before it discards it.

While drafting, the themes nearest to what was written are suggested under the summary ("Add theme: ..."
adds one to the Themes field, the draft kept as it is), and "Looks similar to..." shows the closest published entries, so a duplicate can become
"add your evidence to this entry instead": an evidence note (what happened, the year), added in about a
minute while the draft is kept.
"""

from __future__ import annotations

from urllib.parse import quote

import streamlit as st

from app_pages import looked_for, notes, resources, ui
from app_pages.ui import plain, safe_markdown
from kb import Conflict, KBError, NotFound, SavedNotIndexed, browse, evidence
from kb.access import can_contribute, edit_statuses
from kb.drafting import FIELD_HELP, FORM_ERROR, SECTION_PROMPTS, Draft, DraftInvalid, save_draft
from kb.duplicates import key_terms, looks_similar
from kb.editing import EditTarget, may_edit, open_edit, withdraw
from kb.entries import (
    EVIDENCE_GRADES,
    KINDS,
    LIGHTHOUSE_STAGES,
    MAX_SECTION,
    MAX_SUMMARY,
    MAX_TITLE,
    NOT_RECORDED,
    OUTCOMES,
    SECTIONS,
    VISIBILITIES,
)
from kb.identity import CURATOR
from kb.own_work import YOUR_WORK, confirmation, own_work
from kb.theme_suggestions import suggest_themes

kb = resources.knowledge_base()
user = resources.current_user()
edit_id = st.query_params.get("edit") or None
NEW = "new"  # what the form holds when it is not an edit
SUMMARY_KEY = "draft_error_summary"
EVIDENCE = "submit_evidence_for"  # the similar entry whose "Add your evidence" was chosen
EVIDENCE_ADDED = "submit_evidence_added"  # the entry a note was just added to from here
DISCARDING = "submit_discarding"  # "Clear the form" was chosen: ask first
WANTED_BUSY = "submit_wanted_busy"  # a wanted write-up was chosen while the form held another title
# The form's fields in the order the page shows them (on a phone too), for the error summary.
ORDER = [
    *("title", "summary", "kind", "organisation", "team", "contact", "anonymous", "partners", "outcome"),
    *("themes", "started", "ended", "phase", "evidence", "visibility", "tags", "data_sources", "data_quality"),
    *(f"section:{name}" for name in SECTIONS),
    *("lighthouse_stage", "lighthouse_impact", "lighthouse_benefits", "lighthouse_reused_by"),
    *("lighthouse_reuse", "lighthouse_review_by", "lighthouse_stage_reason"),
    *("related", "links", "source", FORM_ERROR),
]
STATUS_WORDS = {"draft": "draft", "in-review": "in review"}

if "draft_goto" in st.session_state:  # a save in the last click succeeded: show the entry
    st.switch_page(ui.ENTRY_PAGE, query_params={"id": st.session_state.pop("draft_goto")})


def key(name: str) -> str:
    return f"draft_{name}"


def section_key(name: str) -> str:
    return f"draft_section_{SECTIONS.index(name)}"


def widget_key(name: str) -> str:
    """The widget of a form field (a name in the library's messages: a field, or `section:<name>`)."""
    return section_key(name.removeprefix("section:")) if name.startswith("section:") else key(name)


def anchor(name: str) -> str:
    """Where a field's messages are shown, for the error summary to link to."""
    return "problem-" + (name if name == FORM_ERROR else widget_key(name)).replace("_", "-")


def load(draft: Draft, target: str, version: str | None) -> None:
    """Fill the form from a draft, once per entry opened."""
    for name in Draft.field_names():
        st.session_state[key(name)] = getattr(draft, name)
    for name in SECTIONS:
        st.session_state[section_key(name)] = draft.sections.get(name, "")
    st.session_state.update(draft_loaded=target, draft_version=version, draft_problems={})
    st.session_state["draft_original"] = current_draft()  # as loaded: anything else is unsaved work
    for name in (EVIDENCE, EVIDENCE_ADDED, DISCARDING, "draft_conflict"):
        st.session_state.pop(name, None)


def unsaved() -> bool:
    """Whether the form holds typed work that is not saved (what was typed inside the form is sent, and so
    known here, at its next save)."""
    return key("title") in st.session_state and current_draft() != st.session_state.get("draft_original")


def current_draft() -> Draft:
    values = {name: st.session_state.get(key(name)) for name in Draft.field_names()}
    draft = Draft(**{k: v for k, v in values.items() if v is not None})
    draft.sections = {name: st.session_state.get(section_key(name)) or "" for name in SECTIONS}
    return draft


def save(status: str) -> None:
    """Form callback: validate and save; on success the next run opens the entry."""
    try:
        entry = save_draft(
            kb,
            current_draft(),
            user,
            status=status,
            edit_id=edit_id,
            expected_version=st.session_state.get("draft_version"),
        )
    except DraftInvalid as exc:
        failed(exc.messages)
        return
    except SavedNotIndexed as exc:  # the file is written: open the entry, as after any save
        try:
            said = confirmation(kb, kb.store.get(exc.entry_id), user)
        except KBError:
            said = "Saved."
        st.session_state["flash_warning"] = (
            f"{said} Search will find this version a little later, once the index has caught up. "
            "There is no need to save it again."
        )
        open_saved(exc.entry_id)
        return
    except Conflict as exc:
        failed({FORM_ERROR: [ui.user_message(str(exc))]})
        st.session_state["draft_conflict"] = True
        return
    except KBError as exc:
        failed({FORM_ERROR: [ui.user_message(str(exc))]})
        return
    st.session_state["flash"] = confirmation(kb, entry, user)
    open_saved(entry.id)


def failed(messages: dict[str, list[str]]) -> None:
    """A save that found problems: the next run shows them, and moves focus to their summary."""
    st.session_state["draft_problems"] = messages
    st.session_state["draft_attempt"] = st.session_state.get("draft_attempt", 0) + 1
    st.session_state["draft_focus"] = True


def open_saved(entry_id: str) -> None:
    """After a save, the next run opens the entry, and the form starts afresh."""
    st.session_state["draft_goto"] = entry_id
    st.session_state.pop("draft_loaded", None)


def reload() -> None:
    st.session_state.pop("draft_loaded", None)
    st.session_state.pop("draft_conflict", None)


def discard() -> None:
    """Button callback, once the person has confirmed: the next run fills the form afresh."""
    st.session_state.pop("draft_loaded", None)


def keep(target: str) -> None:
    """Button callback: go back to the draft the form holds (the address says which)."""
    st.query_params.clear()
    if target != NEW:
        st.query_params["edit"] = target
    st.session_state.pop(DISCARDING, None)


def confirm_discard(holding: str, opening: str) -> None:
    """Ask before the form's unsaved work is replaced: by another entry, a new form, or a cleared one."""
    title = st.session_state.get(key("title")) or ""
    st.title("Discard your draft?")
    what = f"“{plain(title)}”" if title.strip() else "a draft you have not saved"
    if opening == holding:
        instead = "clear the form" if holding == NEW else "start again from the entry as it is saved"
    elif opening == NEW:
        instead = "start a new entry"
    else:
        instead = "open this entry for editing"
    st.warning(
        f"The form holds {what}, with changes you have not saved. To {instead}, they would be discarded.",
        icon=":material/warning:",
    )
    left, right = st.columns(2)
    left.button(
        "Keep my draft", type="primary", icon=":material/undo:", on_click=keep, args=(holding,), width="stretch"
    )
    right.button("Discard my draft", icon=":material/delete:", on_click=discard, width="stretch")
    st.stop()


def open_form() -> EditTarget | None:
    """What is being edited (None for a new entry), loading the form when it is first opened. The
    library decides whether this user may edit it, and what they may see of it. The form keeps what was
    typed while the person is on other pages; it asks before discarding unsaved work."""
    target = open_edit(kb, edit_id, user) if edit_id else None
    opening = edit_id or NEW
    holding = st.session_state.get("draft_loaded")
    if holding and st.session_state.get(DISCARDING) and unsaved():
        confirm_discard(holding, holding)
    if holding != opening or key("title") not in st.session_state:
        if holding and unsaved():
            confirm_discard(holding, opening)
        draft = Draft.from_entry(target.entry) if target else Draft.new(user)
        load(draft, opening, target.version if target else None)
    st.session_state.pop(DISCARDING, None)
    return target


def your_work() -> None:
    """Where a person finds their drafts, submissions and pending edits again."""
    work = own_work(kb, user)
    if not work:
        return
    with st.expander(f"{YOUR_WORK} ({len(work)})", icon=":material/folder_open:"):
        for item in work:
            note = ("your edit, " if item.edit else "") + STATUS_WORDS.get(item.status, item.status)
            note += ", sent back with a comment" if item.sent_back else ""
            ui.entry_link(item.entry_id, item.title, icon=":material/draft:", note=note)


def start_wanted(title: str) -> None:
    """Button callback: start a draft with the title of a write-up people are looking for (a form that
    holds another title keeps it, and says so)."""
    current = (st.session_state.get(key("title")) or "").strip()
    if current and current != title:
        st.session_state[WANTED_BUSY] = title
        return
    st.session_state[key("title")] = title
    st.session_state.pop(WANTED_BUSY, None)


def wanted_write_ups() -> None:
    """What people searched for and found nothing close to, as curators listed it: a title to start from."""
    looked_for.wanted_list(kb, start_wanted, expanded=not (st.session_state.get(key("title")) or "").strip())
    busy = st.session_state.pop(WANTED_BUSY, None)
    if busy:
        st.info(
            f"The form holds another draft. Save or clear it first to start “{plain(busy)}”.",
            icon=":material/info:",
        )


def similar_panel() -> None:
    st.markdown("**Looks similar to…**")
    title, summary = st.session_state.get(key("title"), ""), st.session_state.get(key("summary"), "")
    hits = looks_similar(kb, title, summary, exclude=edit_id, viewer=user)
    if not hits:
        st.caption(
            "Write a title and a summary: the closest existing entries will show here, so you can add "
            "to one of them instead of starting a duplicate."
        )
        return
    for hit in hits:
        with st.container(border=True):
            ui.entry_heading(hit.id, hit.title)
            st.markdown(ui.facts_line(outcome=hit.outcome, organisation=hit.organisation, year=hit.year))
            ui.snippet(hit.passage, key_terms(f"{title} {summary}"))
            st.button(
                "Add your evidence to this entry",
                key=f"evidence_{hit.id}",
                icon=":material/add_notes:",
                on_click=st.session_state.__setitem__,
                args=(EVIDENCE, hit.id),
                help="Tell the people behind this entry what you found, instead of starting a duplicate",
            )
            if st.session_state.get(EVIDENCE) == hit.id:
                add_evidence(hit.id)


def add_evidence(entry_id: str) -> None:
    """Add your evidence to this entry as a note: what happened and the year (your organisation is the
    one you signed in with), about a minute. The draft here is kept as it is, whatever happens."""
    st.info(
        "Met the same lesson? Add your evidence to this entry: say what happened and the year. Your draft "
        "is kept here: nothing you typed is lost.",
        icon=":material/info:",
    )
    form = f"evidence_note_{entry_id}"
    if notes.outcome(form):  # a note was just sent: its problems, or that it was added
        st.session_state[EVIDENCE_ADDED] = entry_id
    added = st.session_state.get(EVIDENCE_ADDED) == entry_id
    may_add = evidence.may_add_note(kb, entry_id, user)
    if may_add and not added:
        notes.note_form(kb, entry_id, user, key=form, full=False)
    if added:
        st.success("Your evidence was added to this entry. Thank you.", icon=":material/check_circle:")
    elif not may_add:
        st.caption("Sign in as a contributor to add your evidence here.")
    st.markdown(f":material/open_in_new: [Open that entry in a new tab](entry?id={quote(entry_id)})")
    if may_edit(kb, entry_id, user):
        st.caption("You may also edit that entry yourself; you will be asked before your draft is discarded.")
        st.page_link(ui.SUBMIT_PAGE, label="Edit that entry", query_params={"edit": entry_id}, icon=":material/edit:")


def with_chosen(name: str, options: list[str]) -> list[str]:
    """The options plus whatever the field already holds, so a loaded value is never refused."""
    return list(dict.fromkeys([*options, *(st.session_state.get(key(name)) or [])]))


def field(name: str, widget, label: str, **kwargs) -> None:
    """One form field with its guidance and, after a failed save, its messages right under it. Its value
    is kept while the person is on another page."""
    widget(label, key=key(name), help=FIELD_HELP.get(name), persist_state="session", **kwargs)
    messages(name)


def messages(name: str) -> None:
    ui.field_messages(problems, name, anchor=anchor(name), widget_key="" if name == FORM_ERROR else widget_key(name))


def error_summary() -> None:
    """After a save that found problems: each of them, in the form's order, linking to its field."""
    rank = {name: i for i, name in enumerate(ORDER)}
    names = sorted(problems, key=lambda name: rank.get(name, len(ORDER)))
    items = [(anchor(name), message) for name in names for message in problems[name]]
    invalid = [widget_key(name) for name in names if name != FORM_ERROR]
    attempt = st.session_state.get("draft_attempt", 0) if st.session_state.pop("draft_focus", False) else None
    ui.error_summary(items, key=SUMMARY_KEY, invalid=invalid, attempt=attempt)


def about_fields(organisations: list[str]) -> None:
    st.header("About the work", anchor=False)
    left, right = st.columns(2)
    with left:
        field("kind", st.radio, "Kind", options=list(KINDS), format_func=str.capitalize, horizontal=True)
        field("organisation", st.text_input, "Organisation", placeholder="e.g. Department for Education")
        field("team", st.text_input, "Team")
        field("contact", st.text_input, "Contact", placeholder="a shared mailbox is best")
        field("anonymous", st.checkbox, "Share anonymously")
        field(
            "partners",
            st.multiselect,
            "Partner organisations",
            options=with_chosen("partners", organisations),
            accept_new_options=True,
            placeholder="Choose or type",
        )
    with right:
        field(
            "outcome",
            st.selectbox,
            "Outcome",
            # "not recorded" is an imported register's, kept on an entry that has it, never offered
            options=[o for o in OUTCOMES if o != NOT_RECORDED or st.session_state.get(key("outcome")) == o],
            format_func=ui.label,
            index=None,
            placeholder="How did it turn out?",
        )
        vocabulary = kb.vocabulary
        theme_ids = [t.id for t in vocabulary.offered]  # a retired theme only if the entry has it
        field(
            "themes",
            st.multiselect,
            "Themes",
            options=with_chosen("themes", theme_ids),
            format_func=vocabulary.label,
            placeholder="Choose from the shared vocabulary",
        )
        dates = st.columns(2)
        with dates[0]:
            field("started", st.text_input, "Started", placeholder="YYYY-MM")
        with dates[1]:
            field("ended", st.text_input, "Ended", placeholder="YYYY-MM")
        field("phase", st.text_input, "Phase", placeholder="e.g. discovery, pilot, live")
        field(
            "evidence",
            st.selectbox,
            "Evidence",
            options=list(EVIDENCE_GRADES),
            format_func=str.capitalize,
            index=None,
            placeholder="How well is the lesson supported?",
        )
        field("visibility", st.selectbox, "Who may read it", options=list(VISIBILITIES), format_func=str.capitalize)
    field(
        "tags",
        st.multiselect,
        "Tags",
        options=with_chosen("tags", []),
        accept_new_options=True,
        placeholder="Type a keyword and press Enter",
    )
    field(
        "data_sources",
        st.multiselect,
        "Data sources",
        options=with_chosen("data_sources", []),
        accept_new_options=True,
        placeholder="Type a dataset or system and press Enter",
    )
    field(
        "data_quality",
        st.text_area,
        "Grade a data source (optional)",
        height=80,
        max_chars=MAX_SECTION,
        placeholder="School census: accuracy good, timeliness poor (a term late)",
    )


def story_fields() -> None:
    st.header("The story", anchor=False)
    st.caption("Write as much or as little as you know. Lessons is the section readers look for first.")
    for name in SECTIONS:
        prompt = SECTION_PROMPTS[name]
        st.text_area(
            f"{name} · {prompt}", key=section_key(name), height=110, max_chars=MAX_SECTION, persist_state="session"
        )
        messages(f"section:{name}")


def lighthouse_fields(choices: dict[str, str]) -> None:
    expanded = bool(st.session_state.get(key("lighthouse_stage")))
    with st.expander(":material/lightbulb: Lighthouse project", expanded=expanded):
        field(
            "lighthouse_stage",
            st.selectbox,
            "Stage",
            options=["", *LIGHTHOUSE_STAGES],
            format_func=lambda s: s.capitalize() if s else "Not a lighthouse",
        )
        field("lighthouse_impact", st.text_area, "Impact", height=80)
        field(
            "lighthouse_benefits",
            st.text_area,
            "Measured benefits",
            height=80,
            placeholder="One per line, e.g. Median time to sign fell from 38 to 11 weeks",
        )
        options = with_chosen("lighthouse_reused_by", [i for i in choices if i != edit_id])
        field(
            "lighthouse_reused_by",
            st.multiselect,
            "Reused by",
            options=options,
            format_func=lambda i: choices.get(i, i),
            placeholder="Entries that replicated it",
        )
        field(
            "lighthouse_reuse",
            st.text_area,
            "When each reused it, and the benefit",
            height=80,
            placeholder="One per line, e.g. some-entry-id (2024-05): saved 40 days",
        )
        field("lighthouse_review_by", st.text_input, "Review by", placeholder="e.g. 2027-06")
        field(
            "lighthouse_stage_reason",
            st.text_input,
            "Why the stage changed",
            placeholder="Needed when you change the stage, e.g. Replicated by two councils",
        )


def link_fields(choices: dict[str, str]) -> None:
    st.header("Links", anchor=False)
    options = with_chosen("related", [i for i in choices if i != edit_id])
    field(
        "related",
        st.multiselect,
        "Related entries",
        options=options,
        format_func=lambda i: choices.get(i, i),
        placeholder="Entries a reader should look at next",
    )
    field("links", st.text_area, "Web links", height=80, placeholder="https://…")
    field("source", st.text_input, "Source")


BUTTONS = {  # status saved -> (label, icon); the library says which this person may use
    "in-review": ("Send for review", ":material/send:"),
    "draft": ("Save as draft", ":material/save:"),
    "published": ("Save, keep published", ":material/public:"),
    "archived": ("Save, keep archived", ":material/archive:"),
}


def buttons(target: EditTarget | None) -> None:
    messages(FORM_ERROR)
    statuses = [s for s in BUTTONS if s in (target.statuses if target else edit_statuses(user, None))]
    for column, status in zip(st.columns(len(statuses)), statuses, strict=True):
        label, icon = BUTTONS[status]
        kind = "primary" if status == "in-review" else "secondary"
        column.form_submit_button(label, type=kind, icon=icon, on_click=save, args=(status,), width="stretch")


def withdraw_edit() -> None:
    """Button callback: discard this person's pending edit; the published entry stays as it is."""
    try:
        withdraw(kb, str(edit_id), user)
    except KBError as exc:
        st.session_state["draft_problems"] = {FORM_ERROR: [ui.user_message(str(exc))]}
        return
    st.session_state["flash"] = "Your edit is withdrawn. The published entry is as it was."
    open_saved(str(edit_id))


if not can_contribute(user):  # a visitor who has not signed in, or a reader
    st.title("Submit an entry")
    st.info(
        "Sign in to submit an entry or to add your evidence to one; the button is in the sidebar."
        if not user.name
        else "Your roles do not include contributor. Ask the team that runs Lighthouse to add it.",
        icon=":material/lock:",
    )
    st.stop()


def withdraw_pending() -> None:
    """Button callback for a curator: discard someone's abandoned edit, so the entry can be edited."""
    try:
        withdraw(kb, str(edit_id), user)
    except KBError as exc:
        st.session_state["flash_warning"] = ui.user_message(str(exc))
        return
    st.session_state["flash"] = "The pending edit is withdrawn. The published entry is as it was."


try:
    target = open_form()
except NotFound:  # missing or hidden: the same page either way
    ui.entry_not_found(str(edit_id))
except KBError as exc:  # may read it but not edit it, or someone else's edit is pending
    st.title("Edit an entry")
    ui.flash()
    st.error(ui.message_text(str(exc)), icon=":material/lock:")
    if user.has_role(CURATOR) and kb.store.revision(str(edit_id)) is not None:
        st.caption("As a curator you can withdraw a pending edit that its author has abandoned.")
        st.button("Withdraw the pending edit", on_click=withdraw_pending, icon=":material/delete:")
    st.page_link(ui.ENTRY_PAGE, label="Back to the entry", query_params={"id": str(edit_id)}, icon=":material/article:")
    st.stop()
existing = target.entry if target else None


def title_and_summary() -> None:
    field("title", st.text_input, "Title", max_chars=MAX_TITLE, placeholder="What did you do, in one plain sentence?")
    field(
        "summary",
        st.text_area,
        "Summary",
        height=90,
        max_chars=MAX_SUMMARY,
        placeholder="One to three sentences: what you tried and what happened.",
    )
    suggested_themes()


def add_theme(theme_id: str) -> None:
    """Button callback: add a suggested theme to the Themes field; everything else typed stays as it is."""
    chosen = list(st.session_state.get(key("themes")) or [])
    if theme_id not in chosen:
        st.session_state[key("themes")] = [*chosen, theme_id]


def suggested_themes() -> None:
    """The themes nearest to the draft (its title, summary and the sections sent with the form), as
    buttons that add them to the Themes field; nothing until a title and summary say enough."""
    sections = [st.session_state.get(section_key(name)) or "" for name in SECTIONS]
    suggestions = suggest_themes(
        kb,
        st.session_state.get(key("title")) or "",
        st.session_state.get(key("summary")) or "",
        sections,
        viewer=user,
        chosen=st.session_state.get(key("themes")) or [],
        exclude=edit_id,
    )
    if not suggestions:
        return
    with st.container(horizontal=True, vertical_alignment="center", key="theme_suggestions"):
        st.markdown("**Suggested themes:**", width="content")
        for suggestion in suggestions:
            st.button(
                f"Add theme: {plain(suggestion.label)}",
                key=f"suggest_theme_{suggestion.theme_id}",
                icon=":material/add:",
                on_click=add_theme,
                args=(suggestion.theme_id,),
            )


def rest_of_form() -> None:
    choices = browse.entry_choices(kb, user)
    with st.form("draft_form", border=False, enter_to_submit=False):
        about_fields(browse.known_organisations(kb, user))
        story_fields()
        lighthouse_fields(choices)
        link_fields(choices)
        buttons(target)
    if unsaved():
        st.button(
            "Clear the form" if edit_id is None else "Undo my changes",
            type="tertiary",
            icon=":material/restart_alt:",
            on_click=st.session_state.__setitem__,
            args=(DISCARDING, True),
            help="Start again: you will be asked before your unsaved changes are discarded",
        )


problems: dict[str, list[str]] = st.session_state.get("draft_problems") or {}

st.title(f"Edit: {plain(existing.title)}" if existing else "Submit an entry")
st.caption(
    "Ten minutes is enough. Failed and stopped work helps the next team as much as success does: "
    "say what really happened. A draft needs only a title: save it whenever you stop, and send it for review "
    "when it is ready (everything is checked then)."
)
your_work()
if existing is None:
    wanted_write_ups()
if target and target.waits_for_review:
    st.info(
        "This entry is published, so your changes go to a reviewer first. Readers see the published "
        "version until a reviewer approves your edit.",
        icon=":material/rate_review:",
    )
if target and target.revision_version:
    if target.rebased:
        st.warning(
            "The published entry has changed since you proposed this edit. Open it in another tab and check "
            "your changes against it before you send them again.",
            icon=":material/difference:",
        )
    st.button("Withdraw my edit", on_click=withdraw_edit, icon=":material/delete:")
if existing and existing.review_comment:
    with st.container(border=True):
        st.markdown(f":material/rate_review: **Reviewer's comment** ({plain(existing.reviewer or 'reviewer')})")
        st.markdown(safe_markdown(existing.review_comment))
if st.session_state.get("draft_conflict"):
    st.button("Load the latest version (your changes here are lost)", on_click=reload, icon=":material/refresh:")

if ui.on_a_phone():  # stacked columns would put the duplicate check below the whole form
    error_summary()
    title_and_summary()
    similar_panel()
    rest_of_form()
else:
    form_column, side_column = st.columns([3, 2], gap="large")
    with side_column:
        similar_panel()
    with form_column:
        error_summary()
        title_and_summary()
        rest_of_form()
