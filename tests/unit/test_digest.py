"""Digests sent through a real SMTP server on 127.0.0.1 (aiosmtpd): what each person gets, never what they
may not see, tried again after a failing server, and never sent twice (on SQLite and on PostgreSQL)."""

from __future__ import annotations

import json
import threading
from dataclasses import replace

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from kb import KnowledgeBase
from kb.cli import cli
from kb.database import open_database
from kb.database.tables import Digest
from kb.digest import send_digests
from kb.entries import Lighthouse
from kb.errors import KBError
from kb.following import Following
from kb.identity import User
from kb.signin import Access
from tests.following import ADA, BO, THEME, MailServer, body, later, write_entry

ACCESS = Access()  # everyone signed in is a contributor


@pytest.fixture
def mail_server():
    server = MailServer().start()
    yield server
    server.stop()


@pytest.fixture
def state(settings, fake_embedder, database_url):
    kb = KnowledgeBase(replace(settings, database=database_url), embedder=fake_embedder)
    kb.sync()
    database = open_database(kb.settings)
    return kb, database, Following(database)


def run(kb, database, server, now, **options):
    return send_digests(kb, database, server.settings(), now=now, access=ACCESS, retry_delay=0, **options)


def test_each_person_gets_what_is_new_in_what_they_follow_and_nothing_they_may_not_see(state, mail_server):
    kb, database, following = state
    for person in (ADA, BO):
        following.follow(person, "theme", THEME)
    following.set_frequency(BO, "daily")
    public = write_entry(kb, "Agreements <b>signed</b> & filed", themes=[THEME], anonymous=True, team="Hidden Team")
    own = write_entry(
        kb,
        "Border agency's own agreement log",
        themes=[THEME],
        organisation="Border and Trade Agency",
        partners=[],
        visibility="organisation",
    )
    draft = write_entry(kb, "A half-written agreement", themes=[THEME], status="draft", author=ADA.as_author)

    results = run(kb, database, mail_server, later(days=2))  # a daily digest is due, a weekly one is not
    assert [(r.email, r.status) for r in results] == [(ADA.email, "not due"), (BO.email, "sent")]
    results = run(kb, database, mail_server, later(days=8))
    assert [(r.email, r.status) for r in results] == [(ADA.email, "sent"), (BO.email, "nothing new")]

    to_bo, to_ada = mail_server.messages
    assert to_ada["To"] == ADA.email and to_ada["From"] == "lighthouse@digest.example"
    assert to_ada["Subject"].startswith("Lighthouse: 1 new thing for you since ")
    text, html = body(to_ada, "plain"), body(to_ada, "html")
    assert "Agreements <b>signed</b> & filed" in text
    assert f"https://lighthouse.example/entry?id={public.id}" in text and "https://lighthouse.example/following" in text
    assert "Agreements &lt;b&gt;signed&lt;/b&gt; &amp; filed" in html and "<b>signed" not in html
    assert "you follow the theme Data sharing agreements" in text
    for hidden in (own.title, own.id, draft.title, draft.id, "Hidden Team", "Priya Natarajan"):
        assert hidden not in to_ada.as_string(), hidden
    assert own.title in body(to_bo, "plain") and draft.title not in to_bo.as_string()  # his organisation's own
    assert "Hidden Team" not in to_bo.as_string()


def test_a_failed_digest_is_tried_again_and_a_sent_one_never_twice(state, mail_server):
    kb, database, following = state
    following.follow(ADA, "theme", THEME)
    write_entry(kb, "A new agreement", themes=[THEME])

    mail_server.refuse = 3  # three tries at once, all refused: left for the next run
    failed = run(kb, database, mail_server, later(days=8))
    assert [(r.status, r.attempts) for r in failed] == [("failed", 3)] and "451" in failed[0].error
    with database.session() as session:
        row = session.scalars(select(Digest)).one()
        assert (row.status, row.attempts) == ("pending", 3) and "try again later" in row.last_error

    mail_server.refuse = 1  # the next run: the same period, tried again at once after one refusal
    sent = run(kb, database, mail_server, later(days=9))
    assert [(r.status, r.attempts) for r in sent] == [("sent", 2)]
    assert sent[0].period == failed[0].period and sent[0].message_id == failed[0].message_id
    assert [m["Message-ID"] for m in mail_server.messages] == [failed[0].message_id]

    again = run(kb, database, mail_server, later(days=9))  # nothing more is due: nothing goes twice
    assert [r.status for r in again] == ["not due"] and len(mail_server.messages) == 1
    with database.session() as session:
        row = session.scalars(select(Digest)).one()
        assert row.status == "sent" and row.sent_at is not None

    # A week on, nothing new: no message, and the next period starts from there.
    assert [r.status for r in run(kb, database, mail_server, later(days=16))] == ["nothing new"]
    assert len(mail_server.messages) == 1


def test_a_server_that_does_not_answer_leaves_the_digest_for_the_next_run(state, mail_server):
    kb, database, following = state
    following.follow(ADA, "theme", THEME)
    write_entry(kb, "A new agreement", themes=[THEME])
    gone = mail_server.settings(smtp_port=mail_server.port + 1 if mail_server.port < 65535 else 1)
    results = send_digests(kb, database, gone, now=later(days=8), access=ACCESS, retry_delay=0, attempts=2)
    assert results[0].status == "failed" and results[0].attempts == 2 and "Connection" in results[0].error
    assert run(kb, database, mail_server, later(days=8))[0].status == "sent"


def test_off_means_no_digest_and_a_dry_run_sends_and_records_nothing(state, mail_server):
    kb, database, following = state
    following.follow(ADA, "theme", THEME)
    following.follow(BO, "theme", THEME)
    following.set_frequency(BO, "off")
    write_entry(kb, "A new agreement", themes=[THEME])
    results = run(kb, database, mail_server, later(days=8), dry_run=True)
    assert [(r.email, r.status, [i.title for i in r.items]) for r in results] == [
        (ADA.email, "would send", ["A new agreement"])
    ]
    assert mail_server.messages == []
    with database.session() as session:
        assert session.scalars(select(Digest)).all() == []


def test_the_digest_command(state, mail_server, monkeypatch, tmp_path):
    kb, database, following = state
    following.follow(ADA, "theme", THEME)
    write_entry(kb, "A new agreement", themes=[THEME])
    monkeypatch.setenv("KB_ENTRIES_DIR", str(kb.settings.entries_dir))
    monkeypatch.setenv("KB_INDEX_DIR", str(kb.settings.index_dir))
    monkeypatch.setenv("KB_DATABASE_URL", kb.settings.database_url)
    monkeypatch.setenv("KB_ACCESS_FILE", str(tmp_path / "access.yaml"))
    (tmp_path / "access.yaml").write_text("roles:\n  default: [contributor]\n")
    when = later(days=8).isoformat()

    dry = CliRunner().invoke(cli, ["digest", "--dry-run", "--now", when])
    assert dry.exit_code == 0, dry.output
    assert f"{ADA.email}: would send (1 new)" in dry.output and "entry: A new agreement" in dry.output

    unset = CliRunner().invoke(cli, ["digest", "--now", when])
    assert unset.exit_code == 1 and "set KB_SMTP_HOST" in unset.output and "Traceback" not in unset.output
    bad = CliRunner().invoke(cli, ["digest", "--dry-run", "--now", "next tuesday"])
    assert bad.exit_code == 1 and "is not a time" in bad.output

    monkeypatch.setenv("KB_SMTP_HOST", "127.0.0.1")
    monkeypatch.setenv("KB_SMTP_PORT", str(mail_server.port))
    monkeypatch.setenv("KB_SMTP_STARTTLS", "false")
    sent = CliRunner().invoke(cli, ["digest", "--now", when, "--json"])
    assert sent.exit_code == 0, sent.output
    assert [(r["email"], r["status"]) for r in json.loads(sent.output)] == [(ADA.email, "sent")]
    assert len(mail_server.messages) == 1


def test_one_run_at_a_time(state, mail_server):
    kb, database, following = state
    following.follow(ADA, "theme", THEME)
    write_entry(kb, "A new agreement", themes=[THEME])
    sent, second = [], {}

    def start_a_second_run():
        try:
            second["results"] = run(kb, database, mail_server, later(days=8))
        except KBError as exc:
            second["refused"] = str(exc)

    def send_while_another_run_starts(message):
        starter = threading.Thread(target=start_a_second_run)  # as from another process or session
        starter.start()
        starter.join(timeout=60)
        second["waited"] = starter.is_alive()
        sent.append(message["To"])

    (first,) = run(kb, database, mail_server, later(days=8), send=send_while_another_run_starts)
    assert not second["waited"], "the second run is refused at once, it does not wait for the first"
    assert "another digest run" in second.get("refused", ""), second
    assert first.status == "sent" and sent == [ADA.email]
    assert [r.status for r in run(kb, database, mail_server, later(days=9))] == ["not due"]  # the lock is free again


def test_one_person_s_broken_address_stops_no_one_else_s_digest(state, mail_server):
    kb, database, following = state
    from kb.identity import User

    broken = User("Eve", "Home Affairs Department", local=False, email="eve@had.example.gov\r\nBcc: all@example.gov")
    for person in (broken, ADA):
        following.follow(person, "theme", THEME)
    write_entry(kb, "A new agreement", themes=[THEME])
    results = run(kb, database, mail_server, later(days=8))
    assert [r.status for r in results] == ["failed", "sent"]
    assert [m["To"] for m in mail_server.messages] == [ADA.email]


def test_a_refusal_meant_for_good_closes_the_period_and_the_next_digest_goes_on(state, mail_server):
    """An address the server refuses for good does not block every later digest of that person."""
    kb, database, following = state
    following.follow(ADA, "theme", THEME)
    write_entry(kb, "A new agreement", themes=[THEME])
    mail_server.refuse, mail_server.refusal = 1, "550 5.1.1 no such mailbox"
    (failed,) = run(kb, database, mail_server, later(days=8))
    assert (failed.status, failed.attempts) == ("failed", 1) and "550" in failed.error  # not tried again at once
    with database.session() as session:
        assert session.scalars(select(Digest)).one().status == "failed"
    assert [r.status for r in run(kb, database, mail_server, later(days=9))] == ["not due"]  # not retried
    (following_week,) = run(kb, database, mail_server, later(days=16))  # the next period starts where it ended
    assert following_week.status == "nothing new" and following_week.period[0] == failed.period[1]
    assert mail_server.messages == []


def hand_the_due_sample_to(kb, owner: User) -> None:
    """The sample lighthouse due for review names its author alone, as a copy without sign-in writes it:
    hand it to her signed-in self, as an operator enabling sign-in does (docs/signin.md)."""
    entry_id = "reproducible-analytical-pipelines-for-official-statistics"
    kb.save(replace(kb.stored(entry_id), author=owner.as_author))


def test_lighthouses_due_for_review_reach_their_owner_and_curators_once_a_period(state, mail_server):
    kb, database, following = state
    ops = "Office for Public Statistics"
    owner = User("Eleanor Whitfield", ops, ("contributor",), local=False, email="eleanor@ops.example.gov")
    curator = User("Cara Curator", ops, ("contributor", "curator"), local=False, email="cara@ops.example.gov")
    access = Access(
        domains={"ops.example.gov": ops, "bta.example.gov": "Border and Trade Agency"},
        user_roles={curator.email: ("curator",)},
    )
    hidden = write_entry(  # another organisation's own lighthouse, overdue: no curator of Ops may hear of it
        kb,
        "Border agency's private lighthouse",
        organisation="Border and Trade Agency",
        partners=[],
        visibility="organisation",
        author=BO.as_author,
    )
    hidden = kb.save(replace(hidden, lighthouse=Lighthouse("proven", "x", review_by="2020-01")))
    for person in (owner, curator, BO):  # none of them follows anything
        following.set_frequency(person, "weekly")
    rap = "Reproducible analytical pipelines for 14 official statistics publications"  # a sample lighthouse due since 2025-12
    hand_the_due_sample_to(kb, owner)

    def send(now):
        return send_digests(kb, database, mail_server.settings(), now=now, access=access, retry_delay=0)

    results = send(later(days=8))
    assert [(r.email, r.status) for r in results] == [
        (owner.email, "sent"),
        (curator.email, "sent"),
        (BO.email, "sent"),  # his own private lighthouse
    ]
    to_owner, to_curator, to_bo = mail_server.messages
    text = body(to_owner, "plain")
    assert f"Lighthouse due for review: {rap} (review by 2025-12 has passed)" in text
    assert "you own this lighthouse" in text and "single trade window" not in text  # not his
    assert ", lighthouses due for review:" in text and "from what you follow" not in text  # he follows nothing
    curators = body(to_curator, "plain")
    assert rap in curators and "A single trade window prototype" in curators and "you are a curator" in curators
    assert hidden.title not in to_curator.as_string() and hidden.id not in to_curator.as_string()
    assert hidden.title in body(to_bo, "plain") and rap not in to_bo.as_string()

    assert [r.status for r in send(later(days=9))] == ["not due"] * 3  # once per period
    assert len(mail_server.messages) == 3
    send(later(days=16))  # the next period: still due, so said again, once
    assert len(mail_server.messages) == 6
    assert body(mail_server.messages[3], "plain").count(rap) == 1


def test_a_retired_lighthouse_is_never_in_a_digest(state, mail_server):
    kb, database, following = state
    ops = "Office for Public Statistics"
    owner = User("Eleanor Whitfield", ops, ("contributor",), local=False, email="eleanor@ops.example.gov")
    curator = User("Cara Curator", ops, ("contributor", "curator"), local=False, email="cara@ops.example.gov")
    access = Access(domains={"ops.example.gov": ops}, user_roles={curator.email: ("curator",)})
    hand_the_due_sample_to(kb, owner)
    retired = write_entry(kb, "A retired ledger", organisation=ops, author=owner.as_author)
    kb.save(replace(retired, lighthouse=Lighthouse("retired", "x")))  # no review-by date: it has run its course
    for person in (owner, curator):
        following.set_frequency(person, "weekly")
    send_digests(kb, database, mail_server.settings(), now=later(days=8), access=access, retry_delay=0)
    assert len(mail_server.messages) == 2  # each still hears of the sample lighthouse that is due
    assert all("A retired ledger" not in message.as_string() for message in mail_server.messages)
