"""Glossary: every theme of the shared vocabulary with its definition, its other names, how many entries
and organisations use it (among the entries this visitor may see), and a link to its search."""

from __future__ import annotations

import streamlit as st

from app_pages import resources, ui
from app_pages.ui import plain
from kb.glossary import GlossaryTerm, glossary

kb = resources.knowledge_base()
user = resources.current_user()


def count(n: int, one: str, many: str) -> str:
    return f"{n} {one if n == 1 else many}"


st.title("Glossary")
st.caption(
    "The common language of Lighthouse: the themes entries are filed under, what each means and the other "
    "names people use for it. Searching for any of those names finds the theme's entries. Counts are of the "
    "published entries you can see."
)
terms = glossary(kb, user)
if not terms:
    st.info("The vocabulary has no themes yet.", icon=":material/info:")
    st.stop()


def show(term: GlossaryTerm) -> None:
    with st.container(border=True):
        st.header(plain(term.label), anchor=term.theme_id)
        if term.definition:
            st.markdown(plain(term.definition))
        if term.synonyms:
            st.markdown("**Also called:** " + ", ".join(plain(s) for s in term.synonyms))
        st.caption(
            f"{count(term.entries, 'entry', 'entries')} · {count(term.organisations, 'organisation', 'organisations')}"
        )
        if term.entries:
            st.page_link(
                ui.SEARCH_PAGE,
                label=f"Search entries on {plain(term.label)}",
                query_params=term.search().to_params(),
                icon=":material/search:",
            )


# Two columns on a wide screen, the first half of the alphabet in the first: read in alphabetical order.
half = len(terms) if ui.on_a_phone() else (len(terms) + 1) // 2
for column, part in zip(st.columns(2 if half < len(terms) else 1), (terms[:half], terms[half:]), strict=False):
    with column:
        for term in part:
            show(term)
