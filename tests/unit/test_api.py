"""The HTTP API (kb.api): the library's rules through HTTP, problem details, tokens, and limits."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient

from kb import browse
from kb.access import ANONYMOUS
from kb.api import EditIn, TokenBucket, create_app
from kb.cli import cli
from kb.database import Database
from kb.filters import Filters
from kb.identity import User
from kb.tokens import TokenStore
from tests.servers import free_port

ORG_ONLY = "chatbot-for-policy-guidance-withdrawn"  # visibility: organisation, Home Affairs Department
HOME_AFFAIRS = "Home Affairs Department"
IN_REVIEW = "teacher-supply-model-shared-with-schools"  # public, in review
ANONYMOUS_ENTRY = "health-and-social-care-record-matching-trial"  # public and anonymous, with a team
PUBLIC = "benefits-and-housing-data-sharing-pilot"
MISSING = "no-such-entry-anywhere"
EDIT_FIELDS = set(EditIn.model_fields)


@pytest.fixture
def tokens(tmp_path) -> TokenStore:
    return TokenStore(tmp_path / "tokens" / "tokens.json")


@pytest.fixture
def make_client(kb, tokens):
    def make(**limits) -> TestClient:
        return TestClient(create_app(kb, tokens, **limits), raise_server_exceptions=False)

    return make


@pytest.fixture
def client(make_client) -> TestClient:
    return make_client()


def bearer(tokens: TokenStore, name: str, organisation: str = "", roles: str = "contributor") -> dict[str, str]:
    token, _ = tokens.create(name, organisation=organisation, roles=roles)
    return {"Authorization": f"Bearer {token}"}


def assert_problem(response, status: int) -> dict:
    """An RFC 9457 problem: its media type, its fields, and nothing of the server's insides."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["type"] == "about:blank" and body["status"] == status and body["title"] and body["detail"]
    assert "Traceback" not in response.text and "/tmp" not in response.text and ".py" not in response.text
    return body


def as_missing(response, entry_id: str) -> tuple[int, str]:
    return response.status_code, response.text.replace(entry_id, "<id>")


# --------------------------------------------------------------------------- seeing


@pytest.mark.parametrize("path", ["/entries/{}", "/entries/{}/similar", "/entries/{}/history"])
def test_a_hidden_entry_answers_exactly_as_a_missing_one(client, tokens, path):
    other = bearer(tokens, "Olu Other", "Beta Agency", "contributor,reviewer")
    for headers in ({}, other):
        hidden = client.get(path.format(ORG_ONLY), headers=headers)
        missing = client.get(path.format(MISSING), headers=headers)
        assert_problem(hidden, 404)
        assert as_missing(hidden, ORG_ONLY) == as_missing(missing, MISSING)
        assert hidden.headers == missing.headers | {"content-length": hidden.headers["content-length"]}


def test_writes_to_a_hidden_entry_answer_exactly_as_to_a_missing_one(client, tokens, kb):
    reviewer = bearer(tokens, "Olu Other", "Beta Agency", "contributor,reviewer,curator")
    version = kb.store.version(ORG_ONLY)
    edit = {"title": "Taken over", "status": "draft", "version": version}
    decision = {"decision": "approve", "version": version}
    for method, path, body in (("PUT", "/entries/{}", edit), ("POST", "/entries/{}/review", decision)):
        hidden = client.request(method, path.format(ORG_ONLY), json=body, headers=reviewer)
        missing = client.request(method, path.format(MISSING), json=body, headers=reviewer)
        assert_problem(hidden, 404)
        assert as_missing(hidden, ORG_ONLY) == as_missing(missing, MISSING)
    assert kb.store.version(ORG_ONLY) == version


def test_a_visitor_and_a_token_user_find_what_the_library_gives_each(client, tokens, kb):
    member = User("Hana Home", HOME_AFFAIRS, ("contributor",), local=False)
    headers = bearer(tokens, member.name, member.organisation, "contributor")
    query = "chatbot policy guidance withdrawn"
    found = {}
    for viewer, sent in ((ANONYMOUS, {}), (member, headers)):
        response = client.get("/search", params={"q": query, "limit": browse.MAX_RESULTS}, headers=sent)
        assert response.status_code == 200, response.text
        expected = kb.search(query, limit=browse.MAX_RESULTS, filters=Filters.of(status="published"), viewer=viewer)
        found[viewer.name] = [hit["id"] for hit in response.json()["hits"]]
        assert found[viewer.name] == [hit.id for hit in expected]
        assert response.json()["total"] == len(expected)
    assert ORG_ONLY in found[member.name] and ORG_ONLY not in found[""]
    assert client.get(f"/entries/{ORG_ONLY}", headers=headers).json()["id"] == ORG_ONLY


def test_search_pages_through_the_same_hits(client):
    every = client.get("/search", params={"q": "data sharing", "limit": 60}).json()["hits"]
    second = client.get("/search", params={"q": "data sharing", "limit": 5, "page": 2}).json()
    assert [h["id"] for h in second["hits"]] == [h["id"] for h in every[5:10]]
    assert second["total"] == len(every)


def test_only_reviewers_look_beyond_published_entries(client, tokens):
    reviewer = bearer(tokens, "Rita Reviewer", "Beta Agency", "contributor,reviewer")
    params = {"q": "teacher supply model", "status": "in-review", "limit": 60}
    assert IN_REVIEW in [h["id"] for h in client.get("/search", params=params, headers=reviewer).json()["hits"]]
    assert IN_REVIEW not in [h["id"] for h in client.get("/search", params=params).json()["hits"]]
    assert_problem(client.get(f"/entries/{IN_REVIEW}"), 404)


def test_an_anonymous_entry_names_no_one_to_a_reader(client, tokens):
    shown = client.get(f"/entries/{ANONYMOUS_ENTRY}").json()
    assert (shown["team"], shown["contact"], shown["author"]) == ("", "", "")
    assert {"team", "contact", "author"} <= set(shown["withheld"])
    reviewer = bearer(tokens, "Rita Reviewer", "Beta Agency", "reviewer")
    assert client.get(f"/entries/{ANONYMOUS_ENTRY}", headers=reviewer).json()["team"]


def test_facets_stats_and_vocabulary_count_what_the_caller_may_see(client, tokens, kb):
    member = bearer(tokens, "Hana Home", HOME_AFFAIRS)
    visitor_stats, member_stats = client.get("/stats").json(), client.get("/stats", headers=member).json()
    assert visitor_stats == kb.stats(viewer=ANONYMOUS)
    assert member_stats["entries"] > visitor_stats["entries"]
    facets = client.get("/facets", params={"outcome": "failed"}).json()
    expected = browse.facet_counts(kb, Filters.of(outcome="failed", status="published"), viewer=ANONYMOUS)
    assert facets == {name: [{"value": v, "count": n} for v, n in values] for name, values in expected.items()}
    themes = client.get("/vocabulary").json()
    assert [t["id"] for t in themes] == [t.id for t in kb.vocabulary.themes]


def test_plan_mode_gives_each_part_its_lessons(client):
    plan = "We will agree a data sharing agreement with the council.\n\nWe will build a dashboard for caseworkers."
    parts = client.post("/plan", json={"plan": plan, "per_part": 2}).json()["parts"]
    assert [p["number"] for p in parts] == [1, 2]
    assert all(0 < len(p["matches"]) <= 2 for p in parts)


# --------------------------------------------------------------------------- export


def rows(data: bytes, fmt: str) -> list:
    """A file's rows (a workbook's cell values: its bytes hold the time it was made)."""
    if fmt == "xlsx":
        from openpyxl import load_workbook

        return [list(row) for row in load_workbook(io.BytesIO(data)).active.iter_rows(values_only=True)]
    if fmt == "jsonl":
        return [json.loads(line) for line in data.decode("utf-8").split("\n") if line]
    return data.decode("utf-8").split("\n")


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "xlsx"])
def test_export_is_the_download_under_the_callers_rules(client, tokens, kb, fmt):
    member = User("Hana Home", HOME_AFFAIRS, ("contributor",), local=False)
    headers = bearer(tokens, member.name, member.organisation)
    for viewer, sent in ((ANONYMOUS, {}), (member, headers)):
        response = client.get("/export", params={"format": fmt}, headers=sent)
        assert response.status_code == 200
        assert rows(response.content, fmt) == rows(browse.download(kb, None, fmt, viewer), fmt)
    if fmt == "jsonl":
        visitor = rows(client.get("/export?format=jsonl").content, "jsonl")
        ids = [row["id"] for row in visitor]
        assert ORG_ONLY not in ids and IN_REVIEW not in ids and ANONYMOUS_ENTRY in ids
        assert next(r for r in visitor if r["id"] == ANONYMOUS_ENTRY)["team"] == ""
        member_rows = client.get("/export?format=jsonl", headers=headers).text
        assert ORG_ONLY in member_rows


def test_export_of_a_search_holds_what_the_search_lists(client, kb):
    response = client.get("/export", params={"format": "jsonl", "q": "data sharing", "outcome": "failed"})
    ids = [row["id"] for row in rows(response.content, "jsonl")]
    request = browse.SearchRequest(query="data sharing", facets=Filters.of(outcome="failed"))
    assert ids == browse.every_match(kb, request, ANONYMOUS) and ids


# --------------------------------------------------------------------------- tokens


def test_tokens_are_stored_hashed_and_a_revoked_one_is_refused(client, tokens):
    token, record = tokens.create("Hana Home", organisation=HOME_AFFAIRS, roles="contributor")
    stored = tokens.path.read_text()
    assert token not in stored and token[3:] not in stored and record.sha256 in stored
    headers = {"Authorization": f"Bearer {token}"}
    assert client.get(f"/entries/{ORG_ONLY}", headers=headers).status_code == 200
    tokens.revoke("Hana Home")
    body = assert_problem(client.get(f"/entries/{ORG_ONLY}", headers=headers), 401)
    assert "revoked" in body["detail"]
    assert client.get(f"/entries/{ORG_ONLY}", headers=headers).headers["www-authenticate"].startswith("Bearer")


@pytest.mark.parametrize("header", ["Bearer lh_wrong", "Bearer ", "Basic dXNlcjpwYXNz", "lh_no_scheme"])
def test_a_wrong_token_is_refused_not_taken_as_a_visitor(client, tokens, header):
    bearer(tokens, "Hana Home", HOME_AFFAIRS)
    assert_problem(client.get("/stats", headers={"Authorization": header}), 401)


def test_token_commands_create_list_and_revoke(tmp_path, monkeypatch):
    monkeypatch.setenv("KB_TOKENS_FILE", str(tmp_path / "api-tokens.json"))
    runner = CliRunner()
    created = runner.invoke(cli, ["token", "create", "--name", "Rita Reviewer", "--roles", "contributor,reviewer"])
    assert created.exit_code == 0, created.output
    token = created.stdout.strip()
    assert token.startswith("lh_") and len(token) > 40
    assert TokenStore(tmp_path / "api-tokens.json").user_for(token) == User(
        "Rita Reviewer", "", ("contributor", "reviewer"), local=False
    )
    listed = runner.invoke(cli, ["token", "list"])
    assert "Rita Reviewer" in listed.output and token not in listed.output
    again = runner.invoke(cli, ["token", "create", "--name", "Rita Reviewer"])
    assert again.exit_code == 1 and "already has a token" in again.output
    wrong_role = runner.invoke(cli, ["token", "create", "--name", "Bo", "--roles", "overlord"])
    assert wrong_role.exit_code == 1 and "unknown role overlord" in wrong_role.output
    assert runner.invoke(cli, ["token", "revoke", "Rita Reviewer"]).exit_code == 0
    assert TokenStore(tmp_path / "api-tokens.json").user_for(token) is None
    assert runner.invoke(cli, ["token", "revoke", "Rita Reviewer"]).exit_code == 1


# --------------------------------------------------------------------------- writing

NEW_ENTRY = {
    "title": "Parking permits go digital",
    "summary": "We moved resident parking permits online; renewals took a day instead of three weeks.",
    "kind": "project",
    "outcome": "succeeded",
    "organisation": "Northfield City Council",
    "sections": {"Lessons": "Start with renewals: they are most of the work."},
}


def test_submit_then_an_edit_from_a_stale_version_is_a_conflict(client, tokens, kb):
    author = bearer(tokens, "Cara Contributor", "Northfield City Council", "contributor")
    created = client.post("/entries", json=NEW_ENTRY | {"status": "draft"}, headers=author)
    assert created.status_code == 201, created.text
    saved = created.json()
    assert saved["status"] == "draft" and not saved["pending_review"]
    entry_id, first = saved["id"], saved["version"]
    assert kb.stored(entry_id).author == "Cara Contributor"
    read = client.get(f"/entries/{entry_id}", headers=author).json()
    assert read["version"] == first
    edited = client.put(
        f"/entries/{entry_id}", json=NEW_ENTRY | {"status": "in-review", "version": first}, headers=author
    )
    assert edited.status_code == 200, edited.text
    assert edited.json()["status"] == "in-review" and edited.json()["version"] != first
    stale = client.put(
        f"/entries/{entry_id}",
        json=NEW_ENTRY | {"summary": "Lost?", "status": "draft", "version": first},
        headers=author,
    )
    assert "changed by someone else" in assert_problem(stale, 409)["detail"]
    assert kb.stored(entry_id).summary == NEW_ENTRY["summary"]


def test_an_edit_by_someone_who_may_only_read_the_entry_is_forbidden(client, tokens, kb):
    outsider = bearer(tokens, "Olu Other", "Beta Agency", "contributor")
    read = client.get(f"/entries/{PUBLIC}", headers=outsider).json()
    body = {k: v for k, v in read.items() if k in EDIT_FIELDS} | {"status": "in-review", "version": read["version"]}
    refused = client.put(f"/entries/{PUBLIC}", json=body | {"summary": "Mine now."}, headers=outsider)
    assert "can edit it" in assert_problem(refused, 403)["detail"]
    assert kb.store.revision(PUBLIC) is None and kb.stored(PUBLIC).summary == read["summary"]


def test_a_visitor_may_not_write_and_is_asked_for_a_token(client, kb):
    before = len(kb.store.files())
    refused = client.post("/entries", json=NEW_ENTRY)
    assert "Bearer" in assert_problem(refused, 401)["detail"]
    assert len(kb.store.files()) == before


def test_an_entry_sent_for_review_says_what_is_missing_per_field(client, tokens):
    author = bearer(tokens, "Cara Contributor", "Northfield City Council")
    body = assert_problem(
        client.post("/entries", json={"title": "Half done", "status": "in-review"}, headers=author), 400
    )
    assert {"summary", "outcome", "organisation"} <= set(body["errors"])


def test_review_rights(client, tokens, kb):
    contributor = bearer(tokens, "Cara Contributor", "Department for Education and Skills", "contributor")
    reviewer = bearer(tokens, "Rita Reviewer", "Beta Agency", "contributor,reviewer")
    version = next(i["version"] for i in client.get("/review", headers=reviewer).json() if i["id"] == IN_REVIEW)
    decision = {"decision": "approve", "version": version}
    assert (
        "only reviewers"
        in assert_problem(client.post(f"/entries/{IN_REVIEW}/review", json=decision, headers=contributor), 403)[
            "detail"
        ]
    )
    assert_problem(client.post(f"/entries/{IN_REVIEW}/review", json=decision), 401)
    assert kb.stored(IN_REVIEW).status == "in-review"
    no_comment = client.post(f"/entries/{IN_REVIEW}/review", json={"decision": "send-back"}, headers=reviewer)
    assert "comment" in assert_problem(no_comment, 400)["detail"]
    stale = client.post(f"/entries/{IN_REVIEW}/review", json=decision | {"version": "0" * 64}, headers=reviewer)
    assert_problem(stale, 409)
    approved = client.post(f"/entries/{IN_REVIEW}/review", json=decision, headers=reviewer)
    assert approved.status_code == 200, approved.text
    assert approved.json()["status"] == "published" and kb.stored(IN_REVIEW).reviewer == "Rita Reviewer"


def test_the_review_queue_is_the_librarys_for_the_caller(client, tokens, kb):
    from kb.review import review_queue

    reviewer = User("Rita Reviewer", "Beta Agency", ("contributor", "reviewer"), local=False)
    headers = bearer(tokens, reviewer.name, reviewer.organisation, "contributor,reviewer")
    queue = client.get("/review", headers=headers).json()
    expected = review_queue(kb, reviewer)
    assert [(i["id"], i["revision"]) for i in queue] == [(i.entry.id, i.revision) for i in expected]
    assert all(i["version"] != e.version for i, e in zip(queue, expected, strict=True)), "keyed, not the file hash"
    assert IN_REVIEW in [i["id"] for i in queue]
    assert client.get("/review").json() == []  # a visitor sees nothing in review


def test_a_reviewer_never_approves_their_own_entry(client, tokens):
    author = bearer(tokens, "Rita Reviewer", "Northfield City Council", "contributor,reviewer")
    saved = client.post("/entries", json=NEW_ENTRY | {"status": "in-review"}, headers=author).json()
    own = client.post(f"/entries/{saved['id']}/review", json={"decision": "approve"}, headers=author)
    assert "another reviewer" in assert_problem(own, 403)["detail"]


def test_an_edit_of_a_published_entry_by_a_contributor_waits_for_review(client, tokens, kb):
    editor = bearer(tokens, "Dee Editor", kb.stored(PUBLIC).organisation, "contributor")
    read = client.get(f"/entries/{PUBLIC}", headers=editor).json()
    fields = {k: v for k, v in read.items() if k in NEW_ENTRY or k in ("themes", "partners", "visibility")}
    body = fields | {"summary": "A better summary.", "status": "in-review", "version": read["version"]}
    saved = client.put(f"/entries/{PUBLIC}", json=body, headers=editor)
    assert saved.status_code == 200, saved.text
    assert saved.json()["pending_review"] is True
    assert client.get(f"/entries/{PUBLIC}").json()["summary"] == read["summary"]

    # While it waits, a second editor of the same organisation is told the entry is taken: a conflict.
    other = bearer(tokens, "Eve Editor", kb.stored(PUBLIC).organisation, "contributor")
    second = client.put(f"/entries/{PUBLIC}", json=body | {"summary": "Another summary."}, headers=other)
    assert "someone else's edit of this entry is pending" in assert_problem(second, 409)["detail"]


# --------------------------------------------------------------------------- problems and limits


def test_problem_details_for_each_kind_of_failure(client, kb, monkeypatch):
    assert_problem(client.get("/nowhere"), 404)
    assert_problem(client.delete("/stats"), 405)
    invalid = assert_problem(client.get("/search", params={"q": "x", "limit": 0}), 422)
    assert "query.limit" in invalid["errors"]
    assert_problem(client.post("/plan", content=b"{not json", headers={"content-type": "application/json"}), 422)
    monkeypatch.setattr(type(kb), "stats", lambda self, viewer=None: Path("/secret/place/of/index.db").read_text())
    crashed = assert_problem(client.get("/stats"), 500)
    assert "secret" not in crashed["detail"] and "index.db" not in crashed["detail"]


def test_a_body_past_the_cap_is_refused(make_client):
    client = make_client(max_body=2_000)
    big = {"plan": "We will agree a data sharing agreement with the council. " * 100}
    assert_problem(client.post("/plan", json=big), 413)

    def chunks():  # no Content-Length: the cap counts what arrives
        for _ in range(10):
            yield b"x" * 500

    sent = client.post("/plan", content=chunks(), headers={"content-type": "application/json"})
    assert_problem(sent, 413)
    assert client.post("/plan", json={"plan": "We will agree a data sharing agreement."}).status_code == 200


def test_each_token_has_its_own_request_rate(make_client, tokens):
    client = make_client(rate_per_minute=6, burst=3)
    first = bearer(tokens, "Ann One", roles="contributor")
    second = bearer(tokens, "Ben Two", roles="contributor")
    assert [client.get("/vocabulary", headers=first).status_code for _ in range(3)] == [200, 200, 200]
    refused = client.get("/vocabulary", headers=first)
    assert_problem(refused, 429)
    assert 1 <= int(refused.headers["retry-after"]) <= 10
    assert client.get("/vocabulary", headers=second).status_code == 200
    assert client.get("/vocabulary").status_code == 200  # a visitor is counted by address


def test_two_apps_on_one_database_share_each_token_s_request_rate(kb, tokens, database_url):
    database = Database(database_url)
    database.migrate()
    replicas = [
        TestClient(create_app(kb, tokens, rate_per_minute=6, burst=3, database=database), raise_server_exceptions=False)
        for _ in range(2)
    ]
    ann = bearer(tokens, "Ann One", roles="contributor")
    answers = [replicas[i % 2].get("/vocabulary", headers=ann) for i in range(4)]
    assert [a.status_code for a in answers[:3]] == [200, 200, 200]
    refused = assert_problem(answers[3], 429)
    assert "too many requests" in refused["detail"]
    assert 1 <= int(answers[3].headers["retry-after"]) <= 10
    assert replicas[0].get("/vocabulary", headers=ann).status_code == 429  # refused by both
    assert replicas[0].get("/vocabulary", headers=bearer(tokens, "Ben Two")).status_code == 200
    database.close()


def test_a_database_that_does_not_answer_leaves_each_app_its_own_request_rate(kb, tokens, caplog):
    down = Database(f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/lighthouse")
    client = TestClient(
        create_app(kb, tokens, rate_per_minute=6, burst=3, database=down), raise_server_exceptions=False
    )
    ann = bearer(tokens, "Ann One", roles="contributor")
    assert [client.get("/vocabulary", headers=ann).status_code for _ in range(3)] == [200, 200, 200]
    assert_problem(client.get("/vocabulary", headers=ann), 429)
    assert any("per process" in r.getMessage() for r in caplog.records if r.levelname == "WARNING")
    down.close()


def test_token_bucket_refills_at_its_rate():
    bucket = TokenBucket(per_minute=60, burst=2)
    assert [bucket.take("k", now=0.0) for _ in range(2)] == [0.0, 0.0]
    assert bucket.take("k", now=0.0) == pytest.approx(1.0)
    assert bucket.take("k", now=0.5) == pytest.approx(0.5)
    assert bucket.take("k", now=1.0) == 0.0


def test_openapi_documents_every_endpoint_with_problems(client):
    schema = client.get("/openapi.json").json()
    paths = {(path, method) for path, ops in schema["paths"].items() for method in ops}
    assert {
        ("/search", "get"),
        ("/plan", "post"),
        ("/entries", "post"),
        ("/entries/{entry_id}", "get"),
        ("/entries/{entry_id}", "put"),
        ("/entries/{entry_id}/similar", "get"),
        ("/entries/{entry_id}/history", "get"),
        ("/entries/{entry_id}/review", "post"),
        ("/review", "get"),
        ("/facets", "get"),
        ("/stats", "get"),
        ("/vocabulary", "get"),
        ("/export", "get"),
    } <= paths
    not_found = schema["paths"]["/entries/{entry_id}"]["get"]["responses"]["404"]["content"]
    assert list(not_found) == ["application/problem+json"]
    docs = client.get("/docs")
    assert docs.status_code == 200
    scripts = re.findall(r'(?:src|href)="([^"]+)"', docs.text)
    assert scripts and all(s.startswith("/docs-assets/") or s == "/openapi.json" for s in scripts), scripts
    for asset in scripts:  # everything the page loads is served here: nothing comes from a CDN
        assert client.get(asset).status_code == 200, asset


def test_the_answer_to_an_edit_waiting_for_review_withholds_what_its_editor_may_not_see(client, tokens, kb):
    stored = kb.stored(ANONYMOUS_ENTRY)
    editor = bearer(tokens, "Dee Editor", stored.organisation, "contributor")  # edits it, may not see its names
    read = client.get(f"/entries/{ANONYMOUS_ENTRY}", headers=editor).json()
    assert read["team"] == ""
    body = {k: v for k, v in read.items() if k not in ("id", "status", "withheld", "version", "lighthouse")}
    body = {k: v for k, v in body.items() if k in EDIT_FIELDS}
    sent = client.put(
        f"/entries/{ANONYMOUS_ENTRY}",
        json=body | {"summary": "Shorter.", "status": "in-review", "version": read["version"]},
        headers=editor,
    )
    assert sent.status_code == 200, sent.text
    assert sent.json()["pending_review"] is True
    assert stored.team not in sent.text and stored.contact not in sent.text and stored.author not in sent.text
    assert kb.store.revision(ANONYMOUS_ENTRY)[0].team == stored.team  # kept, not blanked


def test_a_version_is_no_hash_of_the_file_a_reader_could_test_guesses_against(client, tokens, kb):
    """An anonymous entry's file holds names withheld from readers; a plain hash of it would let a reader
    confirm a guessed name offline. The version handed out is keyed with a secret, and still works."""
    read = client.get(f"/entries/{ANONYMOUS_ENTRY}").json()
    stored = kb.store.version(ANONYMOUS_ENTRY)
    assert read["withheld"] and read["version"] and read["version"] != stored
    assert stored not in client.get(f"/entries/{ANONYMOUS_ENTRY}").text
    edit = {k: read[k] for k in ("title", "summary", "kind", "outcome", "organisation")} | {"status": "draft"}
    curator = bearer(tokens, "Cy Curator", "Cabinet Digital Office", "contributor,curator")
    odd = client.put(f"/entries/{ANONYMOUS_ENTRY}", json=edit | {"version": "é" * 64}, headers=curator)
    assert_problem(odd, 409)  # any version string is a stale one, never a server error
    key_file = tokens.path.with_name(tokens.path.name + ".key")
    assert key_file.stat().st_mode & 0o077 == 0, "the key is for its owner only"


def test_the_data_quality_facet_filters_the_api_s_searches_and_counts(client, kb):
    poor = client.get("/facets", params={"quality": "poor"}).json()
    expected = browse.facet_counts(kb, Filters.of(quality="poor", status="published"), viewer=ANONYMOUS)
    assert poor == {name: [{"value": v, "count": n} for v, n in values] for name, values in expected.items()}
    assert {"value": "poor", "count": 4} in poor["quality"]
    assert client.get("/facets", params={"quality": "awful"}).status_code == 422


def test_an_edit_through_the_api_reads_and_keeps_the_data_source_grades(client, tokens, kb):
    editor = bearer(tokens, "Dee Editor", kb.stored(PUBLIC).organisation, "contributor")
    read = client.get(f"/entries/{PUBLIC}", headers=editor).json()
    stored = kb.stored(PUBLIC)
    assert read["data_quality"]["Benefit claimant records"]["grades"]["uniqueness"]["rating"] == "poor"
    keep = ("themes", "partners", "visibility", "data_sources", "data_quality")
    body = {k: v for k, v in read.items() if k in NEW_ENTRY or k in keep}
    saved = client.put(
        f"/entries/{PUBLIC}", json=body | {"status": "in-review", "version": read["version"]}, headers=editor
    )
    assert saved.status_code == 200, saved.text
    proposed = kb.store.revision(PUBLIC)[0]
    assert proposed.data_sources == stored.data_sources and proposed.data_quality == stored.data_quality


def test_an_api_edit_keeps_grades_of_a_source_with_a_colon_in_its_name_and_a_bracket_in_a_note(client, tokens, kb):
    """Grades sent as JSON go into the entry as they are: never written in words and read back."""
    editor = bearer(tokens, "Dee Editor", kb.stored(PUBLIC).organisation, "contributor")
    read = client.get(f"/entries/{PUBLIC}", headers=editor).json()
    keep = ("themes", "partners", "visibility", "data_sources", "data_quality")
    body = {k: v for k, v in read.items() if k in NEW_ENTRY or k in keep}
    odd = {
        "grades": {
            "accuracy": {"rating": "good", "note": "matched (most rows"},
            "timeliness": {"rating": "poor", "note": "late: by weeks)"},
        },
        "graded": "2024-03",
    }
    body["data_sources"] = [*body["data_sources"], "HMRC: PAYE RTI"]
    body["data_quality"] = body["data_quality"] | {"HMRC: PAYE RTI": odd}
    saved = client.put(
        f"/entries/{PUBLIC}", json=body | {"status": "in-review", "version": read["version"]}, headers=editor
    )
    assert saved.status_code == 200, saved.text
    proposed = kb.store.revision(PUBLIC)[0]
    grades = proposed.data_quality["HMRC: PAYE RTI"]
    assert grades.graded == "2024-03"
    assert {d: (g.rating, g.note) for d, g in grades.grades.items()} == {
        "accuracy": ("good", "matched (most rows"),
        "timeliness": ("poor", "late: by weeks)"),
    }
    assert proposed.data_sources[-1] == "HMRC: PAYE RTI"


def test_the_api_takes_when_each_reuse_happened_and_its_benefit(client, tokens, kb):
    import datetime as dt

    from kb.entries import Reuse

    author = bearer(tokens, "Cara Contributor", "Northfield City Council", "contributor")
    other = "emergency-food-parcel-data-share"
    body = NEW_ENTRY | {
        "status": "draft",
        "lighthouse_stage": "replicated",
        "lighthouse_impact": "Permits in a day.",
        "lighthouse_reused_by": [PUBLIC, other],
        "lighthouse_reuse": {PUBLIC: {"date": "2024-05", "benefit": "saved 40 days"}},
    }
    created = client.post("/entries", json=body, headers=author)
    assert created.status_code == 201, created.text
    entry_id = created.json()["id"]
    month = dt.date.today().isoformat()[:7]
    assert kb.stored(entry_id).lighthouse.reuse == {PUBLIC: Reuse("2024-05", "saved 40 days"), other: Reuse(month)}
    read = client.get(f"/entries/{entry_id}", headers=author).json()
    assert read["lighthouse"]["reuse"][PUBLIC] == {"date": "2024-05", "benefit": "saved 40 days"}
    edit = body | {"version": read["version"], "lighthouse_reuse": {other: {"benefit": "took six weeks"}}}
    assert client.put(f"/entries/{entry_id}", json=edit, headers=author).status_code == 200
    assert kb.stored(entry_id).lighthouse.reuse == {  # what the edit left out is kept
        PUBLIC: Reuse("2024-05", "saved 40 days"),
        other: Reuse(month, "took six weeks"),
    }
    version = kb.store.version(entry_id)
    bad = body | {"version": version, "lighthouse_reuse": {PUBLIC: {"date": "May 2024"}, "nowhere": {"date": "2024"}}}
    said = assert_problem(client.put(f"/entries/{entry_id}", json=bad, headers=author), 400)["errors"]
    assert "'May 2024' is not a date" in said["lighthouse_reuse"][0]
    assert "nowhere is not in Reused by" in said["lighthouse_reuse"][1]
