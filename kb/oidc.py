"""Who an OpenID Connect bearer token names, checked against the provider the app signs people in with.

The HTTP API takes two kinds of bearer token: a personal token (`kb/tokens.py`) and, when a provider is
configured, one the provider issued. A signed JWT (an ID token, or an access token in JWT form) is
verified here, with the provider's published keys: its signature, issuer, audience and lifetime.
An opaque access token says nothing of the application it was issued to, and the provider's userinfo
endpoint answers for any of them; so it is taken only where the operator says so
(KB_OIDC_OPAQUE_TOKENS=true, for a provider whose access tokens are not JWTs), and then shown to that
endpoint. Either way the claims become a `User` through the access file as it is at that moment, as
sign-in in the app does, so a person has the same organisation and roles in both.

Answers are kept for a minute (by the token's hash), so a busy client does not ask the provider for
every request; a revoked access token therefore works for up to a minute more.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import time
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kb.errors import KBError
from kb.identity import User
from kb.signin import Access, user_from_claims

log = logging.getLogger("lighthouse.oidc")

SECRETS_FILE = Path(".streamlit/secrets.toml")  # where the app's own sign-in is configured
ANSWER_SECONDS = 60.0  # how long a token's verdict is kept
KEYS_SECONDS = 3600.0  # how long the provider's metadata and keys are kept before they are read again
FRESH_KEYS_SECONDS = 300.0  # an unknown key makes the keys be read again, at most this often
LEEWAY_SECONDS = 60  # clock difference allowed on exp and nbf
MAX_KEPT = 10_000
ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA")


class ProviderUnreachable(KBError):
    """The provider did not answer: the token is neither accepted nor refused."""


@dataclass(frozen=True)
class ProviderSettings:
    """The provider's discovery URL and the audience its tokens must be issued for (the app's client id)."""

    metadata_url: str
    audience: str
    opaque_tokens: bool = False  # also take tokens that are not JWTs, on the userinfo endpoint's word

    @classmethod
    def from_environment(
        cls, environ: Mapping[str, str] | None = None, secrets_file: Path = SECRETS_FILE
    ) -> ProviderSettings | None:
        """KB_OIDC_METADATA_URL and KB_OIDC_AUDIENCE; where unset, the `[auth]` section of the app's
        `.streamlit/secrets.toml` (server_metadata_url, client_id). None when neither names a provider."""
        env = os.environ if environ is None else environ
        auth: Mapping[str, Any] = {}
        if secrets_file.is_file():
            try:
                auth = tomllib.loads(secrets_file.read_text(encoding="utf-8")).get("auth") or {}
            except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
                raise KBError(f"{secrets_file}: cannot read its [auth] section ({exc})") from None
        metadata_url = env.get("KB_OIDC_METADATA_URL") or str(auth.get("server_metadata_url") or "")
        audience = env.get("KB_OIDC_AUDIENCE") or str(auth.get("client_id") or "")
        if not metadata_url:
            return None
        if not audience:
            raise KBError(
                "KB_OIDC_METADATA_URL is set but not the audience its tokens are issued for: "
                "set KB_OIDC_AUDIENCE to the app's client id"
            )
        opaque = (env.get("KB_OIDC_OPAQUE_TOKENS") or "").strip().lower() in ("1", "true", "yes")
        return cls(metadata_url, audience, opaque)


class BearerVerifier:
    """Turns a provider's bearer token into the `User` it names, or None when the provider refuses it."""

    def __init__(
        self,
        provider: ProviderSettings,
        access: Access | Callable[[], Access],
        *,
        http: Any = None,
        clock: Callable[[], float] = time.time,
    ):
        import httpx

        self.provider, self.access, self.clock = provider, access, clock
        self.http = http or httpx.Client(timeout=5.0, follow_redirects=False)
        self._metadata: dict[str, Any] = {}
        self._metadata_read_at = -KEYS_SECONDS
        self._keys: Any = None
        self._keys_read_at = -KEYS_SECONDS
        self._answers: dict[str, tuple[User | None, float]] = {}
        self._lock = threading.Lock()

    def user_for(self, token: str) -> User | None:
        """The person the token names; None if the provider refuses it. Raises ProviderUnreachable."""
        key = hashlib.sha256(token.encode("utf-8")).hexdigest()
        now = self.clock()
        with self._lock:
            kept = self._answers.get(key)
        if kept is not None and kept[1] > now:
            return kept[0]
        if token.count(".") == 2:
            claims = self._jwt_claims(token)
        else:
            claims = self._userinfo_claims(token) if self.provider.opaque_tokens else None
        access = self.access() if callable(self.access) else self.access  # roles as the file says now
        user = user_from_claims(claims, access) if claims is not None else None
        with self._lock:
            if len(self._answers) >= MAX_KEPT:
                self._answers = {k: v for k, v in self._answers.items() if v[1] > now}
            self._answers[key] = (user, now + ANSWER_SECONDS)
        return user

    # ------------------------------------------------------------------ the provider

    def _get_json(self, url: str, **kwargs: Any) -> Any:
        import httpx

        try:
            response = self.http.get(url, **kwargs)
        except httpx.HTTPError as exc:
            raise ProviderUnreachable(f"the sign-in provider did not answer ({exc.__class__.__name__})") from None
        if response.status_code in (400, 401, 403):  # RFC 6750: the token is invalid, expired or not enough
            return None
        if response.status_code != 200:
            raise ProviderUnreachable(f"the sign-in provider answered {response.status_code}")
        try:
            return response.json()
        except ValueError:
            raise ProviderUnreachable("the sign-in provider's answer is not JSON") from None

    def _provider_metadata(self) -> dict[str, Any]:
        if not self._metadata or self.clock() - self._metadata_read_at > KEYS_SECONDS:
            metadata = self._get_json(self.provider.metadata_url)
            if not isinstance(metadata, dict) or not metadata.get("issuer"):
                raise ProviderUnreachable("the sign-in provider's discovery document names no issuer")
            self._metadata, self._metadata_read_at = metadata, self.clock()
        return self._metadata

    def _key_set(self, *, fresh: bool = False):
        from joserfc.jwk import KeySet

        metadata = self._provider_metadata()
        age = self.clock() - self._keys_read_at
        # A token signed with a key we do not hold makes us read the keys again, but not at every such
        # token: a stream of forged ones must not become a stream of requests to the provider.
        if self._keys is None or age > KEYS_SECONDS or (fresh and age > FRESH_KEYS_SECONDS):
            published = self._get_json(str(metadata.get("jwks_uri") or ""))
            if not isinstance(published, dict):
                raise ProviderUnreachable("the sign-in provider publishes no keys")
            self._keys = KeySet.import_key_set(published)  # type: ignore[arg-type]
            self._keys_read_at = self.clock()
        return self._keys

    # ------------------------------------------------------------------ the two kinds of token

    def _jwt_claims(self, token: str) -> dict[str, Any] | None:
        from joserfc import jwt
        from joserfc.errors import JoseError

        def decode(keys):
            return jwt.decode(token, keys, algorithms=list(ALGORITHMS))

        try:
            try:
                decoded = decode(self._key_set())
            except (JoseError, ValueError):
                decoded = decode(self._key_set(fresh=True))  # the provider may have rotated its keys
            registry = jwt.JWTClaimsRegistry(
                now=int(self.clock()),
                leeway=LEEWAY_SECONDS,
                iss={"essential": True, "value": self._provider_metadata()["issuer"]},
                aud={"essential": True, "value": self.provider.audience},
                exp={"essential": True},
            )
            registry.validate(decoded.claims)
        except (JoseError, ValueError) as exc:
            log.info("a bearer token was refused: %s", exc.__class__.__name__)
            return None
        return dict(decoded.claims)

    def _userinfo_claims(self, token: str) -> dict[str, Any] | None:
        endpoint = str(self._provider_metadata().get("userinfo_endpoint") or "")
        if not endpoint:
            return None
        claims = self._get_json(endpoint, headers={"Authorization": f"Bearer {token}"})
        return claims if isinstance(claims, dict) and claims.get("sub") else None
