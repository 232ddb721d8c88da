"""Configuration in one place: a few KB_* environment variables, each overridable by a CLI flag."""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from kb.errors import KBError

DEFAULT_MODEL = "all-MiniLM-L6-v2"
BACKENDS = ("torch", "onnx", "onnx-int8")
DEFAULT_BACKEND = "torch"  # ONNX measured slower than PyTorch here, so not the default: docs/embedders.md


DEFAULT_SEARCH_LOG_DAYS = 180
MAX_SEARCH_LOG_DAYS = 36_500


def _env_path(name: str, default: str) -> Path:
    return Path(os.environ.get(name) or default).expanduser()


@dataclass(frozen=True)
class Settings:
    """Where the entries and the index live, and which model and Chroma to use.

    | variable          | default              | meaning                                      |
    |-------------------|----------------------|----------------------------------------------|
    | KB_ENTRIES_DIR    | ./entries            | folder of entry Markdown files               |
    | KB_INDEX_DIR      | ./.lighthouse-index  | embedded Chroma, keyword index, caches       |
    | KB_CHROMA_URL     | (unset: embedded)    | http(s)://host:port of a Chroma server       |
    | KB_MODEL          | all-MiniLM-L6-v2     | sentence-transformers model name or path     |
    | KB_MODEL_BACKEND  | torch                | torch, onnx or onnx-int8 (docs/embedders.md) |
    | KB_MODEL_CACHE    | ~/.cache/lighthouse  | where ONNX exports are kept (read by the     |
    |                   |   /models            | embedder; XDG_CACHE_HOME is honoured)        |
    | KB_COLLECTION     | lighthouse           | Chroma collection name prefix                |
    | KB_TOKENS_FILE    | <index>/tokens.json  | the HTTP API's personal tokens, hashed       |
    | KB_DATABASE_URL   | sqlite:///<index>/   | follows, saved searches, digests and search  |
    |                   |   lighthouse.sqlite3 | counts; postgresql+psycopg://... for a server |
    | KB_SEARCH_LOG_DAYS| 180                  | days anonymous search and entry counts are   |
    |                   |                      | kept; 0 records none and deletes them        |
    """

    entries_dir: Path = field(default_factory=lambda: _env_path("KB_ENTRIES_DIR", "entries"))
    index_dir: Path = field(default_factory=lambda: _env_path("KB_INDEX_DIR", ".lighthouse-index"))
    chroma_url: str | None = field(default_factory=lambda: os.environ.get("KB_CHROMA_URL") or None)
    model: str = field(default_factory=lambda: os.environ.get("KB_MODEL") or DEFAULT_MODEL)
    model_backend: str = field(default_factory=lambda: os.environ.get("KB_MODEL_BACKEND") or DEFAULT_BACKEND)
    collection: str = field(default_factory=lambda: os.environ.get("KB_COLLECTION") or "lighthouse")
    tokens_file: Path | None = field(
        default_factory=lambda: (
            Path(os.environ["KB_TOKENS_FILE"]).expanduser() if os.environ.get("KB_TOKENS_FILE") else None
        )
    )

    database: str | None = field(default_factory=lambda: os.environ.get("KB_DATABASE_URL") or None)
    search_log: str | None = field(default_factory=lambda: os.environ.get("KB_SEARCH_LOG_DAYS") or None)

    @property
    def database_url(self) -> str:
        """Where per-person state lives: KB_DATABASE_URL, or a SQLite file beside the index."""
        return self.database or f"sqlite:///{(self.index_dir / 'lighthouse.sqlite3').resolve()}"

    @property
    def search_log_days(self) -> int:
        """How many days anonymous search and entry counts are kept (kb.searchlog): KB_SEARCH_LOG_DAYS, 180
        by default; 0 records nothing and deletes what was kept."""
        text = (self.search_log or "").strip()
        if not text:
            return DEFAULT_SEARCH_LOG_DAYS
        if not text.isdigit() or int(text) > MAX_SEARCH_LOG_DAYS:
            raise KBError(
                f"KB_SEARCH_LOG_DAYS must be a whole number of days from 0 to {MAX_SEARCH_LOG_DAYS} "
                f"(0 turns the search log off), not {text!r}"
            )
        return int(text)

    @property
    def tokens_path(self) -> Path:
        """Where the HTTP API's personal tokens are kept (hashed): KB_TOKENS_FILE, or beside the index."""
        return self.tokens_file or self.index_dir / "tokens.json"

    def override(self, **changes: object) -> Settings:
        """A copy with every change that is not None applied (CLI flags beat the environment)."""
        given: dict[str, Any] = {k: v for k, v in changes.items() if v is not None}
        return replace(self, **given)


def _env_flag(name: str, default: bool) -> bool:
    value = (os.environ.get(name) or "").strip().lower()
    return default if not value else value in ("1", "true", "yes", "on")


def _env_int(name: str, default: int) -> int:
    value = (os.environ.get(name) or "").strip()
    return int(value) if value.isdigit() else default


@dataclass(frozen=True)
class MailSettings:
    """Where digests are sent from, and where the links in digests, feeds and the Following page point.

    | variable          | default                | meaning                                        |
    |-------------------|------------------------|------------------------------------------------|
    | KB_SMTP_HOST      | (unset: no mail)       | the SMTP server digests are sent through       |
    | KB_SMTP_PORT      | 587                    | its port (465: TLS from the start)             |
    | KB_SMTP_USER      | (unset: no login)      | the account to log in as                       |
    | KB_SMTP_PASSWORD  | (unset)                | its password                                   |
    | KB_SMTP_STARTTLS  | true                   | upgrade the connection with STARTTLS first     |
    | KB_MAIL_FROM      | lighthouse@localhost   | the digests' sender                            |
    | KB_APP_URL        | http://127.0.0.1:8501  | the web app's address, for links to entries    |
    | KB_API_URL        | http://127.0.0.1:8080  | the HTTP API's address, for feed addresses     |
    """

    smtp_host: str = field(default_factory=lambda: (os.environ.get("KB_SMTP_HOST") or "").strip())
    smtp_port: int = field(default_factory=lambda: _env_int("KB_SMTP_PORT", 587))
    smtp_user: str = field(default_factory=lambda: os.environ.get("KB_SMTP_USER") or "")
    smtp_password: str = field(default_factory=lambda: os.environ.get("KB_SMTP_PASSWORD") or "", repr=False)
    smtp_starttls: bool = field(default_factory=lambda: _env_flag("KB_SMTP_STARTTLS", True))
    mail_from: str = field(default_factory=lambda: (os.environ.get("KB_MAIL_FROM") or "lighthouse@localhost").strip())
    app_url: str = field(
        default_factory=lambda: (os.environ.get("KB_APP_URL") or "http://127.0.0.1:8501").strip().rstrip("/")
    )
    api_url: str = field(
        default_factory=lambda: (os.environ.get("KB_API_URL") or "http://127.0.0.1:8080").strip().rstrip("/")
    )

    def override(self, **changes: object) -> MailSettings:
        given: dict[str, Any] = {k: v for k, v in changes.items() if v is not None}
        return replace(self, **given)
