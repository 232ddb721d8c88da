"""Vocabulary (curators and admins): add a theme or a synonym, merge two themes, retire one; the terms nobody
recognises; the history of every change. UI only: the changes are kb.vocabulary_edits', the terms
kb.vocabulary_candidates', who may is kb.access's."""

from __future__ import annotations

import streamlit as st

from app_pages import resources, ui
from app_pages.ui import plain
from kb import KBError
from kb.access import keeps_the_vocabulary
from kb.vocabulary_candidates import Candidate, candidate_terms
from kb.vocabulary_edits import (
    add_synonym,
    add_theme,
    merge,
    retire,
    vocabulary_history,
)

kb = resources.knowledge_base()
user = resources.current_user()
ERRORS = "vocabulary_errors"  # form -> the message of its last failed change
TABS = ["Change the vocabulary", "Candidate terms", "History"]
HISTORY_SHOWN = 50


def attempt(form: str, change) -> None:
    """Run a change (a form's callback); a refusal is kept for its form, a success flashed on the page."""
    errors: dict[str, str] = st.session_state.setdefault(ERRORS, {})
    errors.pop(form, None)
    try:
        st.session_state["flash"] = change()
    except KBError as exc:
        errors[form] = ui.user_message(str(exc))


def value(name: str) -> str:
    return str(st.session_state.get(name) or "")


def on_add_theme() -> None:
    def change() -> str:
        theme = add_theme(
            kb, value("new_theme_id"), value("new_theme_label"), value("new_theme_definition"), viewer=user
        )
        for name in ("new_theme_id", "new_theme_label", "new_theme_definition"):
            st.session_state[name] = ""
        return f"Added the theme “{theme.label}” ({theme.id})."

    attempt("add_theme", change)


def on_add_synonym() -> None:
    def change() -> str:
        theme = add_synonym(kb, value("synonym_theme"), value("synonym_text"), viewer=user)
        st.session_state["synonym_text"] = ""
        return f"“{theme.synonyms[-1]}” now names the theme “{theme.label}”. Search uses it at once."

    attempt("add_synonym", change)


def on_merge() -> None:
    def change() -> str:
        result = merge(kb, value("merge_from"), value("merge_into"), viewer=user)
        said = f"Merged “{result.source}” into “{result.target}”."
        if result.proposed:
            n = len(result.proposed)
            said += f" {n} {'entry waits' if n == 1 else 'entries wait'} in the review queue to be retagged."
        if result.skipped_because:
            said += " Not retagged: " + "; ".join(f"{i} ({why})" for i, why in result.skipped_because) + "."
        return said

    attempt("merge", change)


def on_retire() -> None:
    def change() -> str:
        theme = retire(kb, value("retire_theme"), value("retire_reason"), viewer=user)
        st.session_state["retire_reason"] = ""
        return f"Retired the theme “{theme.label}”. Forms and filters no longer offer it."

    attempt("retire", change)


def on_candidate(name: str, candidate: Candidate, as_synonym: bool) -> None:
    def change() -> str:
        if as_synonym:
            theme = add_synonym(kb, value(f"candidate_theme_{name}"), candidate.term, viewer=user)
            return f"“{candidate.term}” now names the theme “{theme.label}”."
        label = candidate.term[:1].upper() + candidate.term[1:]
        theme = add_theme(kb, "", label, value(f"candidate_definition_{name}"), viewer=user)
        return f"Added the theme “{theme.label}” ({theme.id})."

    attempt(f"candidate_{name}", change)


def error_for(form: str) -> None:
    message = st.session_state.get(ERRORS, {}).get(form)
    if message:
        st.error(plain(message), icon=":material/error:")


def theme_choice(label: str, key: str, themes: list[str], names: dict[str, str], help: str) -> None:
    st.selectbox(
        label,
        themes,
        key=key,
        format_func=lambda t: names.get(t, t),
        index=None,
        placeholder="Choose a theme",
        help=help,
    )


def changes() -> None:
    vocabulary = kb.vocabulary
    offered = [t.id for t in vocabulary.offered]
    names = {t.id: f"{t.label} ({t.id})" for t in vocabulary.themes}
    # Row by row, so that on a phone the forms come in the same order: add, add a synonym, merge, retire.
    left, right = st.columns(2, gap="large")
    with left:
        st.header("Add a theme", anchor=False)
        with st.form("add_theme_form"):
            st.text_input("Label", key="new_theme_label", placeholder="e.g. Open data", max_chars=100)
            st.text_input(
                "Id (optional)",
                key="new_theme_id",
                placeholder="made from the label",
                help="Lowercase letters, digits and hyphens",
            )
            st.text_area(
                "Definition", key="new_theme_definition", height=80, placeholder="What the theme covers, in a sentence"
            )
            st.form_submit_button("Add the theme", icon=":material/add:", on_click=on_add_theme)
        error_for("add_theme")
    with right:
        st.header("Add a synonym", anchor=False)
        with st.form("add_synonym_form"):
            theme_choice("Theme", "synonym_theme", offered, names, "The theme the new name belongs to")
            st.text_input("Synonym", key="synonym_text", placeholder="e.g. DSA", max_chars=100)
            st.form_submit_button("Add the synonym", icon=":material/add:", on_click=on_add_synonym)
        error_for("add_synonym")
    left, right = st.columns(2, gap="large")
    with left:
        st.header("Merge two themes", anchor=False)
        with st.form("merge_form"):
            theme_choice("Merge this theme", "merge_from", offered, names, "Its names become synonyms of the other")
            theme_choice("Into this theme", "merge_into", offered, names, "The theme that stays")
            st.caption("Each entry tagged with the first theme gets a retag proposed in the review queue.")
            st.form_submit_button("Merge", icon=":material/merge:", on_click=on_merge)
        error_for("merge")
    with right:
        st.header("Retire a theme", anchor=False)
        with st.form("retire_form"):
            theme_choice("Theme to retire", "retire_theme", offered, names, "Entries naming it keep it, with a warning")
            st.text_input("Why, and what to use instead", key="retire_reason", max_chars=300)
            st.form_submit_button("Retire", icon=":material/archive:", on_click=on_retire)
        error_for("retire")
    retired = [t for t in vocabulary.themes if t.retired]
    if retired:
        st.caption(
            "Retired: "
            + "; ".join(f"{plain(t.label)} ({plain(t.retired_reason or 'no reason given')})" for t in retired)
        )


def candidates() -> None:
    st.caption(
        "Terms nobody recognises: themes written in entries that the vocabulary doesn't know, and searches "
        "that named no theme and found no close result. Add one as a synonym of a theme, or as a new theme."
    )
    found = candidate_terms(kb, user)
    if found.searches_problem:
        st.warning(f"Searches are left out: {ui.message_text(found.searches_problem)}", icon=":material/warning:")
    if not found.items:
        st.caption("No candidate terms: every theme written in entries and every search is recognised.")
        return
    vocabulary = kb.vocabulary
    offered = [t.id for t in vocabulary.offered]
    names = {t.id: f"{t.label} ({t.id})" for t in vocabulary.themes}
    for candidate in found.items:
        name = candidate.suggested_id  # keys by the term, so a choice stays with its term as the list changes
        with st.container(border=True):
            st.markdown(f"**{plain(candidate.term)}**")
            for entry_id, title in candidate.entries:
                ui.entry_link(entry_id, title, icon=":material/article:", note="written as a theme")
            for search in candidate.searches:
                times = f"{search.searches} time{'s' if search.searches != 1 else ''}"
                st.caption(
                    f"Searched {times}, {search.results} results, none close · last {search.last_day.isoformat()}"
                )
            with st.form(f"candidate_form_{name}", border=False):
                synonym, new = st.columns(2, gap="medium")
                with synonym:
                    theme_choice("Synonym of", f"candidate_theme_{name}", offered, names, "The theme this term names")
                    st.form_submit_button(
                        "Add as a synonym",
                        icon=":material/add_link:",
                        on_click=on_candidate,
                        args=(name, candidate, True),
                    )
                with new:
                    st.text_input(
                        "Definition, as a new theme",
                        key=f"candidate_definition_{name}",
                        placeholder="What the theme covers, in a sentence",
                        max_chars=500,
                    )
                    st.form_submit_button(
                        "Add as a new theme",
                        icon=":material/add:",
                        on_click=on_candidate,
                        args=(name, candidate, False),
                    )
            error_for(f"candidate_{name}")


def history() -> None:
    changes_made = vocabulary_history(kb, user)
    if not changes_made:
        st.caption("No change has been made in Lighthouse yet.")
        return
    for change in changes_made[:HISTORY_SHOWN]:
        with st.container(border=True):
            st.markdown(f"**{plain(change.what or 'A change')}**")
            st.caption(f"{plain(change.when.replace('T', ' ')[:16])} UTC · by {plain(change.who or 'someone')}")
            with st.expander("The file before this change"):
                st.code(change.previous or "(there was no file)", language="yaml")


st.title("Vocabulary")
if not keeps_the_vocabulary(user):
    st.warning(
        "The vocabulary is kept by curators. Ask whoever runs Lighthouse to make you one.", icon=":material/lock:"
    )
    st.stop()
st.caption(
    "The shared themes and their synonyms, used by search, filters and forms. Each change is written to "
    "entries/vocabulary.yaml with its history, and search uses it at once."
)
ui.flash()
change_tab, candidates_tab, history_tab = st.tabs(TABS)
with change_tab:
    changes()
with candidates_tab:
    candidates()
with history_tab:
    history()
