"""Wanted write-ups (kb.wanted): a file beside the entries that curators add to and close, read with a
clear message for each problem, never a traceback."""

from __future__ import annotations

import pytest

from kb.errors import Forbidden, KBError
from kb.identity import User
from kb.wanted import WANTED_FILE, add_wanted, close_wanted, load_wanted

CURATOR = User("Cleo Curator", "Beta Agency", ("curator",), local=False)
CONTRIBUTOR = User("Carl Contributor", "Beta Agency", ("contributor", "reviewer"), local=False)


def test_a_curator_adds_a_request_once_and_closes_it(tmp_path):
    made = add_wanted(tmp_path, "Ferry passenger data sharing", "ferry passenger data", CURATOR)
    again = add_wanted(tmp_path, "Ferry data, again", "ferry passenger data", CURATOR)
    other = add_wanted(tmp_path, "Ferry passenger data sharing", "ferries", CURATOR)
    assert again == made and other.id == "ferry-passenger-data-sharing-2"
    wanted = load_wanted(tmp_path)
    assert wanted.problems == [] and {w.id for w in wanted.open} == {made.id, other.id}
    assert wanted.for_query("ferry passenger data") == made
    closed = close_wanted(tmp_path, made.id, CURATOR)
    assert closed.closed and not closed.open
    assert [w.id for w in load_wanted(tmp_path).open] == [other.id]
    assert "ferry passenger data" in (tmp_path / WANTED_FILE).read_text()  # the file keeps it, closed


def test_only_curators_change_the_requests(tmp_path):
    with pytest.raises(Forbidden):
        add_wanted(tmp_path, "Anything", "anything", CONTRIBUTOR)
    made = add_wanted(tmp_path, "Anything", "anything", None)  # the operator
    with pytest.raises(Forbidden):
        close_wanted(tmp_path, made.id, CONTRIBUTOR)
    with pytest.raises(KBError, match="no wanted request"):
        close_wanted(tmp_path, "no-such-request", CURATOR)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("wanted: [unclosed\n", "is not valid YAML at line"),
        ("wanted:\n  - title: A\n    title: B\n", "the key 'title' is given twice"),
        ("- just a list\n", "must hold 'wanted:' followed by a list"),
        ("wanted:\n  - query: no title\n", "each request needs a title"),
        ("wanted:\n  - title: A\n    added: last week\n", "added must be a date"),
        ("wanted:\n  - {id: a, title: A}\n  - {id: a, title: B}\n", "the id 'a' is given twice"),
    ],
)
def test_a_bad_file_is_a_clear_problem(tmp_path, text, message):
    (tmp_path / WANTED_FILE).write_text(text)
    wanted = load_wanted(tmp_path)
    assert any(message in str(p) for p in wanted.problems), wanted.problems
    with pytest.raises(KBError, match="fix them first"):
        add_wanted(tmp_path, "Something new", "something", CURATOR)


def test_kb_check_reports_the_file_s_problems(kb):
    (kb.settings.entries_dir / WANTED_FILE).write_text("wanted:\n  - query: no title\n")
    assert any(p.source == WANTED_FILE and "needs a title" in p.message for p in kb.check())
