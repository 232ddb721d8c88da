"""schemathesis fuzzes the HTTP API's own OpenAPI schema, in process: whatever it sends, valid or not, as
a visitor or as a token holder, no answer is a server error and every answer is what the schema says it
may be (status, media type, headers, body)."""

from __future__ import annotations

import shutil

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.generation.modes import GenerationMode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from kb import KnowledgeBase, Settings
from kb.api import create_app
from kb.embedder import HashingEmbedder
from kb.tokens import TokenStore
from tests.conftest import SAMPLE_ENTRIES

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
EXAMPLES = 12  # for each operation and each caller: the whole file runs in well under a minute


@pytest.fixture(scope="module")
def served(tmp_path_factory, sample_index):
    """The sample entries behind the API (limits out of the way), and a reviewer's token."""
    root = tmp_path_factory.mktemp("api-schema")
    shutil.copytree(SAMPLE_ENTRIES, root / "entries")
    shutil.copytree(sample_index, root / "index")
    settings_ = Settings(entries_dir=root / "entries", index_dir=root / "index", chroma_url=None, model="hashing-bow")
    kb = KnowledgeBase(settings_, embedder=HashingEmbedder())
    kb.sync()
    tokens = TokenStore(root / "tokens.json")
    token, _ = tokens.create("Rita Reviewer", organisation="Home Affairs Department", roles="contributor,reviewer")
    return create_app(kb, tokens, rate_per_minute=1_000_000, burst=1_000_000), token


def operations(app):
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    return [result.ok() for result in schema.get_all_operations()]


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=["valid", "invalid"])
@pytest.mark.parametrize("signed_in", [False, True], ids=["visitor", "token holder"])
def test_no_server_error_and_no_answer_outside_the_schema(served, signed_in, mode):
    app, token = served
    headers = {"Authorization": f"Bearer {token}"} if signed_in else {}
    found = operations(app)
    assert len(found) >= 12
    for operation in found:

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def fuzz(case):
            case.call_and_validate(headers=headers, checks=CHECKS)

        fuzz()
