# ruff: noqa: F811  (the fixtures of test_api are imported by name)
"""Evidence notes through the HTTP API: the library's rules, the same 404 for a hidden entry's notes."""

from __future__ import annotations

from kb import evidence
from tests.unit.test_api import (  # noqa: F401  (fixtures)
    HOME_AFFAIRS,
    MISSING,
    ORG_ONLY,
    PUBLIC,
    as_missing,
    assert_problem,
    bearer,
    client,
    make_client,
    tokens,
)


def test_a_contributor_adds_a_note_and_everyone_reads_it_with_the_recurrence(client, tokens, kb):
    ana = bearer(tokens, "Ana Okafor", "Northfield City Council")
    added = client.post(f"/entries/{PUBLIC}/notes", json={"text": "We hit this too.", "year": 2021}, headers=ana)
    assert added.status_code == 201, added.text
    assert added.json()["organisation"] == "Northfield City Council" and added.json()["author"] == "Ana Okafor"
    listed = client.get(f"/entries/{PUBLIC}/notes")
    assert listed.status_code == 200
    body = listed.json()
    assert [n["text"] for n in body["notes"]] == ["We hit this too."]
    assert body["recurrence"]["organisations"] == 2 and body["recurrence"]["text"].startswith("seen in 2 organisations")
    assert [n.id for n in evidence.notes(kb, PUBLIC)] == [added.json()["id"]]


def test_an_anonymous_note_names_nobody_to_a_visitor(client, tokens):
    ben = bearer(tokens, "Ben Price", "Beta Agency")
    client.post(f"/entries/{PUBLIC}/notes", json={"text": "Same.", "year": 2020, "anonymous": True}, headers=ben)
    note = client.get(f"/entries/{PUBLIC}/notes").json()["notes"][0]
    assert note["organisation"] == "" and note["author"] == ""
    assert client.get(f"/entries/{PUBLIC}/notes", headers=ben).json()["notes"][0]["organisation"] == "Beta Agency"


def test_notes_on_a_hidden_entry_answer_exactly_as_on_a_missing_one(client, tokens, kb):
    other = bearer(tokens, "Olu Other", "Beta Agency")
    evidence.add_note(kb, ORG_ONLY, text="Inside note.", year=2024, organisation=HOME_AFFAIRS)
    for method, body in (("GET", None), ("POST", {"text": "Sneaky.", "year": 2024})):
        hidden = client.request(method, f"/entries/{ORG_ONLY}/notes", json=body, headers=other)
        missing = client.request(method, f"/entries/{MISSING}/notes", json=body, headers=other)
        assert_problem(hidden, 404)
        assert as_missing(hidden, ORG_ONLY) == as_missing(missing, MISSING)
    assert len(evidence.notes(kb, ORG_ONLY)) == 1


def test_a_visitor_is_asked_for_a_token_and_a_bad_year_is_a_clear_problem(client, tokens):
    assert_problem(client.post(f"/entries/{PUBLIC}/notes", json={"text": "Hi", "year": 2020}), 401)
    ana = bearer(tokens, "Ana Okafor", "Northfield City Council")
    late = client.post(f"/entries/{PUBLIC}/notes", json={"text": "Hi", "year": 9999}, headers=ana)
    assert "year" in assert_problem(late, 400)["detail"]
    schema = client.get("/openapi.json").json()["paths"]
    assert {"get", "post"} <= set(schema["/entries/{entry_id}/notes"])


def test_only_its_author_or_a_curator_withdraws_a_note(client, tokens, kb):
    ana = bearer(tokens, "Ana Okafor", "Northfield City Council")
    ben = bearer(tokens, "Ben Price", "Beta Agency")
    note = client.post(f"/entries/{PUBLIC}/notes", json={"text": "Ours too.", "year": 2021}, headers=ana).json()
    assert_problem(client.delete(f"/entries/{PUBLIC}/notes/{note['id']}", headers=ben), 403)
    assert_problem(client.delete(f"/entries/{PUBLIC}/notes/20200101-abcdef", headers=ana), 404)
    assert client.delete(f"/entries/{PUBLIC}/notes/{note['id']}", headers=ana).status_code == 204
    assert client.get(f"/entries/{PUBLIC}/notes").json()["notes"] == []
    assert [v.note.text for v in evidence.note_history(kb, PUBLIC, note["id"])] == ["Ours too."]


def test_its_author_changes_a_note_and_its_history_keeps_what_it_said(client, tokens, kb):
    ana = bearer(tokens, "Ana Okafor", "Northfield City Council")
    ben = bearer(tokens, "Ben Price", "Beta Agency")
    note = client.post(f"/entries/{PUBLIC}/notes", json={"text": "Ours too.", "year": 2021}, headers=ana).json()
    path = f"/entries/{PUBLIC}/notes/{note['id']}"
    assert_problem(client.patch(path, json={"text": "Not mine."}, headers=ben), 403)
    assert_problem(client.patch(path, json={"text": "Anonymous edit."}), 401)
    changed = client.patch(path, json={"text": "Ours too, in 2022 as well.", "year": 2022}, headers=ana)
    assert changed.status_code == 200, changed.text
    assert (changed.json()["text"], changed.json()["year"], changed.json()["link"]) == (
        "Ours too, in 2022 as well.",
        2022,
        "",
    )
    assert [n.text for n in evidence.notes(kb, PUBLIC)] == ["Ours too, in 2022 as well."]
    history = client.get(f"{path}/history").json()
    assert [(v["note"]["text"], v["note"]["year"]) for v in history] == [("Ours too.", 2021)]
    assert_problem(client.patch(path, json={"link": "javascript:alert(1)"}, headers=ana), 400)


def test_an_anonymous_notes_history_names_nobody_to_a_visitor(client, tokens):
    ana = bearer(tokens, "Ana Okafor", "Northfield City Council")
    note = client.post(f"/entries/{PUBLIC}/notes", json={"text": "Same.", "year": 2020}, headers=ana).json()
    path = f"/entries/{PUBLIC}/notes/{note['id']}"
    client.patch(path, json={"anonymous": True}, headers=ana)
    for version in client.get(f"{path}/history").json():
        assert version["note"]["organisation"] == "" and version["note"]["author"] == ""
    assert client.get(f"{path}/history", headers=ana).json()[0]["note"]["organisation"] == "Northfield City Council"


def test_a_hidden_entrys_note_history_answers_like_a_missing_ones(client, tokens, kb):
    other = bearer(tokens, "Ben Price", "Beta Agency")
    added = evidence.add_note(kb, ORG_ONLY, text="Inside note.", year=2024, organisation=HOME_AFFAIRS)
    evidence.edit_note(kb, ORG_ONLY, added.id, text="Inside note, changed.")
    for method, suffix, body in (("GET", "/history", None), ("PATCH", "", {"text": "x"})):
        hidden = client.request(method, f"/entries/{ORG_ONLY}/notes/{added.id}{suffix}", json=body, headers=other)
        missing = client.request(method, f"/entries/{MISSING}/notes/{added.id}{suffix}", json=body, headers=other)
        assert_problem(hidden, 404)
        assert as_missing(hidden, ORG_ONLY) == as_missing(missing, MISSING)
