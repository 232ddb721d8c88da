"""Digests: each person's e-mail of what is new for them (kb.following), sent through SMTP.

    results = send_digests(kb, database, MailSettings(), now=now)

A digest covers the period from the end of the person's last one to now, once a day or once a week, as
they chose (or never). Its row in the `digests` table is written before the message is sent and marked
sent after, with a Message-ID made from the person and the period: a send that fails is tried again at
once a few times, then at the next run for the same period with the same Message-ID, and a period that
was sent is never sent again. One run at a time: a second run that starts meanwhile does nothing.
"""

from __future__ import annotations

import datetime as dt
import html
import logging
import smtplib
import ssl
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import quote

from sqlalchemy import select, text
from sqlalchemy.exc import SQLAlchemyError

from kb.config import MailSettings
from kb.database.tables import Digest, Person
from kb.errors import KBError
from kb.following import Following, Profile, as_utc
from kb.store import file_lock_if_free
from kb.whats_new import KIND_WORDS, Update, updates

if TYPE_CHECKING:
    from kb.database import Database
    from kb.knowledge import KnowledgeBase
    from kb.signin import Access

log = logging.getLogger(__name__)

INTERVALS = {"daily": dt.timedelta(days=1), "weekly": dt.timedelta(days=7)}
SLACK = dt.timedelta(hours=1)  # a daily run a little early still sends the daily digest
ATTEMPTS = 3  # tries at once, before leaving the digest for the next run
RETRY_DELAY = 2.0  # seconds before the second try; doubled before each next one
GIVE_UP_AFTER = 15  # tries over every run (five runs of three) before a period is marked failed
DIGEST_LOCK_ID = 0x4C494744  # "LIGD": PostgreSQL's advisory lock for one run at a time
SMTP_TIMEOUT = 30


@dataclass
class DigestResult:
    """What one run did for one person: sent, failed (to be tried again), nothing new, not due, would send."""

    email: str
    status: str
    items: list[Update] = field(default_factory=list)
    attempts: int = 0
    error: str = ""
    message_id: str = ""
    period: tuple[dt.datetime, dt.datetime] | None = None


Sender = Callable[[EmailMessage], None]


def smtp_sender(mail: MailSettings) -> Sender:
    """Send through the SMTP server the settings name (TLS from the start on port 465, else STARTTLS
    unless KB_SMTP_STARTTLS=false), logging in when a user is set."""
    if not mail.smtp_host:
        raise KBError("set KB_SMTP_HOST (and KB_SMTP_PORT, KB_MAIL_FROM) to send digests, or use --dry-run")

    def send(message: EmailMessage) -> None:
        if mail.smtp_port == 465:
            server: smtplib.SMTP = smtplib.SMTP_SSL(
                mail.smtp_host, mail.smtp_port, timeout=SMTP_TIMEOUT, context=ssl.create_default_context()
            )
        else:
            server = smtplib.SMTP(mail.smtp_host, mail.smtp_port, timeout=SMTP_TIMEOUT)
        with server:
            server.ehlo()
            if mail.smtp_starttls and mail.smtp_port != 465:
                server.starttls(context=ssl.create_default_context())
                server.ehlo()
            if mail.smtp_user:
                server.login(mail.smtp_user, mail.smtp_password)
            server.send_message(message)

    return send


def send_digests(
    kb: KnowledgeBase,
    database: Database,
    mail: MailSettings,
    *,
    now: dt.datetime | None = None,
    dry_run: bool = False,
    send: Sender | None = None,
    access: Access | None = None,
    attempts: int = ATTEMPTS,
    retry_delay: float = RETRY_DELAY,
) -> list[DigestResult]:
    """Send every person whose digest is due what is new for them; with dry_run, only say what would be
    sent (nothing is written). Raises KBError when another run is under way."""
    now = as_utc(now or dt.datetime.now(dt.UTC))
    if not dry_run and send is None:
        send = smtp_sender(mail)
    if access is None:
        from kb.signin import load_access

        access = load_access()
    following = Following(database)
    results = []
    with _one_run(database) as free:
        if not free:
            raise KBError("another digest run is under way; try again when it has finished")
        for person_id in following.people():
            try:
                result = _digest_one(
                    kb, database, following, person_id, mail, now, dry_run, send, access, attempts, retry_delay
                )
            except (KBError, SQLAlchemyError, ValueError) as exc:  # one person's problem stops no one else's
                log.exception("the digest of person %s could not be made", person_id)
                result = DigestResult(f"person {person_id}", "failed", error=f"{exc.__class__.__name__}: {exc}"[:500])
            if result is not None:
                results.append(result)
    return results


def _digest_one(
    kb, database, following, person_id, mail, now, dry_run, send, access, attempts, retry_delay
) -> DigestResult | None:
    found = following.person(person_id, access)
    if found is None:
        return None
    user, profile = found
    if profile.frequency == "off" or not profile.email:
        return None  # no digest wanted, or nowhere to send it (a local user without KB_USER_EMAIL)
    with database.session() as session:
        pending = session.scalars(
            select(Digest).where(Digest.person_id == person_id, Digest.status == "pending").order_by(Digest.period_end)
        ).first()
        period = (as_utc(pending.period_start), as_utc(pending.period_end)) if pending else None
        pending_id = pending.id if pending else None
    if period is None:
        if now - profile.digest_since < INTERVALS[profile.frequency] - SLACK:
            return DigestResult(profile.email, "not due")
        period = (profile.digest_since, now)
    items = updates(kb, user, profile, *period)
    result = DigestResult(profile.email, "would send" if items else "nothing new", items, period=period)
    if dry_run:
        return result
    if not items:
        with database.session() as session:
            if pending_id is not None:
                session.get(Digest, pending_id).status = "empty"
            session.get(Person, person_id).digest_since = period[1]
        return result
    message_id = make_message_id(person_id, period[1], mail.mail_from)
    if pending_id is None:  # the row first: a run that stops after sending must not lose track of it
        with database.session() as session:
            row = Digest(
                person_id=person_id,
                period_start=period[0],
                period_end=period[1],
                status="pending",
                message_id=message_id,
            )
            session.add(row)
            session.flush()
            pending_id = row.id
    message = compose(profile, items, period, mail, message_id)
    result.message_id = message_id
    for attempt in range(attempts):
        result.attempts += 1
        try:
            send(message)
        except (smtplib.SMTPException, OSError) as exc:
            result.error = f"{exc.__class__.__name__}: {exc}"[:500]
            log.warning("digest for person %s, try %s: %s", person_id, attempt + 1, result.error)
            with database.session() as session:
                row = session.get(Digest, pending_id)
                row.attempts += 1
                row.last_error = result.error
                if _permanent(exc) or row.attempts >= GIVE_UP_AFTER:
                    # Trying again would fail again (an address refused, a message rejected), or it has
                    # failed in every run for days: the period is closed as failed, so the next digest
                    # covers what came after it instead of this one blocking every later one.
                    row.status = "failed"
                    session.get(Person, person_id).digest_since = period[1]
                    log.error("digest for person %s given up after %s tries: %s", person_id, row.attempts, result.error)
                    break
            if attempt + 1 < attempts and retry_delay:
                time.sleep(retry_delay * 2**attempt)
            continue
        with database.session() as session:
            row = session.get(Digest, pending_id)
            row.attempts += 1
            row.status, row.sent_at, row.last_error = "sent", dt.datetime.now(dt.UTC), ""
            session.get(Person, person_id).digest_since = period[1]
        result.status, result.error = "sent", ""
        return result
    result.status = "failed"
    return result


def _permanent(exc: Exception) -> bool:
    """A refusal the server means for good (a 5xx answer, every recipient refused), not a busy moment."""
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        return True
    return isinstance(exc, smtplib.SMTPResponseException) and 500 <= exc.smtp_code < 600


@contextmanager
def _one_run(database: Database) -> Iterator[bool]:
    """Whether this run may go ahead: no other run holds the lock (a file beside a SQLite database, an
    advisory lock on PostgreSQL), held until the block ends."""
    if database.is_sqlite:
        name = database.url.database or ""
        folder = Path(name).parent if name and name != ":memory:" else Path(".")
        with file_lock_if_free(folder / f".{Path(name).name or 'memory'}.digest.lock") as free:
            yield free
        return
    with database.engine.connect() as connection:
        free = bool(connection.execute(text("SELECT pg_try_advisory_lock(:id)"), {"id": DIGEST_LOCK_ID}).scalar())
        try:
            yield free
        finally:
            if free:
                connection.execute(text("SELECT pg_advisory_unlock(:id)"), {"id": DIGEST_LOCK_ID})
            connection.commit()


def make_message_id(person_id: int, period_end: dt.datetime, sender: str) -> str:
    """The same Message-ID for the same person and period, whichever run sends it: a mail program that
    gets it twice (a run stopped between sending and noting it) shows it once."""
    domain = sender.rpartition("@")[2].strip(" >") or "lighthouse.invalid"
    return f"<digest.{person_id}.{as_utc(period_end):%Y%m%dT%H%M%S}Z@{domain}>"


# --------------------------------------------------------------------------- the message


def entry_url(mail: MailSettings, entry_id: str) -> str:
    return f"{mail.app_url}/entry?id={quote(entry_id, safe='')}"


def following_url(mail: MailSettings) -> str:
    return f"{mail.app_url}/following"


def compose(
    profile: Profile,
    items: list[Update],
    period: tuple[dt.datetime, dt.datetime],
    mail: MailSettings,
    message_id: str,
) -> EmailMessage:
    """The digest as an e-mail: plain text, and the same as simple HTML with every value escaped."""
    since = f"{period[0]:%d %B %Y}".lstrip("0")
    count = f"{len(items)} new thing{'s' if len(items) != 1 else ''}"
    message = EmailMessage()
    message["Subject"] = f"Lighthouse: {count} for you since {since}"
    message["From"] = mail.mail_from
    message["To"] = profile.email
    message["Date"] = format_datetime(period[1])
    message["Message-ID"] = message_id
    message["List-Unsubscribe"] = f"<{following_url(mail)}>"
    greeting = f"Hello {profile.name}," if profile.name else "Hello,"
    # A lighthouse due for review reaches its owner and curators whatever they follow (kb.following).
    sources = [
        words
        for words, present in (
            ("from what you follow", any(i.kind != "review" for i in items)),
            ("lighthouses due for review", any(i.kind == "review" for i in items)),
        )
        if present
    ]
    where_from = ", and ".join(sources)
    lines = [greeting, "", f"{count} in Lighthouse since {since}, {where_from}:", ""]
    for item in items:
        heading = f"{KIND_WORDS[item.kind]}: {item.title}" + (f" ({item.detail})" if item.detail else "")
        lines += [heading, f"  {item.summary}" if item.summary else "", f"  {entry_url(mail, item.entry_id)}"]
        lines += [f"  Because {'; '.join(item.reasons)}.", ""]
    lines += [
        "What you follow, how often this comes, or to stop it:",
        following_url(mail),
    ]
    message.set_content("\n".join(line for line in lines if line is not None) + "\n")
    e = html.escape
    cards = "".join(
        f'<li><p><strong>{e(KIND_WORDS[item.kind])}:</strong> <a href="{e(entry_url(mail, item.entry_id))}">'
        f"{e(item.title)}</a>{f' ({e(item.detail)})' if item.detail else ''}</p>"
        f"{f'<p>{e(item.summary)}</p>' if item.summary else ''}"
        f"<p><small>Because {e('; '.join(item.reasons))}.</small></p></li>"
        for item in items
    )
    message.add_alternative(
        f"<!doctype html><html><body><p>{e(greeting)}</p><p>{e(count)} in Lighthouse since {e(since)}, "
        f'{e(where_from)}:</p><ul>{cards}</ul><p><a href="{e(following_url(mail))}">What you follow, how often this '
        "comes, or to stop it</a></p></body></html>",
        subtype="html",
    )
    return message
