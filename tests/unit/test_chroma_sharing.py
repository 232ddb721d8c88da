"""Chroma's calls and this process's own sqlite3 reads of Chroma's file take turns (kb.chroma_sharing):
closing a read must never drop the locks of a Chroma transaction under way in the same process."""

import threading
from contextlib import AbstractContextManager

import pytest

from kb.chroma_checks import SYNC, check_store, embedded_path, stored_vectors
from kb.chroma_sharing import chroma_call, own_read

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


def test_a_read_waits_for_the_chroma_calls_under_way():
    call = Holder(chroma_call())
    _, read_done, errors = in_thread(a_read)
    assert not read_done.wait(SETTLE), "the read went ahead during a Chroma call"
    call.let_go()
    assert read_done.wait(5) and not errors


def test_a_chroma_call_waits_while_the_file_is_read():
    read = Holder(own_read())

    def call():
        with chroma_call():
            pass

    _, call_done, errors = in_thread(call)
    assert not call_done.wait(SETTLE), "a Chroma call went ahead during a read of its file"
    read.let_go()
    assert call_done.wait(5) and not errors


def test_calls_run_at_once_and_a_call_inside_a_call_never_waits_for_a_waiting_read():
    outer = Holder(chroma_call())
    other = Holder(chroma_call())  # a second call at the same time: not made to wait
    _, read_done, _ = in_thread(a_read)
    assert not read_done.wait(SETTLE)

    def nested():
        with chroma_call(), chroma_call():
            pass

    _, nested_done, errors = in_thread(nested)
    assert nested_done.wait(5) and not errors, "a call waited for a read that was only waiting"
    outer.let_go()
    other.let_go()
    assert read_done.wait(5)


def test_a_read_asked_for_inside_a_chroma_call_on_the_same_thread_raises_rather_than_hangs():
    with chroma_call(), pytest.raises(RuntimeError, match="inside a Chroma call"), own_read():
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
