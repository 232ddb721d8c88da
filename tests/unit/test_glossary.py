"""The glossary's counts: every theme with its use among the published entries a viewer may see."""

from __future__ import annotations

from kb.access import ANONYMOUS
from kb.glossary import glossary
from kb.identity import User

SECRET_ORG = "Office of Quiet Things"
INSIDER = User("Ida Insider", SECRET_ORG, ("contributor",))
SECRET = f"""---
id: a-quiet-open-data-portal
title: A quiet open data portal
summary: An open data portal only its own organisation may read about.
kind: project
outcome: failed
organisation: {SECRET_ORG}
partners: [Ministry of Hidden Partners]
themes: [open-data, crisis-response]
status: published
visibility: organisation
---
## Lessons

Keep it quiet.
"""


def terms(kb, viewer):
    return {t.theme_id: t for t in glossary(kb, viewer)}


def expected(kb, theme_id: str, viewer) -> tuple[int, int]:
    """The oracle: the published entries the viewer may read, from their files."""
    shown, _ = kb.readable(viewer)
    entries = [s.entry for s in shown if s.entry.status == "published" and theme_id in s.entry.themes]
    organisations = {o for e in entries for o in [e.organisation, *e.partners] if o}
    return len(entries), len(organisations)


def test_every_theme_is_listed_with_its_definition_synonyms_and_counts(kb):
    found = glossary(kb, ANONYMOUS)
    assert [t.theme_id for t in found] == sorted(
        (t.id for t in kb.vocabulary.themes), key=lambda i: kb.vocabulary.label(i).lower()
    )
    dsa = terms(kb, ANONYMOUS)["data-sharing-agreements"]
    assert dsa.label == "Data sharing agreements"
    assert dsa.definition.startswith("The legal and governance agreements")
    assert "MoU" in dsa.synonyms
    for term in found:
        assert (term.entries, term.organisations) == expected(kb, term.theme_id, ANONYMOUS)
    assert dsa.entries >= 3 and dsa.organisations >= 3


def test_hidden_entries_are_never_counted(kb, entries_dir):
    before = terms(kb, ANONYMOUS)
    (entries_dir / "a-quiet-open-data-portal.md").write_text(SECRET, encoding="utf-8")
    kb.sync()
    after = terms(kb, ANONYMOUS)
    for theme_id in ("open-data", "crisis-response"):
        assert (after[theme_id].entries, after[theme_id].organisations) == (
            before[theme_id].entries,
            before[theme_id].organisations,
        ), "a visitor's counts tell nothing of an entry they may not see"
    inside = terms(kb, INSIDER)["open-data"]
    assert inside.entries == before["open-data"].entries + 1, "its own organisation counts it"
    assert (inside.entries, inside.organisations) == expected(kb, "open-data", INSIDER)
    assert inside.organisations >= before["open-data"].organisations + 2  # the lead and its partner


def test_drafts_are_not_counted_even_for_their_author(kb, entries_dir):
    from kb import browse

    author = User("Dee Drafter", "Cabinet Digital Office", ("contributor",))
    before = terms(kb, author)["open-data"].entries
    draft = (
        SECRET.replace("id: a-quiet-open-data-portal", "id: a-draft-portal\nauthor: Dee Drafter")
        .replace("status: published", "status: draft")
        .replace("visibility: organisation", "visibility: public")
    )
    (entries_dir / "a-draft-portal.md").write_text(draft, encoding="utf-8")
    kb.sync()
    assert "a-draft-portal" in {r.entry_id for r in browse.rows(kb, author)}, "the author may see their draft"
    assert terms(kb, author)["open-data"].entries == before


def test_retired_themes_are_left_out(kb, monkeypatch):
    from dataclasses import dataclass

    from kb.vocabulary import Theme

    @dataclass(frozen=True)
    class Retirable(Theme):
        retired: bool = False

    vocabulary = kb.vocabulary
    monkeypatch.setattr(
        vocabulary,
        "themes",
        [Retirable(**{**t.__dict__, "retired": t.id == "open-data"}) for t in vocabulary.themes],
    )
    assert "open-data" not in terms(kb, ANONYMOUS)
    assert "crisis-response" in terms(kb, ANONYMOUS)


def test_each_term_links_to_a_search_filtered_to_it(kb):
    term = terms(kb, ANONYMOUS)["record-linkage"]
    assert term.search().to_params() == {"theme": ["record-linkage"]}


def test_the_command_line_counts_as_the_page_does(kb):
    import json

    from click.testing import CliRunner

    from kb.cli import cli

    runner = CliRunner()
    outside = json.loads(runner.invoke(cli, ["glossary", "--json", "--as", "anonymous"]).output)
    inside = json.loads(runner.invoke(cli, ["glossary", "--json", "--as", "Home Affairs Department"]).output)
    by_id = {t["theme_id"]: t for t in outside}
    assert by_id["machine-learning"]["entries"] == terms(kb, ANONYMOUS)["machine-learning"].entries
    assert {t["theme_id"]: t for t in inside}["machine-learning"]["entries"] == by_id["machine-learning"]["entries"] + 1
    assert by_id["data-sharing-agreements"]["synonyms"][:3] == ["data sharing agreement", "DSA", "MoU"]
    text = runner.invoke(cli, ["glossary"]).output
    assert "Record linkage and matching  (record-linkage)" in text and "also called: data matching" in text


def test_the_glossary_the_catalogue_and_the_directory_count_only_what_is_published(kb, entries_dir):
    """One test of "published" (kb.browse.is_published) for all three: an archived entry's theme, source
    and team count in none of them, for anyone."""
    from kb.browse import is_published
    from kb.directory import directory
    from kb.sources import catalogue

    assert is_published("published") and not any(is_published(s) for s in ("draft", "in-review", "archived", None))
    before = terms(kb, None)["open-data"].entries
    archived = (
        SECRET.replace("id: a-quiet-open-data-portal", "id: an-archived-portal")
        .replace("status: published", "status: archived\nteam: Archive Team\ndata_sources: [Archived Register]")
        .replace("visibility: organisation", "visibility: public")
    )
    (entries_dir / "an-archived-portal.md").write_text(archived, encoding="utf-8")
    kb.sync()
    assert "an-archived-portal" in {r.entry_id for r in kb.indexed_rows()}
    assert terms(kb, None)["open-data"].entries == before
    assert "Archived Register" not in {s.label for s in catalogue(kb)}
    assert "Archive Team" not in {t.name for t in directory(kb)}
