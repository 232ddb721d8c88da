"""A running Lighthouse API asked by the command line (`search --api URL`, `similar --api URL`).

A command-line search in its own process costs its start-up: importing the vector store and loading
the model take seconds, the search itself milliseconds. Asking a server that has both loaded already
costs an HTTP request. The answers are the library's own `Hit`s, so the command prints them as it
prints local ones; who the caller is comes from their token, so the server applies their access rules.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from kb.browse import SEARCH_MODES
from kb.errors import KBError, NotFound
from kb.filters import Filters
from kb.search import Hit, SimilarHit

TIMEOUT_SECONDS = 30.0


class RemoteKnowledgeBase:
    """The search side of a knowledge base, answered by the HTTP API at `url`."""

    def __init__(self, url: str, token: str | None = None, *, transport: Any = None):
        import httpx

        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.url = url.rstrip("/")
        self.http = httpx.Client(base_url=self.url, headers=headers, timeout=TIMEOUT_SECONDS, transport=transport)

    def search(self, query: str, *, limit: int = 10, mode: str = "hybrid", filters: Filters | None = None) -> list[Hit]:
        # The API names the modes as the search page does ("meaning" for "dense", "keyword" for "bm25").
        named = next((name for name, engine in SEARCH_MODES.items() if engine == mode and name != "plan"), mode)
        params = {"q": query, "mode": named, "limit": limit, **_params(filters or Filters())}
        return [_hit(Hit, item) for item in self._get("/search", params)["hits"]]

    def similar(self, entry_id: str, *, limit: int = 5) -> list[SimilarHit]:
        from urllib.parse import quote

        return [
            _hit(SimilarHit, item)
            for item in self._get(f"/entries/{quote(entry_id, safe='')}/similar", {"limit": limit})
        ]

    def _get(self, path: str, params: dict[str, Any]) -> Any:
        import httpx

        try:
            answer = self.http.get(path, params=params)
        except httpx.HTTPError as exc:
            raise KBError(
                f"the Lighthouse API at {self.url} did not answer ({exc.__class__.__name__}); is it running?"
            ) from None
        if answer.status_code == 200:
            return answer.json()
        try:
            detail = answer.json().get("detail") or answer.reason_phrase
        except ValueError:
            detail = answer.reason_phrase
        if answer.status_code == 404:
            raise NotFound(str(detail))
        raise KBError(f"the Lighthouse API at {self.url} refused the request ({answer.status_code}): {detail}")


def _params(filters: Filters) -> dict[str, Any]:
    """The filters as the API's query parameters: repeatable facets as lists, the rest as they are."""
    params: dict[str, Any] = {}
    for field in dataclasses.fields(filters):
        value = getattr(filters, field.name)
        if value is None or value == ():
            continue
        params[field.name] = list(value) if isinstance(value, tuple) else value
    return params


def _hit(kind: type[Hit], item: dict[str, Any]) -> Any:
    names = {f.name for f in dataclasses.fields(kind)}
    values: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in item.items() if k in names}
    return kind(**values)
