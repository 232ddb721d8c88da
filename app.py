"""Lighthouse web app: the router. Run with `streamlit run app.py`.

It sets the page config, draws the shared sidebar and runs the page chosen in the navigation. Each page
lives in app_pages/ and calls the `kb` library; errors become friendly messages, never a traceback.
"""

from __future__ import annotations

import logging
from pathlib import Path

import streamlit as st

from app_pages import resources, ui
from kb import KBError
from kb.access import keeps_the_vocabulary, reviews

# A local icon: a ":material/...:" page icon makes the browser fetch the favicon from Google.
st.set_page_config(
    page_title=ui.APP_NAME, page_icon=str(Path(__file__).parent / "app_pages" / "favicon.png"), layout="wide"
)
log = logging.getLogger("lighthouse.app")

visitor = resources.visitor()
user = visitor.user
search = ui.page(ui.SEARCH_PAGE, "Search", ":material/search:", default=True)
# One flat list: Streamlit draws a section's header inside the navigation's list, which breaks the list
# for a screen reader (axe-core's "list" and "listitem" rules).
pages = [
    search,
    ui.page(ui.SHOWCASE_PAGE, "Lighthouse showcase", ":material/lightbulb:"),
    ui.page(ui.INSIGHTS_PAGE, "Insights", ":material/insights:"),
    ui.page(ui.PEOPLE_PAGE, "Whom to ask", ":material/groups:"),
    ui.page(ui.SOURCES_PAGE, "Data sources", ":material/dataset:"),
    ui.page(ui.GLOSSARY_PAGE, "Glossary", ":material/menu_book:"),
    ui.page(ui.ENTRY_PAGE, "Entry", ":material/article:", visibility="hidden"),
    ui.page(ui.ORGANISATION_PAGE, "Organisation", ":material/domain:", visibility="hidden"),
    ui.page(ui.SUBMIT_PAGE, "Submit an entry", ":material/edit_note:"),
    ui.page(ui.FOLLOWING_PAGE, "Following", ":material/notifications:"),
]
if reviews(user):
    pages.append(ui.page(ui.REVIEW_PAGE, "Review queue", ":material/fact_check:"))
if keeps_the_vocabulary(user):
    pages.append(ui.page(ui.VOCABULARY_PAGE, "Vocabulary", ":material/menu_book:"))
page = st.navigation(pages)

try:
    resources.loaded()
except KBError as exc:
    log.error("the knowledge base could not be opened: %s", exc)
    st.error(f"The knowledge base could not be opened: {ui.message_text(str(exc))}", icon=":material/error:")
    st.stop()
except Exception:
    log.exception("the knowledge base could not be opened")
    st.error(
        "The knowledge base could not be opened. Check the KB_* settings and run `python -m kb check`.",
        icon=":material/error:",
    )
    st.stop()

try:
    ui.styles()
    ui.router_tab_title(page.title, search=page is search)  # a page may say more (an entry's title)
    ui.sidebar(visitor)
    page.run()
except KBError as exc:
    st.error(ui.message_text(str(exc)), icon=":material/error:")  # may quote a URL's id
except Exception:
    log.exception("page %s failed", page.title)
    st.error(
        "Something went wrong on this page. Try again; if it keeps happening, tell the team that runs "
        "Lighthouse what you were doing.",
        icon=":material/error:",
    )
