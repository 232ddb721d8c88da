"""Chroma's calls and this process's own sqlite3 reads of Chroma's file take turns (kb.chroma_sharing):
closing a read must never drop the locks of a Chroma transaction under way in the same process."""

import threading
from contextlib import AbstractContextManager

import pytest

from kb.chroma_checks import SYNC, check_store, embedded_path, stored_vectors
from kb.chroma_sharing import TurnMisuse, chroma_call, own_read

SETTLE = 0.3  # long enough for a thread that is not made to wait to finish its step


class Holder:
    """A thread that enters a context and stays inside until released."""

    def __init__(self, context: AbstractContextManager):
        self.inside, self.release = threading.Event(), threading.Event()
        self.thread = threading.Thread(target=self._run, args=(context,), daemon=True)
        self.thread.start()
        assert self.inside.wait(5), "the holder never got in"

    def _run(self, context):
        with context:
            self.inside.set()
            self.release.wait(10)

    def let_go(self):
        self.release.set()
        self.thread.join(5)


def in_thread(work) -> tuple[threading.Thread, threading.Event, list]:
    done, errors = threading.Event(), []

    def run():
        try:
            work()
        except BaseException as exc:  # noqa: BLE001 - handed back to the test
            errors.append(exc)
        done.set()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, done, errors


def a_read():
    with own_read():
        pass


def a_call():
    with chroma_call():
        pass


def test_a_read_waits_for_the_chroma_calls_under_way():
    call = Holder(chroma_call())
    _, read_done, errors = in_thread(a_read)
    assert not read_done.wait(SETTLE), "the read went ahead during a Chroma call"
    call.let_go()
    assert read_done.wait(5) and not errors


def test_a_chroma_call_waits_while_the_file_is_read():
    read = Holder(own_read())

    _, call_done, errors = in_thread(a_call)
    assert not call_done.wait(SETTLE), "a Chroma call went ahead during a read of its file"
    read.let_go()
    assert call_done.wait(5) and not errors


def test_calls_run_at_once_and_a_call_inside_a_call_never_waits_for_a_waiting_read():
    other = Holder(chroma_call())  # a second call at the same time is not made to wait
    outer_inside, waiting_read_started, nested_done = threading.Event(), threading.Event(), threading.Event()
    errors: list[BaseException] = []

    def outer_then_nested():
        with chroma_call():
            outer_inside.set()
            waiting_read_started.wait(5)
            try:
                with chroma_call():  # inside its own call: never waits for the read
                    pass
            except BaseException as exc:  # noqa: BLE001 - handed back to the test
                errors.append(exc)
            nested_done.set()

    outer = threading.Thread(target=outer_then_nested, daemon=True)
    outer.start()
    assert outer_inside.wait(5)
    _, read_done, _ = in_thread(a_read)
    assert not read_done.wait(SETTLE)
    waiting_read_started.set()
    assert nested_done.wait(5) and not errors, "a call inside a call waited for a read that was only waiting"
    outer.join(5)
    other.let_go()
    assert read_done.wait(5)


def test_a_waiting_read_gets_its_turn_while_calls_keep_coming():
    """New calls wait for a read that is waiting, so overlapping searches cannot keep a check out."""
    first = Holder(chroma_call())
    _, read_done, _ = in_thread(a_read)
    assert not read_done.wait(SETTLE)

    _, late_call_done, _ = in_thread(a_call)
    assert not late_call_done.wait(SETTLE), "a new call went ahead of a waiting read"
    first.let_go()
    assert read_done.wait(5) and late_call_done.wait(5)


def test_a_read_inside_a_call_or_a_call_inside_a_read_on_one_thread_raises_rather_than_hangs():
    with chroma_call(), pytest.raises(TurnMisuse, match="inside a Chroma call"), own_read():
        pass
    with own_read(), pytest.raises(TurnMisuse, match="inside a read"), chroma_call():
        pass
    with own_read(), own_read():  # a read inside a read is the same turn
        pass


def test_the_index_and_the_store_checks_take_their_turns(kb):
    """Wired in: a call through the vector index waits for a read of the file, and the checks that read
    the file with sqlite3 (check_store, stored_vectors) wait for a Chroma call."""
    kb.index.count()  # opened before the turns are tested
    store = embedded_path(kb.settings.index_dir)

    read = Holder(own_read())
    _, counted, errors = in_thread(kb.index.count)
    assert not counted.wait(SETTLE), "the vector index called Chroma during a read of its file"
    read.let_go()
    assert counted.wait(5) and not errors

    for check in (
        lambda: check_store(store, level=SYNC),
        lambda: list(stored_vectors(store, kb.parts.collection_names[0])),
    ):
        call = Holder(chroma_call())
        _, checked, errors = in_thread(check)
        assert not checked.wait(SETTLE), "Chroma's file was read with sqlite3 during a Chroma call"
        call.let_go()
        assert checked.wait(30) and not errors


def test_pages_from_the_index_take_a_turn_each_so_the_caller_may_read_the_file_between_them(kb):
    store = embedded_path(kb.settings.index_dir)
    pages = kb.index.entry_pages()
    first = next(pages)
    assert first, "the sample index has entries"
    check_store(store)  # between two pages: no call under way, no TurnMisuse, no wait
    for _ in pages:
        break  # the caller stops early: nothing is left holding a turn
    pages.close()
    _, read_done, errors = in_thread(a_read)
    assert read_done.wait(5) and not errors
