"""Review queue (reviewers only): entries in review, oldest first; approve, or send back with a comment."""

from __future__ import annotations

import streamlit as st

from app_pages import resources, ui
from app_pages.ui import plain, safe_markdown
from kb import KBError, SavedNotIndexed, review
from kb.review import QueueItem

kb = resources.knowledge_base()
user = resources.current_user()


def act(action: str, entry_id: str, version: str) -> None:
    """Button callback: approve or send back, keeping any message for the card or the page."""
    errors: dict[str, str] = st.session_state.setdefault("review_errors", {})
    errors.pop(entry_id, None)
    try:
        if action == "approve":
            entry = review.approve(kb, entry_id, user, version)
            st.session_state["flash"] = f"Published: {entry.title}"
        else:
            entry = review.send_back(
                kb, entry_id, user, st.session_state.get(f"review_comment_{entry_id}", ""), version
            )
            st.session_state["flash"] = f"Sent back to the author as a draft: {entry.title}"
    except SavedNotIndexed as exc:  # done, but search shows the earlier version until the next sync
        st.session_state["flash_warning"] = str(exc)[:1].upper() + str(exc)[1:]
    except KBError as exc:
        errors[entry_id] = str(exc)[:1].upper() + str(exc)[1:]


def card(item: QueueItem) -> None:
    entry = item.entry
    with st.container(border=True):
        ui.entry_header(entry, show_status=False)
        who = "anonymous" if entry.anonymous else plain(entry.author or "unknown author")
        st.caption(f"Submitted {plain(item.submitted or 'on an unknown date')} · by {who}")
        st.markdown(safe_markdown(entry.summary))
        with st.expander("Read the whole entry"):
            for name, text in entry.sections.items():
                st.markdown(f"**{plain(name)}**")
                st.markdown(safe_markdown(text))
        error = st.session_state.get("review_errors", {}).get(entry.id)
        if error:
            st.error(plain(error), icon=":material/error:")  # may quote the entry
        with st.form(f"review_{entry.id}", border=False):
            st.text_area(
                "Comment for the author (needed to send it back)",
                key=f"review_comment_{entry.id}",
                height=80,
                placeholder="What should change before it is published?",
            )
            left, right, _ = st.columns([1, 1, 2])
            left.form_submit_button(
                "Approve and publish",
                type="primary",
                icon=":material/check:",
                on_click=act,
                args=("approve", entry.id, item.version),
                width="stretch",
            )
            right.form_submit_button(
                "Send back",
                icon=":material/undo:",
                on_click=act,
                args=("send_back", entry.id, item.version),
                width="stretch",
            )


st.title("Review queue")
if not user.is_reviewer:
    st.warning(
        "The review queue is for reviewers. Ask whoever runs Lighthouse to add 'reviewer' to your roles "
        "(KB_USER_ROLES).",
        icon=":material/lock:",
    )
    st.stop()
ui.flash()
items = review.review_queue(kb, user)
if not items:
    st.success("Nothing is waiting for review.", icon=":material/task_alt:")
    st.stop()
st.caption(
    f"{len(items)} {'entry' if len(items) == 1 else 'entries'} waiting, oldest first. Approving publishes "
    "an entry; sending it back makes it a draft again, with your comment on it."
)
for queued in items:
    card(queued)
