"""Review queue (reviewers only): entries in review, oldest first; approve, or send back with a comment."""

from __future__ import annotations

import streamlit as st

from app_pages import resources, ui
from app_pages.ui import plain, safe_markdown
from kb import KBError, SavedNotIndexed, review
from kb.access import reviews
from kb.review import QueueItem

kb = resources.knowledge_base()
user = resources.current_user()


def act(action: str, item: QueueItem) -> None:
    """Button callback: approve or send back, keeping any message for the card or the page."""
    entry_id, key = item.entry.id, card_key(item)
    errors: dict[str, str] = st.session_state.setdefault("review_errors", {})
    errors.pop(key, None)
    try:
        if action == "approve":
            entry = review.approve(kb, entry_id, user, item.version, revision=item.revision)
            done = "The edit is approved and published" if item.revision else "Published"
            st.session_state["flash"] = f"{done}: {entry.title}"  # escaped where it is shown
        else:
            comment = st.session_state.get(f"review_comment_{key}", "")
            entry = review.send_back(kb, entry_id, user, comment, item.version, revision=item.revision)
            whom = "to the person who proposed the edit" if item.revision else "to the author as a draft"
            st.session_state["flash"] = f"Sent back {whom}: {entry.title}"
    except SavedNotIndexed:  # done, but search shows the earlier version until the index catches up
        st.session_state["flash_warning"] = (
            "Done. Search will show the new version a little later, once the index has caught up."
        )
    except KBError as exc:
        errors[key] = ui.user_message(str(exc))


def card_key(item: QueueItem) -> str:
    """One key per card: an entry and an edit of it can wait side by side."""
    return f"{item.entry.id}{'-edit' if item.revision else ''}"


def card(item: QueueItem) -> None:
    entry, key = item.entry, card_key(item)
    with st.container(border=True):
        ui.entry_header(entry, show_status=False)
        if item.revision:
            st.caption(
                f"An edit of a published entry, proposed by {plain(entry.revised_by or 'someone')}. "
                "Readers see the published version until you approve it."
            )
        who = "anonymous" if entry.anonymous else plain(entry.author or "unknown author")
        st.caption(f"Submitted {plain(item.submitted or 'on an unknown date')} · by {who}")
        st.markdown(safe_markdown(entry.summary))
        with st.expander("Read the whole entry"):
            for name, text in entry.sections.items():
                st.markdown(f"**{plain(name)}**")
                st.markdown(safe_markdown(text))
        error = st.session_state.get("review_errors", {}).get(key)
        if error:
            st.error(plain(error), icon=":material/error:")  # may quote the entry
        if not item.may_review:
            st.info("This is your own work, so another reviewer must review it.", icon=":material/group:")
            return
        with st.form(f"review_{key}", border=False):
            st.text_area(
                "Comment for the author (needed to send it back)",
                key=f"review_comment_{key}",
                height=80,
                placeholder="What should change before it is published?",
            )
            left, right, _ = st.columns([1, 1, 2])
            left.form_submit_button(
                "Approve and publish",
                type="primary",
                icon=":material/check:",
                on_click=act,
                args=("approve", item),
                width="stretch",
            )
            right.form_submit_button(
                "Send back",
                icon=":material/undo:",
                on_click=act,
                args=("send_back", item),
                width="stretch",
            )


st.title("Review queue")
if not reviews(user):
    st.warning(
        "The review queue is for reviewers. Ask whoever runs Lighthouse to make you a reviewer.",
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
