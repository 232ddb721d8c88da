"""What the following, digest and feed tests share: a real SMTP server on 127.0.0.1 that keeps what it
receives (aiosmtpd), and new entries written through the knowledge base as the app writes them."""

from __future__ import annotations

import datetime as dt
import email
import email.policy
from dataclasses import replace
from email.message import EmailMessage

from bench.browser import free_port
from kb import KnowledgeBase
from kb.config import MailSettings
from kb.entries import Entry
from kb.identity import User

TEMPLATE_ID = "benefits-and-housing-data-sharing-pilot"  # public, published, Department for Work and Welfare
THEME = "data-sharing-agreements"
ADA = User("Ada Analyst", "Home Affairs Department", ("contributor",), local=False, email="ada@had.example.gov")
BO = User("Bo Border", "Border and Trade Agency", ("contributor",), local=False, email="bo@bta.example.gov")


class MailServer:
    """An SMTP server (aiosmtpd) on 127.0.0.1 that keeps every message; `refuse` answers that many of the
    next messages with a temporary failure, as a busy server does."""

    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []
        self.refuse = 0
        self.refusal = "451 4.3.0 try again later"
        self.port = 0
        self._controller = None

    async def handle_DATA(self, server, session, envelope) -> str:  # noqa: N802  (aiosmtpd's name)
        if self.refuse > 0:
            self.refuse -= 1
            return self.refusal
        self.messages.append(email.message_from_bytes(envelope.original_content, policy=email.policy.default))
        return "250 OK"

    def start(self) -> MailServer:
        from aiosmtpd.controller import Controller

        self.port = free_port()
        self._controller = Controller(self, hostname="127.0.0.1", port=self.port)
        self._controller.start()
        return self

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def settings(self, **changes) -> MailSettings:
        """Mail settings that send here (no TLS: the test server has none)."""
        base = MailSettings(
            smtp_host="127.0.0.1",
            smtp_port=self.port,
            smtp_starttls=False,
            mail_from="lighthouse@digest.example",
            app_url="https://lighthouse.example",
            api_url="https://api.lighthouse.example",
        )
        return base.override(**changes)


def body(message: EmailMessage, subtype: str) -> str:
    return message.get_body(preferencelist=(subtype,)).get_content()


def write_entry(kb: KnowledgeBase, title: str, **fields) -> Entry:
    """A new entry like the sample data sharing pilot, with this title and these fields, written today and
    saved as the app saves one (a file, then indexed)."""
    template = kb.stored(TEMPLATE_ID)
    today = dt.date.today().isoformat()
    fields = {"created": today, "updated": today, **fields}
    entry = replace(template, id="", title=title, lighthouse=None, related=[], **fields)
    return kb.save(entry, new=True)


def later(days: float = 0, seconds: float = 0) -> dt.datetime:
    return dt.datetime.now(dt.UTC) + dt.timedelta(days=days, seconds=seconds)
