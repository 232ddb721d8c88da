"""The HTTP API: `python -m kb serve`, a thin shell over the library, as the command line and the pages are.

    app = create_app(KnowledgeBase(), TokenStore(settings.tokens_path))
    uvicorn.run(app, host="127.0.0.1", port=8080)

Every endpoint reads its input, calls one library function with the caller as the viewer, and returns
what comes back; the access rules (see, edit, review, history) are kb.access's and are never repeated
here. The caller is the person a personal token names (`Authorization: Bearer <token>`, kb.tokens), or
the anonymous visitor without one. Errors are RFC 9457 problem details; none carries a stack trace or a
path. Request bodies are capped, and each token (each client address, for visitors) has a request rate,
kept in the database so that replicas share it. This package is the only one that imports FastAPI:
`models` (what it reads and answers), `gate` (the caller, limits and problem details), `limits` (the
request allowances), `openapi` (what it says of itself: the schema and the /docs page) and `app` (the
endpoints); docs/api.md describes them.
"""

from kb.api.app import create_app
from kb.api.limits import SharedBucket, TokenBucket
from kb.api.models import EditIn

__all__ = ["EditIn", "SharedBucket", "TokenBucket", "create_app"]
