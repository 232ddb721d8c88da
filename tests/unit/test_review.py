"""The review queue: oldest first, approve, send back with a comment, and refusing stale versions."""

from __future__ import annotations

import pytest

from kb import Conflict, Filters, KBError, review
from kb.identity import User

REVIEWER = User("Rita Reviewer", "Cabinet Digital Office", ("contributor", "reviewer"))


def test_review_queue_is_oldest_first(kb):
    queue = review.review_queue(kb)
    assert [q.entry.id for q in queue] == [
        "teacher-supply-model-shared-with-schools",
        "grading-evidence-in-policy-submissions",
    ]
    assert all(q.version == kb.store.version(q.entry.id) for q in queue)


def test_approve_publishes(kb):
    item = review.review_queue(kb)[0]
    review.approve(kb, item.entry.id, REVIEWER, item.version)
    entry = kb.get(item.entry.id)
    assert (entry.status, entry.reviewer, entry.review_comment) == ("published", "Rita Reviewer", "")
    assert item.entry.id not in [q.entry.id for q in review.review_queue(kb)]
    assert item.entry.id in [h.id for h in kb.search(entry.title, filters=Filters.of(status="published"))]


def test_send_back_keeps_the_comment(kb):
    item = review.review_queue(kb)[0]
    review.send_back(kb, item.entry.id, REVIEWER, "  Add the evaluation numbers. ", item.version)
    entry = kb.get(item.entry.id)
    assert (entry.status, entry.review_comment) == ("draft", "Add the evaluation numbers.")
    text = kb.store.path_for(entry.id).read_text()
    assert "review_comment: Add the evaluation numbers." in text


def test_send_back_needs_a_comment(kb):
    item = review.review_queue(kb)[0]
    with pytest.raises(KBError, match="comment"):
        review.send_back(kb, item.entry.id, REVIEWER, "   ", item.version)
    assert kb.get(item.entry.id).status == "in-review"


def test_review_refuses_a_stale_version_and_a_handled_entry(kb):
    item = review.review_queue(kb)[0]
    path = kb.store.path_for(item.entry.id)
    path.write_text(path.read_text().replace("summary:", "summary: Changed.", 1))
    with pytest.raises(Conflict):
        review.approve(kb, item.entry.id, REVIEWER, item.version)
    review.approve(kb, item.entry.id, REVIEWER)
    with pytest.raises(KBError, match="no longer in review"):
        review.approve(kb, item.entry.id, REVIEWER)
