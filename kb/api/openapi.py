"""What the API says of itself: its title and description, the error responses each endpoint documents,
the OpenAPI schema with every error as a problem detail, and the interactive page at /docs, served from
local files. The endpoints (kb.api.app) and the feeds (kb.api.feeds) name their errors here; what they
answer is theirs."""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.openapi.utils import get_openapi
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from swagger_ui_bundle import swagger_ui_path

from kb.api.gate import PROBLEM_TYPE
from kb.api.models import Problem

DOCS_ASSETS = "/docs-assets"  # Swagger UI's files, for the /docs page


def described_app() -> FastAPI:
    """An app with no endpoints yet that describes itself: title, summary and description, the /docs page
    and a schema whose errors are problem details (read when it is first asked for, with every endpoint)."""
    app = FastAPI(
        title="Lighthouse",
        version=__import__("kb").__version__,
        summary="Search lessons learned and lighthouse projects, and contribute to them, under the same access rules "
        "as the app.",
        description="Send `Authorization: Bearer <token>` (a personal token from `python -m kb token create`) to act "
        "as that person; without it you are an anonymous visitor and see what the public sees. Errors are RFC 9457 "
        "problem details.",
        docs_url=None,  # served below from local files: the default page loads its scripts from a CDN
        redoc_url=None,
    )
    serve_docs(app)
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    return app


def problems(*codes: int) -> dict[int | str, dict[str, Any]]:
    """The problems an endpoint documents: these codes and those any request may meet (401, 422, 429, 500)."""
    always = (401, 422, 429, 500)
    return {code: {"model": Problem, "description": HTTPStatus(code).phrase} for code in sorted({*codes, *always})}


def serve_docs(app: FastAPI) -> None:
    """The interactive OpenAPI page at /docs, with Swagger UI's scripts and styles from the installed
    swagger-ui-bundle: no network is needed, as everywhere else at run time."""
    app.mount(DOCS_ASSETS, StaticFiles(directory=swagger_ui_path), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=app.openapi_url or "/openapi.json",
            title="Lighthouse API",
            swagger_js_url=f"{DOCS_ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{DOCS_ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{DOCS_ASSETS}/favicon-32x32.png",
        )


def _openapi(app: FastAPI) -> dict[str, Any]:
    """The schema, with every error response as application/problem+json (what it is sent as)."""
    if app.openapi_schema:
        return app.openapi_schema
    schema = get_openapi(
        title=app.title, version=app.version, summary=app.summary, description=app.description, routes=app.routes
    )
    for path in schema.get("paths", {}).values():
        for operation in path.values():
            for code, response in operation.get("responses", {}).items():
                content = response.get("content", {})
                if code.isdigit() and int(code) >= 400 and "application/json" in content:
                    content[PROBLEM_TYPE] = content.pop("application/json")
                    content[PROBLEM_TYPE]["schema"] = {"$ref": "#/components/schemas/Problem"}
    schema["components"]["schemas"].pop("HTTPValidationError", None)
    schema["components"]["schemas"].pop("ValidationError", None)
    app.openapi_schema = schema
    return schema
