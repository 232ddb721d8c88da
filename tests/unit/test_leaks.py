"""Nothing a viewer may not see reaches them: earlier versions, links to hidden entries, what `withheld`
names, the words of a refusal (of a hidden or an unreadable entry), blank ids and blank `--as` names, whom to
ask (the directory of teams, others on the same themes, organisation pages), and no entry's text goes through
a symbolic link, through the library, the command line, the app and the HTTP API."""

from __future__ import annotations

import csv
import io
import json
import random
import re
import tempfile
from dataclasses import replace
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from streamlit.testing.v1 import AppTest

from kb import Entry, EntryError, KBError, KnowledgeBase, NotFound, Settings
from kb import directory as whom
from kb.access import ANONYMOUS, member_of
from kb.cli import cli
from kb.drafting import Draft, save_draft
from kb.editing import open_edit, save_edit
from kb.embedder import HashingEmbedder
from kb.entries import Lighthouse, slugify
from kb.entry_files import parse_entry, render_entry
from kb.identity import User
from kb.review import review_queue
from kb.store import HISTORY_DIR, REVISIONS_DIR, EntryStore
from tests.conftest import ROOT

APP = str(ROOT / "app.py")
TIMEOUT = 60

OWNER_ORG = "Alpha Office"
OTHER_ORG = "Beta Agency"
TEAM, CONTACT, AUTHOR = "Ledger Reconciliation Team", "ledgers@alpha.example.gov", "Sam Adeyemi"
REVIEWER = User("Rita Reviewer", OTHER_ORG, ("contributor", "reviewer"), local=False)
OWNER_REVIEWER = User("Owen Reviewer", OWNER_ORG, ("reviewer",), local=False)
COLLEAGUE = User("Cat Colleague", OWNER_ORG, ("contributor",), local=False)  # edits, but does not review
# Readers of an anonymous entry: neither reviewers nor its author. A visitor's name is blank, like the
# anonymous entry's author as readers see it: two blank names must never count as "the author".
READERS = [ANONYMOUS, member_of(OWNER_ORG), member_of(OTHER_ORG), COLLEAGUE]

MISSING = "no-such-ledger-entry"
STATUSES_ALL = ("draft", "in-review", "published", "archived")


def write_entry(folder: Path, entry_id: str, *, lessons: str = "", **fields) -> str:
    """An entry file with YAML front matter (public, published, Alpha Office unless told otherwise)."""
    front = {
        "id": entry_id,
        "title": entry_id.replace("-", " ").capitalize(),
        "summary": f"What the {entry_id.replace('-', ' ')} taught us.",
        "kind": "project",
        "outcome": "partial",
        "organisation": OWNER_ORG,
        "status": "published",
        "visibility": "public",
        **fields,
    }
    text = yaml.safe_dump(front, sort_keys=False, allow_unicode=True)
    lessons = lessons or f"Reconcile the ledgers before the {entry_id.replace('-', ' ')} starts."
    (folder / f"{entry_id}.md").write_text(f"---\n{text}---\n\n## Lessons\n\n{lessons}\n", encoding="utf-8")
    return entry_id


def edit_as_operator(kb: KnowledgeBase, entry_id: str, **changes) -> None:
    """Save a changed entry the way every save does: the version it replaces goes to the history."""
    kb.save(replace(kb.stored(entry_id), **changes), expected_version=kb.store.version(entry_id))


def cli_run(*args: str):
    return CliRunner().invoke(cli, list(args))


def cli_refusal(*args: str) -> str:
    """The one line a refused command prints on stderr; it prints nothing on stdout and does not crash."""
    result = cli_run(*args)
    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit), result.exception  # a message, not a traceback
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


def open_app(page: str, **query: str) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=TIMEOUT).run()
    at.switch_page(f"app_pages/{page}.py").run()
    at.query_params.update(query)
    return at.run()


def as_local_user(monkeypatch, name: str, organisation: str, roles: str) -> None:
    """Who the app's next run is for (read from KB_USER_* on every run)."""
    monkeypatch.setenv("KB_USER_NAME", name)
    monkeypatch.setenv("KB_USER_ORGANISATION", organisation)
    monkeypatch.setenv("KB_USER_ROLES", roles)


def page_elements(at: AppTest) -> list[str]:
    """Every element and container of the page and the sidebar, as text (Markdown escapes removed)."""
    assert not at.exception, [e.value for e in at.exception]
    nodes = [node for root in (at.main, at.sidebar) for node in root if node.proto is not None]
    return [str(node.proto).replace("\\", "") for node in nodes]


# --------------------------------------------------------------------------- 1. earlier versions

ANONYMOUS_ENTRY = "anonymous-ledger-pilot"


def write_anonymous_edited_once(kb, folder: Path, author: str) -> str:
    """An anonymous entry, edited once: its first version is in the history."""
    write_entry(
        folder,
        ANONYMOUS_ENTRY,
        anonymous=True,
        team=TEAM,
        contact=CONTACT,
        author=author,
        summary="The first version of the ledger pilot.",
    )
    kb.sync()
    edit_as_operator(kb, ANONYMOUS_ENTRY, summary="The ledgers were reconciled at last.")
    return ANONYMOUS_ENTRY


# With no author (as an imported entry may have), a visitor's blank name is the blank author's.
@pytest.mark.parametrize("author", [AUTHOR, ""], ids=["with an author", "without an author"])
def test_earlier_versions_of_an_anonymous_entry_name_no_one_to_readers(kb, entries_dir, author):
    write_anonymous_edited_once(kb, entries_dir, author)
    for reader in READERS:
        versions = kb.history(ANONYMOUS_ENTRY, viewer=reader)
        assert [v.entry.summary for v in versions] == ["The first version of the ledger pilot."], reader
        (version,) = versions
        assert (version.entry.team, version.entry.contact, version.entry.author) == ("", "", ""), reader
        for secret in (TEAM, CONTACT, AUTHOR):
            assert secret not in version.text, (reader, secret)
    insiders = [None, REVIEWER] + ([User(author, OTHER_ORG, ("contributor",), local=False)] if author else [])
    for insider in insiders:
        (version,) = kb.history(ANONYMOUS_ENTRY, viewer=insider)
        assert (version.entry.team, version.entry.contact, version.entry.author) == (TEAM, CONTACT, author)


def test_a_version_that_was_organisation_only_stays_with_that_organisation(kb, entries_dir):
    entry_id = write_entry(entries_dir, "ledger-pilot-made-public", visibility="organisation", summary="Internal.")
    kb.sync()
    edit_as_operator(kb, entry_id, visibility="public", summary="Public now.")
    for outsider in (ANONYMOUS, member_of(OTHER_ORG), REVIEWER):
        assert kb.get(entry_id, viewer=outsider).summary == "Public now."  # the entry itself is theirs to read
        assert kb.history(entry_id, viewer=outsider) == [], outsider
    for insider in (None, member_of(OWNER_ORG), OWNER_REVIEWER):
        assert [v.entry.summary for v in kb.history(entry_id, viewer=insider)] == ["Internal."], insider


def test_a_version_that_was_a_draft_is_not_shown_to_readers(kb, entries_dir):
    entry_id = write_entry(entries_dir, "ledger-pilot-drafted", status="draft", author=AUTHOR, summary="Unreviewed.")
    kb.sync()
    edit_as_operator(kb, entry_id, status="published", summary="Reviewed and published.")
    for reader in (ANONYMOUS, member_of(OWNER_ORG), COLLEAGUE):
        assert kb.history(entry_id, viewer=reader) == [], reader
    the_author = User(AUTHOR, OWNER_ORG, ("contributor",), local=False)
    for insider in (None, REVIEWER, OWNER_REVIEWER, the_author):
        assert [v.entry.summary for v in kb.history(entry_id, viewer=insider)] == ["Unreviewed."], insider


def test_once_an_entry_is_anonymous_its_earlier_versions_name_no_one_either(kb, entries_dir):
    entry_id = write_entry(entries_dir, "ledger-pilot-anonymised", team=TEAM, contact=CONTACT, author=AUTHOR)
    kb.sync()
    edit_as_operator(kb, entry_id, anonymous=True)
    for reader in READERS:
        (version,) = kb.history(entry_id, viewer=reader)
        assert (version.entry.team, version.entry.contact, version.entry.author) == ("", "", ""), reader
        for secret in (TEAM, CONTACT, AUTHOR):
            assert secret not in version.text, (reader, secret)
    (version,) = kb.history(entry_id, viewer=REVIEWER)
    assert version.entry.team == TEAM


def test_earlier_versions_leave_out_links_to_hidden_entries(kb, entries_dir):
    hidden_related = write_entry(entries_dir, "alpha-only-ledger-audit", visibility="organisation")
    hidden_reuse = write_entry(entries_dir, "alpha-only-ledger-reuse", visibility="organisation")
    entry_id = write_entry(
        entries_dir,
        "ledger-pilot-relinked",
        related=[hidden_related, "flood-response-data-cell"],
        lighthouse={"stage": "pilot", "impact": "Ledgers agree.", "reused_by": [hidden_reuse]},
    )
    kb.sync()
    edit_as_operator(kb, entry_id, related=[], lighthouse=None)
    (version,) = kb.history(entry_id, viewer=member_of(OTHER_ORG))
    assert version.entry.related == ["flood-response-data-cell"]
    assert version.entry.lighthouse.reused_by == []
    assert hidden_related not in version.text and hidden_reuse not in version.text
    (version,) = kb.history(entry_id, viewer=member_of(OWNER_ORG))
    assert version.entry.related == [hidden_related, "flood-response-data-cell"]
    assert version.entry.lighthouse.reused_by == [hidden_reuse]


def test_entry_page_earlier_versions_name_no_one_to_a_reader(kb, entries_dir, monkeypatch):
    write_anonymous_edited_once(kb, entries_dir, AUTHOR)
    # The same session, run again as each person: the knowledge base is loaded once.
    as_local_user(monkeypatch, AUTHOR, OWNER_ORG, "contributor")
    at = open_app("entry", id=ANONYMOUS_ENTRY)
    for name, organisation, sees_names in (
        (AUTHOR, OWNER_ORG, True),  # the author: shows that the page would show the names if it could
        ("Cat Colleague", OWNER_ORG, False),
        ("Otto Outsider", OTHER_ORG, False),
    ):
        as_local_user(monkeypatch, name, organisation, "contributor")
        at.run()
        assert any(e.label.startswith("Earlier versions (1)") for e in at.expander), name
        assert any("The first version of the ledger pilot." in c.value for c in at.code), name
        page = "\n".join(page_elements(at))
        for secret in (TEAM, CONTACT, AUTHOR):
            assert (secret in page) == sees_names, (name, secret)


# --------------------------------------------------------------------------- 2. links to hidden entries

HIDDEN_RELATED = "alpha-only-ledger-audit"
HIDDEN_REUSE = "alpha-only-scorecard-reuse"
HIDDEN_TITLES = ("Alpha only ledger audit", "Alpha only scorecard reuse")
LINKING = "scorecard-shared-across-councils"
VISIBLE_RELATED = "flood-response-data-cell"
VISIBLE_REUSE = "benefits-and-housing-data-sharing-pilot"
OUTSIDER = member_of(OTHER_ORG)


@pytest.fixture
def linked(kb, entries_dir):
    """A public entry of Beta Agency linking to two entries only Alpha Office may see, and to two public ones."""
    write_entry(entries_dir, HIDDEN_RELATED, visibility="organisation", title=HIDDEN_TITLES[0])
    write_entry(entries_dir, HIDDEN_REUSE, visibility="organisation", title=HIDDEN_TITLES[1])
    write_entry(
        entries_dir,
        LINKING,
        organisation=OTHER_ORG,
        related=[HIDDEN_RELATED, VISIBLE_RELATED],
        lighthouse={
            "stage": "proven",
            "impact": "Councils compare scores.",
            "reused_by": [HIDDEN_REUSE, VISIBLE_REUSE],
        },
    )
    kb.sync()
    return LINKING


def test_get_and_show_leave_out_links_to_hidden_entries(kb, linked):
    shown = kb.show(LINKING, viewer=OUTSIDER)
    assert shown.entry.related == [VISIBLE_RELATED]
    assert shown.entry.lighthouse.reused_by == [VISIBLE_REUSE]
    assert set(shown.withheld) == {"related", "lighthouse.reused_by"}
    assert kb.get(LINKING, viewer=OUTSIDER) == shown.entry
    insider = kb.show(LINKING, viewer=member_of(OWNER_ORG))
    assert insider.entry.related == [HIDDEN_RELATED, VISIBLE_RELATED]
    # Named for every reader, whether or not anything was cut, so that naming them tells nothing.
    assert set(insider.withheld) == {"related", "lighthouse.reused_by"}
    assert kb.show(LINKING).withheld == (), "the operator is shown everything"


def test_cli_show_as_an_organisation_leaves_out_links_to_hidden_entries(kb, linked):
    text = cli_run("show", LINKING, "--as", OTHER_ORG)
    assert text.exit_code == 0, text.output
    assert VISIBLE_RELATED in text.stdout and VISIBLE_REUSE in text.stdout
    assert HIDDEN_RELATED not in text.output and HIDDEN_REUSE not in text.output
    as_json = cli_run("show", LINKING, "--as", OTHER_ORG, "--json")
    assert as_json.exit_code == 0, as_json.output
    data = json.loads(as_json.stdout)
    assert data["related"] == [VISIBLE_RELATED]
    assert data["lighthouse"]["reused_by"] == [VISIBLE_REUSE]
    assert sorted(data["withheld"]) == ["lighthouse.reused_by", "related"]
    assert HIDDEN_RELATED not in as_json.output and HIDDEN_REUSE not in as_json.output


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_cli_export_as_an_organisation_names_no_hidden_entry(kb, linked, fmt):
    everything = cli_run("export", "--format", fmt)
    assert HIDDEN_RELATED in everything.stdout  # the operator's export holds them: this reader's must not
    result = cli_run("export", "--format", fmt, "--as", OTHER_ORG)
    assert result.exit_code == 0, result.output
    for hidden in (HIDDEN_RELATED, HIDDEN_REUSE):
        assert hidden not in result.output
    if fmt == "csv":
        rows = {row["id"]: row for row in csv.DictReader(io.StringIO(result.stdout))}
        row = rows[LINKING]
        assert (row["related"], row["lighthouse.reused_by"]) == (VISIBLE_RELATED, VISIBLE_REUSE)
        withheld = set(row["withheld"].split("; "))
    else:
        records = {r["id"]: r for r in map(json.loads, filter(None, result.stdout.splitlines()))}
        row = records[LINKING]
        assert (row["related"], row["lighthouse"]["reused_by"]) == ([VISIBLE_RELATED], [VISIBLE_REUSE])
        withheld = set(row["withheld"])
    assert withheld == {"related", "lighthouse.reused_by"}


def test_edit_form_offers_no_hidden_entry_and_the_saved_edit_keeps_the_hidden_links(
    kb, linked, entries_dir, monkeypatch
):
    as_local_user(monkeypatch, "Bea Editor", OTHER_ORG, "contributor")  # may edit, may not see Alpha's entries
    published = (entries_dir / f"{LINKING}.md").read_bytes()
    at = open_app("submit", edit=LINKING)
    assert at.title[0].value.startswith("Edit:")
    for key in ("draft_related", "draft_lighthouse_reused_by"):
        field = at.multiselect(key=key)
        offered = [*field.options, *field.value, *field.values]
        assert offered, key
        for hidden in (HIDDEN_RELATED, HIDDEN_REUSE, *HIDDEN_TITLES):
            assert hidden not in offered, (key, hidden)
    assert at.multiselect(key="draft_related").value == [VISIBLE_RELATED]
    assert at.multiselect(key="draft_lighthouse_reused_by").value == [VISIBLE_REUSE]
    at.text_area(key="draft_summary").input("Councils now compare their scorecards every quarter.")
    next(b for b in at.button if b.label == "Send for review").click().run()
    assert not at.exception
    revision, _ = kb.store.revision(LINKING)  # a reader's edit of a published entry waits for review
    assert revision.summary == "Councils now compare their scorecards every quarter."
    assert sorted(revision.related) == sorted([VISIBLE_RELATED, HIDDEN_RELATED])
    assert sorted(revision.lighthouse.reused_by) == sorted([VISIBLE_REUSE, HIDDEN_REUSE])
    assert (entries_dir / f"{LINKING}.md").read_bytes() == published


def test_an_edit_written_at_once_keeps_links_its_editor_could_not_see(kb, entries_dir, linked):
    editor = User("Bea Editor", OTHER_ORG, ("contributor",), local=False)
    entry_id = write_entry(
        entries_dir,
        "bea-draft-scorecard",
        organisation=OTHER_ORG,
        status="draft",
        author=editor.as_author,
        related=[HIDDEN_RELATED, VISIBLE_RELATED],
    )
    kb.sync()
    target = open_edit(kb, entry_id, editor)
    assert target.entry.related == [VISIBLE_RELATED] and not target.waits_for_review
    draft = Draft.from_entry(target.entry)
    draft.related = []  # the editor removes the one link they can see
    save_draft(kb, draft, editor, status="draft", edit_id=entry_id, expected_version=target.version)
    assert kb.stored(entry_id).related == [HIDDEN_RELATED]


UNLINKED = "ledger-pilot-without-links"  # links nothing, not a lighthouse
NAMELESS = "anonymous-ledger-pilot-without-names"  # anonymous, with no team, contact, author or revised_by
NAMED = "anonymous-ledger-pilot-with-names"
LINK_FIELDS = {"related", "lighthouse.reused_by"}
NAME_FIELDS = {"team", "contact", "author", "revised_by"}
# For any reader: the same names whatever the entry holds, so that the list tells them nothing.
WITHHELD_FROM_READERS = {UNLINKED: LINK_FIELDS, NAMELESS: LINK_FIELDS | NAME_FIELDS, NAMED: LINK_FIELDS | NAME_FIELDS}


@pytest.fixture
def withholding_cases(kb, entries_dir):
    write_entry(entries_dir, UNLINKED)
    write_entry(entries_dir, NAMELESS, anonymous=True)
    write_entry(entries_dir, NAMED, anonymous=True, team=TEAM, contact=CONTACT, author=AUTHOR, revised_by="Ed Itor")
    kb.sync()


def test_withheld_names_the_same_fields_whether_or_not_anything_was_there(kb, withholding_cases):
    for reader in READERS:
        for entry_id, expected in WITHHELD_FROM_READERS.items():
            assert set(kb.show(entry_id, viewer=reader).withheld) == expected, (reader, entry_id)
        named = kb.show(NAMED, viewer=reader).entry
        assert (named.team, named.contact, named.author, named.revised_by) == ("", "", "", ""), reader
    for entry_id in WITHHELD_FROM_READERS:
        # A reviewer may see who wrote an anonymous entry: only the links are named for them.
        assert set(kb.show(entry_id, viewer=REVIEWER).withheld) == LINK_FIELDS, entry_id
        assert kb.show(entry_id).withheld == (), "the operator is shown everything"


def exported_withheld(fmt: str, *as_viewer: str) -> dict[str, set[str] | None]:
    """The withheld fields of each entry in an export (None where the export has no such column)."""
    result = cli_run("export", "--format", fmt, *as_viewer)
    assert result.exit_code == 0, result.output
    if fmt == "csv":
        rows = list(csv.DictReader(io.StringIO(result.stdout)))
        return {r["id"]: None if "withheld" not in r else set(filter(None, r["withheld"].split("; "))) for r in rows}
    records = map(json.loads, filter(None, result.stdout.splitlines()))
    return {r["id"]: None if "withheld" not in r else set(r["withheld"]) for r in records}


def test_cli_names_the_same_withheld_fields_whether_or_not_anything_was_there(kb, withholding_cases):
    for entry_id, expected in WITHHELD_FROM_READERS.items():
        result = cli_run("show", entry_id, "--as", OTHER_ORG, "--json")
        assert result.exit_code == 0, result.output
        assert set(json.loads(result.stdout)["withheld"]) == expected, entry_id
        assert "withheld" not in json.loads(cli_run("show", entry_id, "--json").stdout), "the operator's own view"
    for fmt in ("csv", "jsonl"):
        as_visitor = exported_withheld(fmt, "--as", "anonymous")
        assert {i: as_visitor[i] for i in WITHHELD_FROM_READERS} == WITHHELD_FROM_READERS, fmt
        assert set(exported_withheld(fmt).values()) == {None}, "the operator's export withholds nothing"


# --------------------------------------------------------------------------- 3. hidden answers like missing

NOT_INDEXED = "alpha-only-ledger-audit-not-indexed"


@pytest.fixture
def hidden_entries(kb, entries_dir, linked):
    """HIDDEN_RELATED is indexed; NOT_INDEXED is written after the last sync."""
    write_entry(entries_dir, NOT_INDEXED, visibility="organisation")
    return (HIDDEN_RELATED, NOT_INDEXED)


OUTSIDE_EDITOR = User("Bea Editor", OTHER_ORG, ("contributor",), local=False)
LIBRARY_SURFACES = {
    "get": lambda kb, entry_id: kb.get(entry_id, viewer=OUTSIDER),
    "show": lambda kb, entry_id: kb.show(entry_id, viewer=OUTSIDER),
    "similar": lambda kb, entry_id: kb.similar(entry_id, viewer=OUTSIDER),
    "history": lambda kb, entry_id: kb.history(entry_id, viewer=OUTSIDER),
    "open_edit": lambda kb, entry_id: open_edit(kb, entry_id, OUTSIDE_EDITOR),
}


def not_found_words(call, entry_id: str) -> str:
    """The NotFound message for this id, with the id itself replaced."""
    with pytest.raises(NotFound) as refused:
        call(entry_id)
    return str(refused.value).replace(entry_id, "<id>")


@pytest.mark.parametrize("surface", LIBRARY_SURFACES)
def test_a_hidden_entry_is_refused_in_the_words_of_a_missing_one(kb, hidden_entries, surface, tmp_path):
    call = LIBRARY_SURFACES[surface]
    missing = not_found_words(lambda entry_id: call(kb, entry_id), MISSING)
    for hidden in hidden_entries:
        assert not_found_words(lambda entry_id: call(kb, entry_id), hidden) == missing, hidden
    assert str(tmp_path) not in missing


def test_similar_refuses_an_entry_hidden_since_it_was_indexed_like_a_missing_one(kb, entries_dir):
    # Indexed while public, then made organisation-only in its file (the source of truth) before the next
    # sync: `get` already refuses it, and `similar` must answer the same, not list its neighbours.
    entry_id = write_entry(entries_dir, "ledger-pilot-withdrawn-to-alpha")
    kb.sync()
    write_entry(entries_dir, entry_id, visibility="organisation")
    missing = not_found_words(lambda i: kb.get(i, viewer=OUTSIDER), MISSING)
    assert not_found_words(lambda i: kb.get(i, viewer=OUTSIDER), entry_id) == missing
    assert not_found_words(lambda i: kb.similar(i, viewer=OUTSIDER), entry_id) == missing


@pytest.mark.parametrize("command", ["show", "similar"])
def test_cli_refuses_a_hidden_entry_in_the_words_of_a_missing_one(kb, hidden_entries, command, tmp_path):
    missing = cli_refusal(command, MISSING, "--as", OTHER_ORG)
    for hidden in hidden_entries:
        refusal = cli_refusal(command, hidden, "--as", OTHER_ORG)
        assert refusal.replace(hidden, "<id>") == missing.replace(MISSING, "<id>"), hidden
        assert str(tmp_path) not in refusal
    assert str(tmp_path) not in missing


@pytest.mark.parametrize("page, parameter", [("entry", "id"), ("submit", "edit")])
def test_app_shows_the_same_page_for_a_hidden_and_a_missing_entry(linked, monkeypatch, tmp_path, page, parameter):
    as_local_user(monkeypatch, "Bea Editor", OTHER_ORG, "contributor")
    pages = {}
    for entry_id in (HIDDEN_RELATED, MISSING):
        at = open_app(page, **{parameter: entry_id})
        pages[entry_id] = [element.replace(entry_id, "<id>") for element in page_elements(at)]
        assert "Entry not found" in [t.value for t in at.title], entry_id
        assert not any(str(tmp_path) in element for element in pages[entry_id])
    assert pages[HIDDEN_RELATED] == pages[MISSING]


# Ways an entry file cannot be read: the line that breaks its front matter, and what the operator is told.
# Each names the secret merger, which a reader must not learn from a refusal.
UNREADABLE = {
    "invalid YAML": ("contact: [merger@alpha.example.gov", "not valid YAML"),
    "a value not allowed": ("evidence: merger-board-minutes", "'merger-board-minutes' is not allowed"),
    "a key given twice": ("team: Merger Taskforce", "gives 'team' twice"),
}


@pytest.fixture
def unreadable_entries(kb, entries_dir) -> dict[str, str]:
    """An entry broken in each of those ways after it was indexed (so `similar` holds its passages), by id,
    with what the operator is told about it."""
    broken = {}
    for kind, (line, detail) in UNREADABLE.items():
        entry_id = write_entry(entries_dir, slugify(f"ledger pilot with {kind}"), team="Merger Taskforce")
        broken[entry_id] = (line, detail)
    kb.sync()
    for entry_id, (line, _) in broken.items():
        path = entries_dir / f"{entry_id}.md"
        front, end, rest = path.read_text(encoding="utf-8").partition("\n---\n")
        path.write_text(f"{front}\n{line}{end}{rest}", encoding="utf-8")
    return {entry_id: detail for entry_id, (_, detail) in broken.items()}


@pytest.mark.parametrize("surface", LIBRARY_SURFACES)
def test_an_unreadable_entry_is_refused_in_the_words_of_a_missing_one(kb, unreadable_entries, surface):
    call = LIBRARY_SURFACES[surface]
    missing = not_found_words(lambda entry_id: call(kb, entry_id), MISSING)
    for broken in unreadable_entries:
        assert not_found_words(lambda entry_id: call(kb, entry_id), broken) == missing, broken


def test_the_operator_is_told_what_is_wrong_with_an_unreadable_entry(kb, unreadable_entries):
    calls = [kb.get, kb.show, kb.similar, kb.history, lambda entry_id: open_edit(kb, entry_id, None)]
    for broken, detail in unreadable_entries.items():
        for call in calls:
            with pytest.raises(EntryError, match=re.escape(detail)):
                call(broken)


@pytest.mark.parametrize("command", ["show", "similar"])
def test_cli_refuses_an_unreadable_entry_to_a_reader_and_tells_the_operator(kb, unreadable_entries, command):
    missing = cli_refusal(command, MISSING, "--as", OTHER_ORG).replace(MISSING, "<id>")
    for broken, detail in unreadable_entries.items():
        assert cli_refusal(command, broken, "--as", OTHER_ORG).replace(broken, "<id>") == missing, broken
        assert detail in cli_refusal(command, broken), broken


@pytest.mark.parametrize("page, parameter", [("entry", "id"), ("submit", "edit")])
def test_app_shows_an_unreadable_entry_as_a_missing_one(unreadable_entries, monkeypatch, page, parameter):
    # Not a reviewer: in local mode a reviewer runs this copy, and the sidebar lists its file problems for them.
    as_local_user(monkeypatch, "Bea Editor", OTHER_ORG, "contributor")
    pages = {}
    for entry_id in (*unreadable_entries, MISSING):
        at = open_app(page, **{parameter: entry_id})
        pages[entry_id] = [element.replace(entry_id, "<id>") for element in page_elements(at)]
        assert "Entry not found" in [t.value for t in at.title], entry_id
    for broken in unreadable_entries:
        assert pages[broken] == pages[MISSING], broken


# --------------------------------------------------------------------------- 4. blank ids


@pytest.mark.parametrize("blank", ["", "   "])
def test_blank_ids_are_refused_with_a_clear_message(kb, blank):
    for call in (kb.get, kb.show, kb.similar, kb.history):
        with pytest.raises(NotFound, match="entry id"):
            call(blank)


@pytest.mark.parametrize("command", ["show", "similar"])
def test_cli_refuses_a_blank_id(kb, command):
    assert "entry id" in cli_refusal(command, "")
    assert "entry id" in cli_refusal(command, "   ")


# --------------------------------------------------------------------------- 5. blank --as


@pytest.mark.parametrize("blank", ["", "   "])
@pytest.mark.parametrize(
    "command",
    [
        ["search", "ledger"],
        ["similar", "flood-response-data-cell"],
        ["show", "flood-response-data-cell"],
        ["stats"],
        ["export"],
        ["people"],
        ["organisation", "Cabinet Digital Office"],
    ],
)
def test_a_blank_as_is_refused_by_every_command(kb, command, blank):
    assert cli_run(*command).exit_code == 0  # the command works without `--as`: the blank name is the refusal
    assert "organisation" in cli_refusal(*command, "--as", blank)


# --------------------------------------------------------------------------- 6. property tests

ORGS = [OWNER_ORG, OTHER_ORG, "Gamma Council"]
PEOPLE = ["Ada", "Bo"]
IDS = [f"entry-{n:02d}" for n in range(5)]
ROLE_SETS = [(), ("contributor",), ("reviewer",), ("curator",), ("admin",)]
REVIEWING_ROLES = {"reviewer", "curator", "admin"}


# The rules, written out again from the description of access: the oracle the library is checked against.
def may_see(viewer: User | None, entry: Entry) -> bool:
    if viewer is None:
        return True
    signed_in = bool(viewer.name.strip())
    organisation = viewer.organisation
    allowed = {
        "public": True,
        "internal": signed_in,
        "organisation": bool(organisation) and (organisation == entry.organisation or organisation in entry.partners),
    }[entry.visibility]
    if not allowed:
        return False
    return entry.status in ("published", "archived") or may_see_anonymous_fields(viewer, entry)


def may_see_anonymous_fields(viewer: User | None, entry: Entry) -> bool:
    if viewer is None or REVIEWING_ROLES & set(viewer.roles):
        return True
    return bool(viewer.name.strip()) and bool(entry.author) and entry.author == viewer.name


def kept_links(links: list[str], visible: set[str]) -> list[str]:
    return [i for i in links if i in visible]


def reused_by(entry: Entry) -> list[str] | None:
    return None if entry.lighthouse is None else entry.lighthouse.reused_by


def assert_links_cut(shown: Entry, stored: Entry, visible: set[str] | None, text: str = "") -> None:
    """Links to entries outside `visible` (None: the operator, who sees every link) are left out."""
    if visible is None:
        assert (shown.related, reused_by(shown)) == (stored.related, reused_by(stored))
        return
    assert shown.related == kept_links(stored.related, visible)
    expected = reused_by(stored)
    assert reused_by(shown) == (None if expected is None else kept_links(expected, visible))
    for hidden in set(stored.related + (expected or [])) - visible:
        assert hidden not in text


def assert_shown_as_the_rules_say(shown, stored: Entry, viewer: User | None, visible: set[str]) -> None:
    entry = shown.entry
    assert_links_cut(entry, stored, None if viewer is None else visible)
    # For any reader the link fields are named as withheld whether or not a link was cut, and an
    # anonymous entry's names whether or not it had any: the list itself must tell nothing.
    links = {"related", "lighthouse.reused_by"}
    assert (links <= set(shown.withheld)) == (viewer is not None)
    hidden_names = stored.anonymous and not may_see_anonymous_fields(viewer, stored)
    assert ({"team", "contact", "author"} <= set(shown.withheld)) == hidden_names
    if hidden_names:
        assert (entry.team, entry.contact, entry.author) == ("", "", "")
    else:
        assert (entry.team, entry.contact, entry.author) == (stored.team, stored.contact, stored.author)


def assert_history_as_the_rules_say(kb, current: Entry, viewer: User | None, visible: set[str]) -> None:
    versions = {v.summary: v for v in (parse_entry(old.text)[0] for old in kb.store.history(current.id))}
    shown = kb.history(current.id, viewer=viewer)
    assert sorted(p.entry.summary for p in shown) == sorted(s for s, v in versions.items() if may_see(viewer, v))
    for past in shown:
        version = versions[past.entry.summary]
        if viewer is None:
            continue  # the operator reads versions as they were
        assert_links_cut(past.entry, version, visible, past.text)
        withheld = not may_see_anonymous_fields(viewer, current) and current.anonymous
        withheld = withheld or (version.anonymous and not may_see_anonymous_fields(viewer, version))
        if withheld:
            assert (past.entry.team, past.entry.contact, past.entry.author) == ("", "", "")
            assert version.team not in past.text and version.contact not in past.text


def refusal_words(kb, viewer: User | None, entry_id: str) -> list[str]:
    calls = [
        lambda i: kb.get(i, viewer=viewer),
        lambda i: kb.show(i, viewer=viewer),
        lambda i: kb.history(i, viewer=viewer),
        lambda i: open_edit(kb, i, viewer),
    ]
    return [not_found_words(call, entry_id) for call in calls]


def assert_sees_only_what_they_may(kb, viewer: User | None, ids: list[str]) -> set[str]:
    """Every rule of show, history, readable and NotFound for one viewer over a collection on disk."""
    stored = {i: kb.stored(i) for i in ids}
    visible = {i for i, entry in stored.items() if may_see(viewer, entry)}
    readable, _ = kb.readable(viewer)  # what an export under the viewer's rules holds
    assert [s.entry.id for s in readable] == sorted(visible)
    for shown in readable:
        assert shown == kb.show(shown.entry.id, viewer=viewer)
        assert_shown_as_the_rules_say(shown, stored[shown.entry.id], viewer, visible)
        assert_history_as_the_rules_say(kb, stored[shown.entry.id], viewer, visible)
    missing = refusal_words(kb, viewer, MISSING)
    for hidden in set(ids) - visible:
        assert refusal_words(kb, viewer, hidden) == missing, hidden
    return visible


def make_entry(entry_id: str, version: int, fields: dict) -> Entry:
    lighthouse = fields.pop("reused_by")
    return Entry(
        id=entry_id,
        title=f"Lessons of {entry_id}",
        summary=f"{entry_id} as version {version}.",  # tells the versions apart
        kind="project",
        outcome="partial",
        team=f"team of {entry_id} v{version}",
        contact=f"{entry_id}-v{version}@contact.example",
        related=[i for i in fields.pop("related") if i != entry_id],
        lighthouse=None if lighthouse is None else Lighthouse("pilot", "It worked.", [], lighthouse),
        sections={"Lessons": f"Ledgers, pilots and councils: {entry_id}."},
        **fields,
    )


def write_versions(store: EntryStore, entry_id: str, versions: list[dict]) -> None:
    """Each version written in turn: the earlier ones end up in the entry's history."""
    for n, fields in enumerate(versions, start=1):
        store.write(make_entry(entry_id, n, dict(fields)))


entry_fields = st.fixed_dictionaries(
    {
        "organisation": st.sampled_from(ORGS),
        "partners": st.lists(st.sampled_from(ORGS), max_size=2, unique=True),
        "visibility": st.sampled_from(["public", "internal", "organisation"]),
        "status": st.sampled_from(["draft", "in-review", "published", "archived"]),
        "anonymous": st.booleans(),
        "author": st.sampled_from([*PEOPLE, ""]),
        "related": st.lists(st.sampled_from(IDS), max_size=3, unique=True),
        "reused_by": st.none() | st.lists(st.sampled_from(IDS), max_size=3, unique=True),
    }
)
# An entry's versions, oldest first; links may point at ids that are not in the collection at all.
collections = st.dictionaries(st.sampled_from(IDS), st.lists(entry_fields, min_size=1, max_size=3), min_size=1)
viewers = st.one_of(
    st.none(),
    st.just(ANONYMOUS),
    st.builds(member_of, st.sampled_from(ORGS)),
    st.builds(
        User,
        name=st.sampled_from([*PEOPLE, "Zed"]),
        organisation=st.sampled_from([*ORGS, ""]),
        roles=st.sampled_from(ROLE_SETS),
        local=st.just(False),
    ),
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(collection=collections, viewer=viewers)
def test_no_leak_in_show_history_or_export_for_any_collection_and_viewer(collection, viewer):
    # show, history and readable read the files, the source of truth: no index is needed here.
    with tempfile.TemporaryDirectory() as folder:
        settings_ = Settings(
            entries_dir=Path(folder) / "entries", index_dir=Path(folder) / "index", chroma_url=None, model="x"
        )
        kb = KnowledgeBase(settings_, embedder=HashingEmbedder())
        for entry_id, versions in collection.items():
            write_versions(kb.store, entry_id, versions)
        assert_sees_only_what_they_may(kb, viewer, sorted(collection))


SYNCED_IDS = [f"synced-{n:02d}" for n in range(14)]
LEAK_THEMES = ["data-quality", "record-linkage", "data-sharing-agreements", "open-data"]
LATE_IDS = SYNCED_IDS[-3:]  # written after the sync: not indexed yet


def random_versions(rng: random.Random) -> list[dict]:
    return [
        {
            "organisation": rng.choice(ORGS),
            "partners": rng.sample(ORGS, rng.randint(0, 2)),
            "visibility": rng.choice(["public", "internal", "organisation"]),
            "status": rng.choice(["draft", "in-review", "published", "archived"]),
            "anonymous": rng.random() < 0.4,
            "author": rng.choice([*PEOPLE, ""]),
            "related": rng.sample(SYNCED_IDS + [MISSING], 3),
            "reused_by": None if rng.random() < 0.5 else rng.sample(SYNCED_IDS, 2),
        }
        for _ in range(rng.randint(1, 3))
    ]


@pytest.fixture(scope="module")
def synced_collection(tmp_path_factory):
    """A random collection with earlier versions, written to disk and synced once for the module."""
    folder = tmp_path_factory.mktemp("leaks")
    settings_ = Settings(entries_dir=folder / "entries", index_dir=folder / "index", chroma_url=None, model="x")
    kb = KnowledgeBase(settings_, embedder=HashingEmbedder())
    rng = random.Random(20240611)
    versions = {entry_id: random_versions(rng) for entry_id in SYNCED_IDS}
    for n, entry_id in enumerate(SYNCED_IDS):  # themes, so that entries have others on the same ones
        for v, fields in enumerate(versions[entry_id]):
            fields["themes"] = sorted({LEAK_THEMES[n % 3], LEAK_THEMES[(n + v) % 4]})
    for entry_id in SYNCED_IDS:
        if entry_id not in LATE_IDS:
            write_versions(kb.store, entry_id, versions[entry_id])
    kb.sync()
    for entry_id in LATE_IDS:
        write_versions(kb.store, entry_id, versions[entry_id])
    return kb


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(viewer=viewers, pick=st.integers(min_value=0))
def test_no_leak_in_a_synced_collection_for_any_viewer(synced_collection, viewer, pick):
    kb = synced_collection
    visible = assert_sees_only_what_they_may(kb, viewer, SYNCED_IDS)
    # similar answers a hidden entry, indexed or not, in the words of a missing one ...
    missing = not_found_words(lambda i: kb.similar(i, viewer=viewer), MISSING)
    for hidden in set(SYNCED_IDS) - visible:
        assert not_found_words(lambda i: kb.similar(i, viewer=viewer), hidden) == missing, hidden
    # ... and lists only entries the viewer may see
    indexed = sorted(visible - set(LATE_IDS))
    if indexed:
        hits = kb.similar(indexed[pick % len(indexed)], limit=len(SYNCED_IDS), viewer=viewer)
        assert {h.id for h in hits} <= visible


def named_to(viewer: User | None, entry: Entry) -> bool:
    """Whether the directory may list this entry under its team for this viewer: published, visible, and
    not anonymous (whoever asks)."""
    return entry.status == "published" and may_see(viewer, entry) and not entry.anonymous


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(viewer=viewers, pick=st.integers(min_value=0))
def test_whom_to_ask_names_only_what_the_viewer_may_see(synced_collection, viewer, pick):
    """The directory, others on the same themes and organisation pages: no hidden entry, no anonymous name."""
    kb = synced_collection
    stored = {i: kb.stored(i) for i in SYNCED_IDS if i not in LATE_IDS}  # what the index holds
    published = {i for i, e in stored.items() if e.status == "published" and may_see(viewer, e)}
    named = {i for i, e in stored.items() if named_to(viewer, e)}
    teams = whom.directory(kb, viewer)
    assert {w.entry_id for t in teams for w in t.works} == named
    text = repr(teams)
    for entry_id, entry in stored.items():
        if entry_id not in named:
            assert entry.team not in text and entry.contact not in text, entry_id
    # others on the same themes (of any entry the viewer may open): only what the viewer may see; a hidden
    # entry is refused like a missing one
    missing = not_found_words(lambda i: whom.others_on_this(kb, i, viewer), MISSING)
    for hidden in (i for i in SYNCED_IDS if not may_see(viewer, kb.stored(i))):
        assert not_found_words(lambda i: whom.others_on_this(kb, i, viewer), hidden) == missing, hidden
    if published:
        chosen = sorted(published)[pick % len(published)]
        others = whom.others_on_this(kb, chosen, viewer, limit=len(SYNCED_IDS))
        assert {w.entry_id for n in others for w in n.works} <= named - {chosen}
        assert all(n.team.organisation != stored[chosen].organisation for n in others)
    # an organisation's page: its visible entries only; one named by none of them is an unknown one
    unknown = not_found_words(lambda name: whom.organisation(kb, name, viewer), "Nowhere Office")
    for org in ORGS:
        seen = {i for i in published if org in (stored[i].organisation, *stored[i].partners)}
        if not seen:
            assert not_found_words(lambda name: whom.organisation(kb, name, viewer), org) == unknown, org
            continue
        page = whom.organisation(kb, org, viewer)
        assert {w.entry_id for w in (*page.entries, *page.partnered)} == seen
        listed = {w.entry_id for p in page.worked_with for w in (*p.partnered, *p.reused, *p.reused_by)}
        listed |= {w.entry_id for r in (*page.reused, *page.reused_by) for w in (r.lighthouse, r.by)}
        assert listed <= published
        for entry_id in set(stored) - named:
            assert stored[entry_id].team not in repr(page)


# --------------------------------------------------------------------------- 7. symbolic links in the folder

LINKED = "alpha-only-ledger-linked"
# Where earlier versions and pending edits are kept, each made a link to a folder outside the entries folder.
HISTORY_LINKS = [f"{HISTORY_DIR}/{LINKED}", HISTORY_DIR]


def link_outside(entries_dir: Path, tmp_path: Path, link: str) -> Path:
    """Make `link` inside the entries folder a symbolic link to a new, empty folder outside it."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (entries_dir / link).parent.mkdir(parents=True, exist_ok=True)
    (entries_dir / link).symlink_to(outside, target_is_directory=True)
    return outside


def save_an_edit(kb: KnowledgeBase, link: str) -> None:
    """The save that writes under `link`: an edit waiting for review is kept under .revisions, and every
    other save keeps the version it replaces under .history/<id>."""
    if link == REVISIONS_DIR:
        target = open_edit(kb, LINKED, COLLEAGUE)
        save_edit(kb, target, replace(target.entry, summary="Changed."), COLLEAGUE, status="in-review")
    else:
        edit_as_operator(kb, LINKED, summary="Changed.")


@pytest.mark.parametrize("link", [*HISTORY_LINKS, REVISIONS_DIR])
def test_no_copy_of_an_entry_is_written_through_a_symbolic_link(kb, entries_dir, tmp_path, link):
    write_entry(entries_dir, LINKED, visibility="organisation", summary="Alpha Office's own words.")
    kb.sync()
    outside = link_outside(entries_dir, tmp_path, link)
    before = (entries_dir / f"{LINKED}.md").read_bytes()
    with pytest.raises(KBError, match=f"^{re.escape(link)} in the entries folder is a symbolic link") as refused:
        save_an_edit(kb, link)
    assert str(tmp_path) not in str(refused.value)  # it names the link, not where the link leads
    assert list(outside.iterdir()) == []
    assert (entries_dir / f"{LINKED}.md").read_bytes() == before


@pytest.mark.parametrize("link", HISTORY_LINKS)
def test_history_shows_nothing_through_a_symbolic_link(kb, entries_dir, tmp_path, link):
    write_entry(entries_dir, LINKED, visibility="organisation")
    kb.sync()
    outside = link_outside(entries_dir, tmp_path, link)
    versions = outside / LINKED if link == HISTORY_DIR else outside
    versions.mkdir(exist_ok=True)
    planted = (entries_dir / f"{LINKED}.md").read_text().replace("What the", "Planted outside: what the")
    (versions / "20240101T000000000000Z-0123456789ab.md").write_text(planted)  # named as a version is
    assert kb.store.history(LINKED) == []
    for viewer in (None, member_of(OWNER_ORG), OWNER_REVIEWER):
        assert kb.history(LINKED, viewer=viewer) == [], viewer


def test_a_pending_edit_is_never_read_through_a_symbolic_link(kb, entries_dir, tmp_path):
    write_entry(entries_dir, LINKED, visibility="organisation")
    kb.sync()
    outside = link_outside(entries_dir, tmp_path, REVISIONS_DIR)
    planted = replace(kb.stored(LINKED), summary="Planted outside.", status="in-review", revised_by=COLLEAGUE.name)
    (outside / f"{LINKED}.md").write_text(render_entry(planted))  # what a pending edit file looks like
    assert kb.store.revision(LINKED) is None and kb.store.revisions() == []
    assert not [item for item in review_queue(kb, OWNER_REVIEWER) if item.revision]
    target = open_edit(kb, LINKED, COLLEAGUE)  # its "proposer" opens the published entry, not the planted edit
    assert target.revision_version is None and target.entry.summary != "Planted outside."


# --------------------------------------------------------------------------- 8. through the HTTP API


def api_client(kb, viewer: User, folder: Path):
    """The API over this knowledge base, and the headers that make a request this viewer's (a visitor
    sends none; anyone else, a personal token made for them)."""
    from fastapi.testclient import TestClient

    from kb.api import create_app
    from kb.tokens import TokenStore

    tokens = TokenStore(folder / "tokens.json")
    headers = {}
    if viewer.name:
        token, _ = tokens.create(viewer.name, organisation=viewer.organisation, roles=viewer.roles)
        headers = {"Authorization": f"Bearer {token}"}
    client = TestClient(create_app(kb, tokens, rate_per_minute=10**6, burst=10**6), raise_server_exceptions=False)
    return client, headers


def api_refusal(client, headers, path: str, entry_id: str) -> tuple[int, str]:
    response = client.get(path.format(entry_id), headers=headers)
    return response.status_code, response.text.replace(entry_id, "<id>")


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(viewer=viewers.filter(lambda v: v is not None))
def test_no_leak_through_the_api_for_any_viewer(synced_collection, viewer):
    kb = synced_collection
    stored = {i: kb.stored(i) for i in SYNCED_IDS}
    visible = {i for i, entry in stored.items() if may_see(viewer, entry)}
    with tempfile.TemporaryDirectory() as folder:
        client, headers = api_client(kb, viewer, Path(folder))
        for path in ("/entries/{}", "/entries/{}/history", "/entries/{}/similar"):
            missing = api_refusal(client, headers, path, MISSING)
            assert missing[0] == 404
            for hidden in set(SYNCED_IDS) - visible:
                assert api_refusal(client, headers, path, hidden) == missing, (path, hidden)
        for entry_id in sorted(visible):
            shown = client.get(f"/entries/{entry_id}", headers=headers).json()
            expected = kb.show(entry_id, viewer=viewer)
            assert {k: v for k, v in shown.items() if k not in ("withheld", "version")} == expected.entry.to_dict()
            assert shown["withheld"] == list(expected.withheld)
            assert_shown_as_the_rules_say(expected, stored[entry_id], viewer, visible)
            history = client.get(f"/entries/{entry_id}/history", headers=headers).json()
            assert [v["text"] for v in history] == [v.text for v in kb.history(entry_id, viewer=viewer)]
        indexed = sorted(visible - set(LATE_IDS))
        for entry_id in indexed[:2]:
            similar = client.get(f"/entries/{entry_id}/similar", headers=headers, params={"limit": 20}).json()
            assert {hit["id"] for hit in similar} <= visible
        exported = client.get("/export", params={"format": "jsonl"}, headers=headers).content.decode()
        assert [json.loads(line)["id"] for line in exported.split("\n") if line] == sorted(visible)
        found = client.get(
            "/search",
            params={"q": "ledgers pilots councils", "status": list(STATUSES_ALL), "limit": 60},
            headers=headers,
        )
        assert {hit["id"] for hit in found.json()["hits"]} <= visible
