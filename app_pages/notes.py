"""Evidence notes on the page: an entry's notes under their own heading, its recurrence, and the
one-minute form that adds a note (on the entry page and in the submit form's duplicate check).

UI only: what a note is, who may add one and what a reader sees of it are the library's (kb.notes,
kb.access, applied by kb.evidence)."""

from __future__ import annotations

import streamlit as st

from app_pages.ui import moment, plain, safe_markdown, unlinked, without_paths
from kb import KBError, KnowledgeBase, evidence
from kb.entries import is_web_address
from kb.errors import EntryError, SavedNotIndexed
from kb.identity import User
from kb.notes import EARLIEST_YEAR, NOTE_SECTION, Note, latest_year

HEADING = NOTE_SECTION  # "Evidence from others"


def recurrence_line(kb: KnowledgeBase, entry_id: str, user: User) -> None:
    """ "Seen in 3 organisations since 2019", once anyone has added a note."""
    seen = evidence.recurrence(kb, entry_id, viewer=user)
    if seen.notes:
        count = f"{seen.notes} evidence {'note' if seen.notes == 1 else 'notes'}"
        st.markdown(f":material/repeat: **{plain(str(seen).capitalize())}** · [{count}](#evidence-from-others)")


def notes_section(kb: KnowledgeBase, entry_id: str, user: User) -> None:
    """The entry's notes, oldest first, and the form to add one."""
    st.header(HEADING, anchor="evidence-from-others")
    notes = evidence.notes(kb, entry_id, viewer=user)
    if not notes:
        st.caption("Nobody has added evidence yet. If your team met the same lesson, say so: it takes a minute.")
    for note in notes:
        with st.container(border=True):
            who = plain(note.organisation) if note.organisation else "*An organisation that asked not to be named*"
            if note.anonymous and note.organisation:
                who += " (shared anonymously)"
            st.markdown(f"**{who}**, {note.year}")
            st.markdown(safe_markdown(note.text))
            if note.link:
                st.markdown(f"<{note.link}>" if is_web_address(note.link) else unlinked(note.link))
            if evidence.may_change_note(kb, entry_id, note.id, user):
                with st.expander("Change this note", icon=":material/edit:"):
                    change_form(kb, entry_id, note, user)
                st.button(
                    "Withdraw this note",
                    key=f"withdraw_{entry_id}_{note.id}",
                    type="tertiary",
                    icon=":material/delete:",
                    on_click=_withdraw,
                    args=(kb, entry_id, note.id, user),
                    help="It is no longer shown nor searched; its text is kept in the note's history",
                )
            note_history(kb, entry_id, note.id, user)
    if evidence.may_add_note(kb, entry_id, user):
        key = f"note_{entry_id}"
        with st.expander("We hit this too: add your evidence", icon=":material/add_notes:"):
            note_form(kb, entry_id, user, key=key, full=True)
        if outcome(key):  # under the notes, where the new one now is (the form is folded away again)
            st.success("Your evidence was added. Thank you.", icon=":material/check_circle:")


def note_history(kb: KnowledgeBase, entry_id: str, note_id: str, user: User) -> None:
    """A changed note's earlier versions, as this user may read them (the library withholds the rest)."""
    versions = evidence.note_history(kb, entry_id, note_id, viewer=user)
    if not versions:
        return
    with st.expander(f"Earlier versions ({len(versions)})", icon=":material/history:"):
        for version in versions:
            old = version.note
            who = plain(old.organisation) if old.organisation else "An organisation that asked not to be named"
            st.caption(f"Replaced on {moment(version.replaced)} · {who}, {old.year}")
            st.markdown(safe_markdown(old.text))
            if old.link:
                st.markdown(unlinked(old.link))


def change_form(kb: KnowledgeBase, entry_id: str, note: Note, user: User) -> None:
    """The note's own fields, filled in; saving keeps the version it replaces in the note's history."""
    key = f"change_{entry_id}_{note.id}"
    with st.form(key, border=False, enter_to_submit=False):
        st.text_area("What happened", value=note.text, key=f"{key}_text", max_chars=2_000, height=100)
        st.number_input(
            "Year",
            key=f"{key}_year",
            min_value=EARLIEST_YEAR,
            max_value=latest_year(),
            value=min(note.year, latest_year()),
            step=1,
        )
        st.text_input("A link to more (optional)", value=note.link, key=f"{key}_link", placeholder="https://")
        st.checkbox(
            "Share anonymously",
            value=note.anonymous,
            key=f"{key}_anonymous",
            help="Readers will not see the organisation or name",
        )
        st.form_submit_button(
            "Save the change", icon=":material/save:", on_click=_change, args=(kb, entry_id, note.id, user, key)
        )
    outcome(key)


def _change(kb: KnowledgeBase, entry_id: str, note_id: str, user: User, key: str) -> None:
    state = st.session_state
    try:
        evidence.edit_note(
            kb,
            entry_id,
            note_id,
            text=state.get(f"{key}_text") or "",
            year=int(state.get(f"{key}_year") or 0),
            link=state.get(f"{key}_link") or "",
            anonymous=bool(state.get(f"{key}_anonymous")),
            viewer=user,
        )
    except EntryError as exc:
        state[f"{key}_outcome"] = refused(exc)
    except SavedNotIndexed as exc:
        state["flash_warning"] = str(exc)
    except KBError as exc:
        state[f"{key}_outcome"] = ("refused", [plain(without_paths(str(exc)))])
    else:
        state["flash"] = "Your change to the note was saved; the earlier version is kept in its history."


def _withdraw(kb: KnowledgeBase, entry_id: str, note_id: str, user: User) -> None:
    try:
        evidence.withdraw_note(kb, entry_id, note_id, viewer=user)
    except SavedNotIndexed as exc:
        st.session_state["flash_warning"] = str(exc)
    except KBError as exc:
        st.session_state["flash_warning"] = without_paths(str(exc))
    else:
        st.session_state["flash"] = "Your note was withdrawn."


def note_form(kb: KnowledgeBase, entry_id: str, user: User, *, key: str, full: bool) -> None:
    """What happened and the year (your organisation is the one you signed in with); with `full`, the
    optional link and anonymity too. The note is added before the page is drawn, so the page shows it at
    once; `outcome(key)` shows what became of it, wherever the caller wants it seen."""
    with st.form(key, border=False, enter_to_submit=False):
        st.text_area(
            "What happened to you",
            key=f"{key}_text",
            max_chars=2_000,
            height=100,
            placeholder="In a sentence or two: what you tried, and what went the same way.",
        )
        st.number_input(
            "Year", key=f"{key}_year", min_value=EARLIEST_YEAR, max_value=latest_year(), value=latest_year(), step=1
        )
        if user.organisation:
            st.caption(f"Added for {plain(user.organisation)}, as {plain(user.name)}.")
        else:
            st.text_input("Your organisation", key=f"{key}_organisation", max_chars=200)
        if full:
            st.text_input("A link to more (optional)", key=f"{key}_link", placeholder="https://")
            st.checkbox(
                "Share anonymously", key=f"{key}_anonymous", help="Readers will not see your organisation or name"
            )
        st.form_submit_button(
            "Add my evidence", icon=":material/add_notes:", on_click=_add, args=(kb, entry_id, user, key)
        )


def refused(exc: EntryError) -> tuple[str, list[str]]:
    """A refused note's outcome: one message per problem, each naming its field."""
    return "refused", [f"{plain((p.field or 'note').capitalize())}: {plain(p.message)}" for p in exc.problems]


def outcome(key: str) -> bool:
    """Show what became of the note just sent from form `key` (its problems, each naming its field); True
    when it was added."""
    result = st.session_state.pop(f"{key}_outcome", None)
    if result is None:
        return False
    kind, messages = result
    for message in messages:
        (st.warning if kind == "saved" else st.error)(message, icon=":material/error:")
    return kind in ("added", "saved")


def _add(kb: KnowledgeBase, entry_id: str, user: User, key: str) -> None:
    """The form's callback: add the note from what was typed; keep the outcome for the page to show."""
    state = st.session_state
    try:
        evidence.add_note(
            kb,
            entry_id,
            text=state.get(f"{key}_text") or "",
            year=int(state.get(f"{key}_year") or 0),
            organisation=user.organisation or state.get(f"{key}_organisation") or "",
            link=state.get(f"{key}_link") or "",
            anonymous=bool(state.get(f"{key}_anonymous")),
            viewer=user,
        )
    except EntryError as exc:
        state[f"{key}_outcome"] = refused(exc)
        return
    except SavedNotIndexed as exc:
        state[f"{key}_outcome"] = ("saved", [plain(str(exc))])
    except KBError as exc:
        state[f"{key}_outcome"] = ("refused", [plain(without_paths(str(exc)))])
        return
    else:
        state[f"{key}_outcome"] = ("added", [])
    for name in ("text", "link"):
        state[f"{key}_{name}"] = ""
    state[f"{key}_anonymous"] = False
