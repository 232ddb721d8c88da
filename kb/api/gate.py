"""Errors as RFC 9457 problem details, and the gate every request passes first: who the caller is
(a personal token, or the anonymous visitor), the request rate per caller and the body size cap."""

from __future__ import annotations

import logging
import math
from collections.abc import Awaitable, Callable, MutableMapping
from http import HTTPStatus
from typing import Annotated, Any

import anyio.to_thread
from fastapi import Depends, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.exceptions import HTTPException as StarletteHTTPException

from kb.access import ANONYMOUS, signed_in
from kb.api.limits import Limiter, TokenBucket
from kb.drafting import DraftInvalid
from kb.errors import Conflict, Forbidden, KBError, NotFound, without_paths
from kb.following import FEED_SECRET_PREFIX
from kb.identity import User
from kb.oidc import BearerVerifier, ProviderUnreachable
from kb.tokens import PREFIX as TOKEN_PREFIX
from kb.tokens import TokenStore

log = logging.getLogger("lighthouse.api")
PROBLEM_TYPE = "application/problem+json"


# =============================================================================== errors


def problem(status: int, detail: str, *, headers: dict[str, str] | None = None, **extra: Any) -> JSONResponse:
    body = {"type": "about:blank", "title": HTTPStatus(status).phrase, "status": status, "detail": detail}
    body |= {k: v for k, v in extra.items() if v is not None}
    return JSONResponse(body, status_code=status, media_type=PROBLEM_TYPE, headers=headers)


_BEARER_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="lighthouse"'}
_STATUS_OF = ((NotFound, 404), (Conflict, 409), (Forbidden, 403))


def library_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, KBError)
    detail = without_paths(str(exc)) or "the request was refused"
    status = next((code for kind, code in _STATUS_OF if isinstance(exc, kind)), 400)
    if status == 403 and not signed_in(_viewer_of(request)):  # a visitor is asked to sign in first
        return problem(
            401, f"{detail}; send a personal token as 'Authorization: Bearer <token>'", headers=_BEARER_CHALLENGE
        )
    errors = exc.messages if isinstance(exc, DraftInvalid) else None
    return problem(status, detail, errors=errors)


def http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    detail = exc.detail if isinstance(exc.detail, str) else HTTPStatus(exc.status_code).phrase
    return problem(exc.status_code, detail, headers=getattr(exc, "headers", None))


def invalid_request(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    errors: dict[str, list[str]] = {}
    for error in exc.errors():
        where = ".".join(str(part) for part in error.get("loc", ()) if part != "body") or "request"
        errors.setdefault(where, []).append(str(error.get("msg", "is not valid")))
    summary = "; ".join(f"{where}: {', '.join(messages)}" for where, messages in errors.items())
    return problem(422, summary or "the request is not valid", errors=errors)


def unexpected_error(request: Request, exc: Exception) -> Response:
    log.exception("unexpected error answering %s %s", request.method, request.url.path)
    return problem(500, "something went wrong on the server; it has been logged. Try again later.")


# =============================================================================== limits and identity


class _TooLarge(StarletteHTTPException):
    def __init__(self, limit: int):
        super().__init__(413, f"the request body is larger than {limit:,} bytes")


Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


class Gate:
    """Before any endpoint: who the caller is (a bad token is refused), their request rate, and the
    size of what they send. Written as plain ASGI so a refused request never has its body read."""

    def __init__(
        self, app: Any, tokens: TokenStore, limiter: Limiter, max_body: int, provider: BearerVerifier | None = None
    ):
        self.app, self.tokens, self.limiter, self.max_body = app, tokens, limiter, max_body
        self.provider = provider
        # Tokens this server does not know are checked with the provider: each address may make it ask
        # at the callers' own rate, so a stream of made-up tokens is not a stream of requests to it. (Per
        # process: the provider is asked at most this often by each replica.)
        self.provider_checks = TokenBucket(limiter.rule.per_minute, limiter.rule.burst)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        client = scope.get("client")
        user, status, refusal = await self._caller(headers.get("authorization"), client[0] if client else "unknown")
        key = f"token:{user.author_key}" if signed_in(user) else f"client:{client[0] if client else 'unknown'}"
        wait = await anyio.to_thread.run_sync(self.limiter.take, key)  # may ask the database: off the event loop
        if wait:
            retry = str(max(1, math.ceil(wait)))
            detail = f"too many requests; wait {retry} s and try again"
            await problem(429, detail, headers={"Retry-After": retry})(scope, receive, send)
            return
        if refusal:
            challenge = _BEARER_CHALLENGE if status == 401 else None
            await problem(status, refusal, headers=challenge)(scope, receive, send)
            return
        length = headers.get("content-length", "")
        if length.isdigit() and int(length) > self.max_body:
            await problem(413, f"the request body is larger than {self.max_body:,} bytes")(scope, receive, send)
            return
        scope.setdefault("state", {})["user"] = user
        await self.app(scope, self._capped(receive), send)

    async def _caller(self, authorization: str | None, address: str) -> tuple[User, int, str]:
        """The person a bearer token names (a personal token, or one from the sign-in provider), or the
        anonymous visitor without one; otherwise a refusal and its status."""
        if authorization is None:
            return ANONYMOUS, 200, ""
        scheme, _, token = authorization.strip().partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            return (
                ANONYMOUS,
                401,
                f"send {self._token_kinds} as 'Authorization: Bearer <token>', or no Authorization header",
            )
        try:
            user = self.tokens.user_for(token)
        except KBError:
            log.exception("the API tokens file cannot be read")
            user = None
        ours = token.startswith((TOKEN_PREFIX, FEED_SECRET_PREFIX))  # never sent on to the provider
        if user is None and self.provider is not None and not ours:
            wait = self.provider_checks.take(f"address:{address}")
            if wait:
                retry = max(1, math.ceil(wait))
                return ANONYMOUS, 429, f"too many tokens to check; wait {retry} s and try again"
            try:  # the provider is asked over the network: not on the event loop
                user = await anyio.to_thread.run_sync(self.provider.user_for, token)
            except ProviderUnreachable as exc:
                log.warning("a bearer token could not be checked: %s", exc)
                return ANONYMOUS, 503, f"{exc}; try again shortly, or use a personal token"
        if user is None:
            return ANONYMOUS, 401, "this token is not valid (wrong, expired or revoked); ask an admin for a new one"
        return user, 200, ""

    @property
    def _token_kinds(self) -> str:
        return "a personal token or your sign-in provider's token" if self.provider else "a personal token"

    def _capped(self, receive: Receive) -> Receive:
        """`receive` that refuses a body (one sent in chunks, without a length) past the cap."""
        seen = 0

        async def capped() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_body:
                    raise _TooLarge(self.max_body)
            return message

        return capped


_bearer = HTTPBearer(
    auto_error=False,
    description="A personal token from `python -m kb token create`, or, where the server is configured for it, a "
    "token from the organisation's sign-in provider (an ID token, or an access token).",
)


def _viewer_of(request: Request) -> User:
    return getattr(request.state, "user", ANONYMOUS)


def caller(request: Request, _: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]) -> User:
    """The person making the request (checked by Gate), or the anonymous visitor."""
    return _viewer_of(request)


Viewer = Annotated[User, Depends(caller)]
