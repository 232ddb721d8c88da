"""Who a signed-in person is: a `User` from the claims their identity provider sent and a small access file.

The access file is YAML (KB_ACCESS_FILE, default ./access.yaml; a missing default file means the
defaults below). Every field is optional:

    organisation_claim: organisation     # a claim that names the person's organisation, if the provider sends one
    domains:                             # otherwise the organisation of a verified e-mail address's domain
      had.example.gov: Home Affairs Department     # subdomains count too: digital.had.example.gov
    roles:
      default: [contributor]             # everyone who signs in (the default)
      organisations:
        Home Affairs Department: [contributor, reviewer]
      users:                             # by e-mail address, only one the provider has verified
        ada@had.example.gov: [admin]
    email_verified_default: false        # what a missing email_verified claim counts as (the default)

A person's roles add up: the default ones, their organisation's and their own. An e-mail address counts
only when the provider says `email_verified: true`: an address a provider has not checked is anyone's to
type. Some providers (Microsoft Entra ID) never send the claim; a deployment whose provider holds only
addresses it has checked (a single-tenant Entra ID) sets `email_verified_default: true`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from kb.errors import KBError, Problem
from kb.identity import CONTRIBUTOR, KNOWN_ROLES, User
from kb.yamlfile import load_yaml

DEFAULT_ACCESS_FILE = "access.yaml"
SIGNED_IN_NAME = "Signed-in user"  # the rare provider that sends no name, e-mail or subject
FIELDS = ("organisation_claim", "domains", "roles", "email_verified_default")
ROLE_FIELDS = ("default", "organisations", "users")

Report = Callable[[str, str], None]  # (field, message)


class AccessFileError(KBError):
    """An access file that cannot be used; carries every problem found, not just the first."""

    def __init__(self, problems: list[Problem]):
        self.problems = problems
        super().__init__("; ".join(str(p) for p in problems))


@dataclass(frozen=True)
class Access:
    """How signed-in people get their organisation and roles. Keys are lowercased."""

    organisation_claim: str = ""
    domains: Mapping[str, str] = field(default_factory=dict)  # e-mail domain -> organisation
    default_roles: tuple[str, ...] = (CONTRIBUTOR,)
    organisation_roles: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    user_roles: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # e-mail address -> roles
    email_verified_default: bool = False  # what a missing email_verified claim counts as

    def organisation_for_email(self, email: str) -> str:
        """The organisation of the most specific configured domain that the address is in, or ""."""
        domain = email.rpartition("@")[2].strip().lower().rstrip(".")
        parts = domain.split(".")
        for start in range(len(parts)):  # a.b.example.gov, then b.example.gov, then example.gov...
            organisation = self.domains.get(".".join(parts[start:]))
            if organisation:
                return organisation
        return ""

    def roles_for(self, organisation: str, email: str) -> tuple[str, ...]:
        wanted = set(self.default_roles)
        wanted.update(self.organisation_roles.get(organisation.casefold(), ()))
        wanted.update(self.user_roles.get(email.lower(), ()))
        return tuple(role for role in KNOWN_ROLES if role in wanted)


def user_from_claims(claims: Mapping[str, Any], access: Access) -> User:
    """The signed-in person these OpenID Connect claims (as in `st.user`) describe."""
    verified = _says_verified(claims.get("email_verified"), access.email_verified_default)
    email = _identifier(claims.get("email")).lower() if verified else ""
    subject = _identifier(claims.get("sub"))
    names = (_text(claims.get("name")), _text(claims.get("preferred_username")), email, subject)
    name = next((n for n in names if n), SIGNED_IN_NAME)
    organisation = _claimed_organisation(claims, access.organisation_claim) or access.organisation_for_email(email)
    return User(
        name=name,
        organisation=organisation,
        roles=access.roles_for(organisation, email),
        local=False,
        email=email,
        subject=subject,
    )


def address_not_used(claims: Mapping[str, Any], access: Access) -> str:
    """Why a well-formed address the provider sent is not used: "unconfirmed" (it said email_verified:
    false), "unsaid" (it said nothing, and the access file does not vouch for it), or "" (used, or none)."""
    if not _identifier(claims.get("email")) or _says_verified(
        claims.get("email_verified"), access.email_verified_default
    ):
        return ""
    return "unsaid" if claims.get("email_verified") is None else "unconfirmed"


def _says_verified(claim: Any, default: bool) -> bool:
    """The provider's word on the address: a boolean, or its spelling as a string; anything else is not
    a yes. Only a missing claim takes the access file's default."""
    if claim is None:
        return default
    if isinstance(claim, str):
        return claim.strip().lower() == "true"
    return claim is True


def _identifier(value: Any) -> str:
    """An address or an id as the provider sent it; none at all if it holds a space or an angle bracket,
    which no real one does and which could make "Name <id>" spell someone else's (`User.as_author`)."""
    text = value.strip() if isinstance(value, str) else ""
    return "" if any(c.isspace() or c in "<>" for c in text) else text


def _text(value: Any) -> str:
    return " ".join(value.split()) if isinstance(value, str) else ""


def _claimed_organisation(claims: Mapping[str, Any], claim: str) -> str:
    """The claim's value: one string, or a list holding exactly one (several would be a guess)."""
    if not claim:
        return ""
    value = claims.get(claim)
    if isinstance(value, list | tuple) and len(value) == 1:
        value = value[0]
    return _text(value)


# --------------------------------------------------------------------------- the access file


def access_file(environ: Mapping[str, str] | None = None) -> tuple[Path, bool]:
    """The access file's path, and whether it was named (a named file must exist; the default may not)."""
    env = os.environ if environ is None else environ
    named = (env.get("KB_ACCESS_FILE") or "").strip()
    return Path(named or DEFAULT_ACCESS_FILE).expanduser(), bool(named)


def load_access(path: Path | None = None, environ: Mapping[str, str] | None = None) -> Access:
    """Read the access file (KB_ACCESS_FILE or ./access.yaml); raises AccessFileError naming the file and field."""
    if path is None:
        path, named = access_file(environ)
        if not named and not path.exists():
            return Access()
    source = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise AccessFileError([Problem(source, "the file does not exist (set by KB_ACCESS_FILE)")]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise AccessFileError([Problem(source, f"the file cannot be read: {exc}")]) from None
    try:
        data = load_yaml(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise AccessFileError([Problem(source, f"not valid YAML{where}: {getattr(exc, 'problem', exc)}")]) from None
    return parse_access(data, source)


def parse_access(data: Any, source: str = DEFAULT_ACCESS_FILE) -> Access:
    """An `Access` from the access file's parsed YAML; raises AccessFileError listing every problem."""
    problems: list[Problem] = []

    def problem(name: str, message: str) -> None:
        problems.append(Problem(source, message, field=name))

    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise AccessFileError([Problem(source, f"expected fields ({', '.join(FIELDS)}), not a list")])
    for name in data:
        if name not in FIELDS:
            problem(str(name), f"unknown field; use {', '.join(FIELDS)}")

    claim = data.get("organisation_claim")
    if claim is not None and not (isinstance(claim, str) and claim.strip()):
        problem("organisation_claim", "expected the name of a claim, e.g. organisation")
        claim = ""

    verified_default = data.get("email_verified_default", False)
    if not isinstance(verified_default, bool):
        problem("email_verified_default", "expected true or false")
        verified_default = False

    domains: dict[str, str] = {}
    for domain, organisation in _mapping(data, "domains", problem).items():
        key = str(domain).strip().lower().lstrip("@").strip(".")
        if not key or "@" in key or " " in key:
            problem(f"domains.{domain}", "expected an e-mail domain, e.g. had.example.gov")
        elif not (isinstance(organisation, str) and organisation.strip()):
            problem(f"domains.{domain}", "expected the name of an organisation")
        else:
            domains[key] = " ".join(organisation.split())

    roles = _mapping(data, "roles", problem)
    for name in roles:
        if name not in ROLE_FIELDS:
            problem(f"roles.{name}", f"unknown field; use {', '.join(ROLE_FIELDS)}")
    default = (CONTRIBUTOR,) if roles.get("default") is None else _roles(roles["default"], "roles.default", problem)
    by_organisation = {
        " ".join(str(org).split()).casefold(): _roles(value, f"roles.organisations.{org}", problem)
        for org, value in _mapping(roles, "organisations", problem, prefix="roles.").items()
    }
    by_user: dict[str, tuple[str, ...]] = {}
    for email, value in _mapping(roles, "users", problem, prefix="roles.").items():
        if "@" not in str(email):
            problem(f"roles.users.{email}", "expected an e-mail address, e.g. ada@had.example.gov")
        by_user[str(email).strip().lower()] = _roles(value, f"roles.users.{email}", problem)

    if problems:
        raise AccessFileError(problems)
    return Access(
        organisation_claim=(claim or "").strip(),
        domains=domains,
        default_roles=default,
        organisation_roles=by_organisation,
        user_roles=by_user,
        email_verified_default=verified_default,
    )


def _mapping(data: dict, name: str, problem: Report, *, prefix: str = "") -> dict:
    value = data.get(name)
    if value is None:
        return {}
    if not isinstance(value, dict):
        problem(prefix + name, "expected a mapping of names to values (name: value, one a line)")
        return {}
    return value


def _roles(value: Any, name: str, problem: Report) -> tuple[str, ...]:
    """A list of role names, or one comma-separated string; unknown names are problems."""
    if value is None:
        return ()
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
        problem(name, "expected a list of roles, e.g. [contributor, reviewer]")
        return ()
    roles = [i.strip().lower() for i in items if i.strip()]
    unknown = [r for r in roles if r not in KNOWN_ROLES]
    if unknown:
        problem(name, f"unknown role {', '.join(repr(r) for r in unknown)}; the roles are {', '.join(KNOWN_ROLES)}")
    return tuple(r for r in KNOWN_ROLES if r in roles)
