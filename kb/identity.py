"""Who is using the app and what they may do: the roles, and the local user of a copy without sign-in.

People who sign in get their `User` from kb/signin.py. The local user comes from environment variables:

| variable              | default                  | meaning                               |
|-----------------------|--------------------------|---------------------------------------|
| KB_USER_NAME          | Local user               | shown in the sidebar, saved as author |
| KB_USER_ORGANISATION  | (empty)                  | the default organisation of new entries |
| KB_USER_ROLES         | contributor,curator      | comma-separated roles                 |
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

CONTRIBUTOR = "contributor"
REVIEWER = "reviewer"
CURATOR = "curator"
ADMIN = "admin"
KNOWN_ROLES = (CONTRIBUTOR, REVIEWER, CURATOR, ADMIN)
# A curator reviews too, and an admin may do everything the other roles may.
IMPLIED_ROLES = {CURATOR: (REVIEWER,), ADMIN: (CONTRIBUTOR, REVIEWER, CURATOR)}
DEFAULT_NAME = "Local user"
DEFAULT_ROLES = (CONTRIBUTOR, REVIEWER)
# The local user of a copy without sign-in runs it on their own machine: they curate it (edit any entry,
# review), though, like anyone, they never approve their own entries.
LOCAL_ROLES = (CONTRIBUTOR, CURATOR)


@dataclass(frozen=True)
class User:
    """A person using the app, the organisation they belong to and what they may do."""

    name: str
    organisation: str = ""
    roles: tuple[str, ...] = DEFAULT_ROLES
    local: bool = True  # configured on this machine rather than signed in
    email: str = ""  # verified, lowercased; where a digest goes
    subject: str = ""  # the sign-in provider's own id for this person (its "sub" claim)

    @property
    def as_author(self) -> str:
        """This person as the author of what they write (an entry, an evidence note, an edit waiting for
        review). A signed-in person is named with what no one else can claim, "Priya Natarajan
        <priya@dwp.example>" (or, where the provider vouches for no address, its id for them, "<sub:...>"),
        and the access rules compare only that part (`author_key`): a display name is theirs to choose at
        the provider, and two people who share one (or one who copies another's) are never each other's
        author. The local user and an API token's holder, each named by the operator, are named alone."""
        return f"{self.name} <{self.identity}>" if self.identity else self.name

    @property
    def identity(self) -> str:
        """The part of `as_author` that says who a signed-in person is: their address, or "sub:" and the
        provider's id ("sub:" spells no address). Empty for the local user and a token's holder."""
        if self.local:
            return ""
        return self.email or (f"sub:{self.subject}" if self.subject else "")

    @property
    def author_key(self) -> str:
        """Who this person is as an author, from their own fields: `author_key` of what they write, so that
        a display name changed at the provider keeps what was written under the old one."""
        if self.identity:
            return f"<{self.identity}>"
        return f"name:{self.name}" if self.name else ""

    def wrote(self, author: str) -> bool:
        """Whether `author` (an entry's, a note's, an edit's) names this person: the same `author_key`
        as theirs; a blank name names nobody. What grants an author's rights."""
        return bool(author) and author_key(author) == self.author_key

    def may_have_written(self, author: str) -> bool:
        """Whether this person may be the one `author` names: their own whole name (`as_author`), or their
        display name alone, as a copy without sign-in wrote its authors. Only for refusing (nobody approves
        what they may have written); what grants rights is `wrote`."""
        return self.wrote(author) or (bool(author) and shown_name(author) == self.name)

    @property
    def account(self) -> str:
        """The key of this person's follows and saved searches: their e-mail address, or for the local
        user of a copy without sign-in, their name. Empty for a visitor, who keeps nothing."""
        if self.email:
            return self.email
        return f"local:{self.name}" if self.local else ""

    def has_role(self, role: str) -> bool:
        return any(role == held or role in IMPLIED_ROLES.get(held, ()) for held in self.roles)

    @property
    def is_reviewer(self) -> bool:
        return self.has_role(REVIEWER)

    @property
    def is_contributor(self) -> bool:
        return self.has_role(CONTRIBUTOR)


def _split_author(author: str) -> tuple[str, str]:
    """("Priya Natarajan", "priya@dwp.example") from "Priya Natarajan <priya@dwp.example>" (`User.as_author`);
    (author, "") for an author named alone."""
    name, bracket, rest = author.rpartition(" <")
    return (name, rest[:-1]) if bracket and name and rest.endswith(">") else (author, "")


def shown_name(author: str) -> str:
    """An author as readers see them: the name alone, without the address or id after it
    ("Priya Natarajan <priya@dwp.example>" is shown "Priya Natarajan")."""
    return _split_author(author)[0]


def author_key(author: str) -> str:
    """Who an author is, whatever they are called today: "<priya@dwp.example>" for a signed-in author,
    "name:Ada Analyst" for one named alone (the local user, a token's holder), so that neither kind can
    spell the other; "" for nobody."""
    name, identity = _split_author(author)
    if identity:
        return f"<{identity}>"
    return f"name:{author}" if author else ""


def parse_roles(text: str | None, default: tuple[str, ...] = DEFAULT_ROLES) -> tuple[str, ...]:
    """Roles from "contributor, Reviewer": trimmed, lowercased, deduplicated; unset means `default`."""
    if text is None or not text.strip():
        return default
    roles: list[str] = []
    for part in text.split(","):
        role = part.strip().lower()
        if role and role not in roles:
            roles.append(role)
    return tuple(roles)


def local_user(environ: Mapping[str, str] | None = None) -> User:
    """The user this app runs as, from KB_USER_NAME, KB_USER_ORGANISATION and KB_USER_ROLES."""
    env = os.environ if environ is None else environ
    return User(
        name=(env.get("KB_USER_NAME") or "").strip() or DEFAULT_NAME,
        organisation=(env.get("KB_USER_ORGANISATION") or "").strip(),
        roles=parse_roles(env.get("KB_USER_ROLES"), LOCAL_ROLES),
        local=True,
        email=(env.get("KB_USER_EMAIL") or "").strip().lower(),
    )
