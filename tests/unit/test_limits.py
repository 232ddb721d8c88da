"""Request allowances (kb.api.limits): the token bucket rule against a clock the test turns, one allowance
for every process on a database (SQLite and PostgreSQL), taken exactly under concurrency, forgotten when
full again, and a database that does not answer turning into a per-process limit, never an error."""

from __future__ import annotations

import logging
import threading

import pytest
from sqlalchemy import func, select

from kb.api import limits
from kb.api.limits import Rule, SharedBucket, TokenBucket
from kb.database import Database
from kb.database.tables import RequestAllowance
from kb.errors import KBError
from tests.servers import free_port


@pytest.fixture
def database(database_url):
    opened = Database(database_url)
    opened.migrate()
    yield opened
    opened.close()


@pytest.fixture
def replica(database_url):
    """A limiter as one API replica has it: its own connection pool on the shared database."""
    pools: list[Database] = []

    def start(per_minute: float = 60, burst: int = 2) -> SharedBucket:
        pools.append(Database(database_url))
        return SharedBucket(pools[-1], per_minute, burst)

    yield start
    for pool in pools:
        pool.close()


def stored(database: Database) -> int:
    with database.session() as session:
        return session.scalar(select(func.count()).select_from(RequestAllowance)) or 0


# --------------------------------------------------------------------------- the rule


def test_the_rule_gives_the_burst_then_refills_at_its_rate_and_says_how_long_to_wait():
    rule = Rule(per_minute=60, burst=2)
    assert rule.take(2.0, 0.0) == (1.0, 0.0)
    assert rule.take(0.0, 0.0) == (0.0, pytest.approx(1.0))
    assert rule.take(0.0, 0.25) == (0.25, pytest.approx(0.75))
    assert rule.take(0.0, 1.0) == (0.0, 0.0)
    assert rule.take(1.5, 3600.0) == (1.0, 0.0)  # never more than the burst
    assert rule.take(0.5, -30.0) == (0.5, pytest.approx(0.5))  # a clock that went back gives nothing
    assert Rule(per_minute=0, burst=1).take(0.0, 10.0) == (0.0, 60.0)
    assert rule.full_after == 2.0


def test_the_shared_bucket_follows_the_rule_on_a_clock_the_test_turns(database):
    now = [1_000.0]
    bucket = SharedBucket(database, per_minute=60, burst=2, clock=lambda: now[0])
    assert [bucket.take("k"), bucket.take("k")] == [0.0, 0.0]
    assert bucket.take("k") == pytest.approx(1.0)
    now[0] += 0.5
    assert bucket.take("k") == pytest.approx(0.5)
    now[0] += 0.5
    assert bucket.take("k") == 0.0
    assert bucket.take("other") == 0.0  # each key its own allowance
    now[0] += 10
    assert [bucket.take("k") for _ in range(3)] == [0.0, 0.0, pytest.approx(1.0)]  # refilled to the burst only


def test_no_key_is_stored_as_it_is(database):
    SharedBucket(database, 60, 2).take("token:Ann One")
    with database.session() as session:
        (key,) = session.scalars(select(RequestAllowance.key)).all()
    assert "Ann" not in key and len(key) == 64


# --------------------------------------------------------------------------- one allowance for all replicas


def test_two_replicas_on_one_database_share_one_allowance(database, replica):
    a, b = replica(burst=5), replica(burst=5)
    taken = [(a if i % 2 else b).take("token:ann", now=50.0) for i in range(10)]
    assert sum(wait == 0 for wait in taken) == 5 and taken[:5] == [0.0] * 5
    assert b.take("token:ann", now=51.0) == 0.0 and a.take("token:ann", now=51.0) > 0  # one refilled, for either


def test_a_replica_whose_clock_is_behind_gives_no_more(database, replica):
    ahead, behind = replica(burst=2), replica(burst=2)
    assert [ahead.take("k", now=100.0), ahead.take("k", now=100.0)] == [0.0, 0.0]
    assert behind.take("k", now=90.0) > 0  # ten seconds behind: not ten seconds of refill
    assert ahead.take("k", now=100.0) > 0


def test_many_threads_taking_at_once_never_get_more_than_the_allowance(database, replica, caplog):
    replicas = [replica(per_minute=1, burst=25) for _ in range(2)]
    granted: list[float] = []
    start = threading.Barrier(8)

    def hammer(limiter: SharedBucket) -> None:
        start.wait()
        for _ in range(10):
            wait = limiter.take("client:10.0.0.1", now=500.0)
            granted.append(wait)

    threads = [threading.Thread(target=hammer, args=(replicas[i % 2],)) for i in range(8)]
    with caplog.at_level(logging.WARNING, logger="lighthouse.api"):
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert len(granted) == 80
    assert sum(wait == 0 for wait in granted) == 25
    assert not [r for r in caplog.records if r.name == "lighthouse.api"], "every take went through the database"


# --------------------------------------------------------------------------- forgetting


def test_allowances_full_again_are_forgotten(database, monkeypatch):
    bucket = SharedBucket(database, per_minute=60, burst=2)  # full again 2 s after its last take
    bucket.take("old", now=1_000.0)
    bucket.take("recent", now=1_001.5)
    assert stored(database) == 2
    assert bucket.forget_idle(database, now=1_003.0) == 1
    assert stored(database) == 1
    assert bucket.take("old", now=1_003.0) == 0.0  # a forgotten allowance is a full one

    monkeypatch.setattr(limits, "FORGET_EVERY_SECONDS", 60.0)
    for i in range(5):
        bucket.take(f"visitor {i}", now=2_000.0)
    bucket.take("late", now=2_100.0)  # a take a while later forgets on the way
    assert stored(database) == 1


# --------------------------------------------------------------------------- a database that does not answer


def test_a_database_that_does_not_answer_limits_per_process_and_warns_once(caplog):
    down = Database(f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/lighthouse")
    bucket = SharedBucket(down, per_minute=60, burst=3)
    with caplog.at_level(logging.WARNING, logger="lighthouse.api"):
        taken = [bucket.take("token:ann", now=10.0) for _ in range(5)]
    assert taken[:3] == [0.0, 0.0, 0.0] and taken[3] == pytest.approx(1.0)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "per process" in warnings[0]
    down.close()


def test_the_shared_allowance_is_used_again_when_the_database_answers(database, caplog, monkeypatch):
    monkeypatch.setattr(limits, "RETRY_SECONDS", 0.0)
    answering = [False]

    def the_database() -> Database:
        if not answering[0]:
            raise KBError("cannot open the database: connection refused")
        return database

    bucket = SharedBucket(the_database, per_minute=60, burst=2)
    with caplog.at_level(logging.WARNING, logger="lighthouse.api"):
        assert bucket.take("k", now=5.0) == 0.0  # from this process's own bucket
        answering[0] = True
        assert bucket.take("k", now=5.0) == 0.0
        assert bucket.take("k", now=5.0) == 0.0
        assert bucket.take("k", now=5.0) > 0
    assert stored(database) == 1
    assert [r.getMessage() for r in caplog.records][-1] == "request rates are shared through the database again"


def test_the_in_memory_bucket_forgets_full_buckets_past_its_size(monkeypatch):
    monkeypatch.setattr(limits, "MAX_KEYS_IN_MEMORY", 3)
    bucket = TokenBucket(per_minute=60, burst=2)
    for key in "abcd":
        bucket.take(key, now=0.0)
    bucket.take("e", now=10.0)
    assert bucket.keys_held == {"e"}
