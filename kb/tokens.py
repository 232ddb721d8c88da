"""Personal API tokens: who a caller of the HTTP API is.

    tokens = TokenStore(settings.tokens_path)
    token, record = tokens.create("Rita Reviewer", organisation="Beta Agency", roles=("contributor", "reviewer"))
    tokens.user_for(token)        # User("Rita Reviewer", "Beta Agency", ("contributor", "reviewer"), local=False)
    tokens.revoke("Rita Reviewer")

An admin creates, lists and revokes tokens at the command line (`python -m kb token ...`); a token is
shown once, when it is made. The file keeps only each token's SHA-256 digest, never the token, and is
written atomically under a lock, so two admins (or a replica reading it) never see half a file. A
revoked token is gone from the file and is refused at its next use.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import secrets
from dataclasses import asdict, dataclass
from pathlib import Path

from kb.errors import KBError
from kb.identity import KNOWN_ROLES, User, parse_roles
from kb.store import atomic_write, file_lock

PREFIX = "lh_"  # tells a reader (or a secret scanner) what the string is
MAX_TOKEN_CHARS = 200


@dataclass(frozen=True)
class TokenRecord:
    """One person's token as stored: who they are, what they may do, and the token's digest."""

    name: str
    organisation: str
    roles: tuple[str, ...]
    sha256: str
    created: str

    @property
    def user(self) -> User:
        return User(name=self.name, organisation=self.organisation, roles=self.roles, local=False)


def digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


class TokenStore:
    """The tokens file (a JSON list of records); read again whenever it changes on disk."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self._seen: tuple[int, int, int] | None = None  # (inode, mtime_ns, size) of the file last read
        self._records: list[TokenRecord] = []
        self._version_key: bytes | None = None

    # ----------------------------------------------------------------- reading

    def records(self) -> list[TokenRecord]:
        """Every token's record, by name."""
        try:
            stat = self.path.stat()
        except FileNotFoundError:
            self._seen, self._records = None, []
            return []
        mark = (stat.st_ino, stat.st_mtime_ns, stat.st_size)  # every write is a rename: a new inode
        if mark != self._seen:
            self._records, self._seen = self._read(), mark
        return list(self._records)

    def _read(self) -> list[TokenRecord]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            return [
                TokenRecord(
                    str(item["name"]),
                    str(item.get("organisation", "")),
                    tuple(str(r) for r in item.get("roles", ())),
                    str(item["sha256"]),
                    str(item.get("created", "")),
                )
                for item in data["tokens"]
            ]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise KBError("the API tokens file cannot be read; fix or remove it", where=self.path) from exc

    def user_for(self, token: str) -> User | None:
        """The person this token belongs to, or None for a token that is wrong or revoked."""
        if not token or len(token) > MAX_TOKEN_CHARS:
            return None
        wanted = digest(token)
        found = None
        for record in self.records():  # every record compared, in constant time each
            if hmac.compare_digest(record.sha256, wanted):
                found = record
        return found.user if found else None

    # ----------------------------------------------------------------- changing

    def create(
        self, name: str, *, organisation: str = "", roles: tuple[str, ...] | str = ()
    ) -> tuple[str, TokenRecord]:
        """A new token for this person: the token itself (shown once, never stored) and its record."""
        name = " ".join(name.split())
        if not name:
            raise KBError("give the token's owner a name (--name): it is saved as the author of what they write")
        chosen = parse_roles(roles, ()) if isinstance(roles, str) else tuple(dict.fromkeys(roles))
        unknown = [r for r in chosen if r not in KNOWN_ROLES]
        if unknown:
            raise KBError(f"unknown role {', '.join(unknown)}; choose from {', '.join(KNOWN_ROLES)}")
        token = PREFIX + secrets.token_urlsafe(32)
        record = TokenRecord(
            name,
            " ".join(organisation.split()),
            chosen,
            digest(token),
            dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        )
        with file_lock(self._lock_path):
            records = self._read() if self.path.exists() else []
            if any(r.name == name for r in records):
                raise KBError(f"'{name}' already has a token; revoke it first to give them a new one")
            self._write([*records, record])
        return token, record

    def revoke(self, name: str) -> TokenRecord:
        """Remove this person's token: it is refused from its next use."""
        with file_lock(self._lock_path):
            records = self._read() if self.path.exists() else []
            gone = [r for r in records if r.name == name]
            if not gone:
                raise KBError(f"no token named '{name}'; `python -m kb token list` shows them")
            self._write([r for r in records if r.name != name])
        return gone[0]

    def version_key(self) -> bytes:
        """A secret kept beside the tokens file (made on first use, readable by its owner only), so that
        replicas sharing the file share it: the API hands out entry versions keyed with it, and a
        version then tells a reader nothing they could test guesses against."""
        if self._version_key is None:
            path = self.path.with_name(self.path.name + ".key")
            with file_lock(self._lock_path):
                if not path.exists():
                    atomic_write(path, secrets.token_hex(32) + "\n")  # a new temporary file: mode 0600
                self._version_key = bytes.fromhex(path.read_text(encoding="utf-8").strip())
        return self._version_key

    @property
    def _lock_path(self) -> Path:
        return self.path.with_name(self.path.name + ".lock")

    def _write(self, records: list[TokenRecord]) -> None:
        data = {"tokens": [asdict(r) | {"roles": list(r.roles)} for r in sorted(records, key=lambda r: r.name)]}
        atomic_write(self.path, json.dumps(data, indent=2, ensure_ascii=False) + "\n")
        self._seen = None
