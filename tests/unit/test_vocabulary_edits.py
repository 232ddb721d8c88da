"""Keeping the vocabulary (kb.vocabulary_edits): add a theme or a synonym, merge, retire, the history of each
change, the candidate terms (kb.vocabulary_candidates), and search taking a change in at once, with no sync."""

from __future__ import annotations

from dataclasses import replace

import pytest
import yaml
from click.testing import CliRunner
from fastapi.testclient import TestClient

from kb import browse, glossary
from kb.api import create_app
from kb.cli import cli
from kb.editing import open_edit, save_edit
from kb.errors import Conflict, Forbidden, KBError, NotFound
from kb.filters import Filters
from kb.identity import User
from kb.knowledge import KnowledgeBase
from kb.review import approve, review_queue
from kb.searchlog import search_log
from kb.sources import catalogue
from kb.tokens import TokenStore
from kb.vocabulary_candidates import candidate_terms
from kb.vocabulary_edits import (
    DRAFT_SKIPPED,
    IN_REVIEW_SKIPPED,
    add_synonym,
    add_theme,
    merge,
    retire,
    vocabulary_history,
)

CURATOR = User("Cora Curator", "Beta Agency", ("curator",), local=False)
OTHER_REVIEWER = User("Rex Reviewer", "", ("reviewer",), local=False)
CONTRIBUTOR = User("Carl Contributor", "Beta Agency", ("contributor",), local=False)
REVIEWER = User("Rita Reviewer", "Beta Agency", ("reviewer",), local=False)
ORG_ONLY = "chatbot-for-policy-guidance-withdrawn"  # visibility organisation: Home Affairs Department
PUBLIC = "benefits-and-housing-data-sharing-pilot"
IN_REVIEW = "teacher-supply-model-shared-with-schools"  # tagged dashboards-and-reporting, by Amara Eze
DRAFTED = "flood-response-data-cell"  # tagged dashboards-and-reporting, by Tomasz Zielinski
SOURCES = (
    "data_sources:\n"
    "  - id: census-2021\n"
    "    label: Census 2021\n"
    "    synonyms: [census]\n"
    "    grades:\n"
    "      accuracy: good\n"
)


def with_sources(path) -> None:
    """The vocabulary file with SOURCES as its data-source list (an item key Lighthouse does not know)."""
    text = path.read_text()
    path.write_text(text[: text.index("\ndata_sources:") + 1] + SOURCES)


def read(kb) -> dict:
    return yaml.safe_load((kb.settings.entries_dir / "vocabulary.yaml").read_text())


def themes_of(kb) -> dict[str, dict]:
    return {t["id"]: t for t in read(kb)["themes"]}


def set_themes(kb, entry_id: str, themes: list[str]) -> None:
    path = kb.store.path_for(entry_id)
    text = path.read_text()
    head, rest = text.split("\nthemes:\n", 1)
    old = rest.split("\n")
    n = next(i for i, line in enumerate(old) if not line.startswith("- "))
    path.write_text(head + "\nthemes:\n" + "".join(f"- {t}\n" for t in themes) + "\n".join(old[n:]))


def test_each_change_is_written_with_its_history_and_other_lists_are_kept(kb):
    path = kb.settings.entries_dir / "vocabulary.yaml"
    with_sources(path)
    original = path.read_text()

    added = add_theme(kb, "", "Ferry data", "Passenger and freight data from ferries.", viewer=CURATOR)
    assert added.id == "ferry-data"
    add_synonym(kb, "Ferry data", "sailings", viewer=CURATOR)  # the theme named by its label

    text = path.read_text()
    assert text.startswith("# The shared vocabulary of themes.")  # the comment block is kept
    data = yaml.safe_load(text)
    assert data["data_sources"] == yaml.safe_load(SOURCES)["data_sources"]  # another list, untouched
    assert themes_of(kb)["ferry-data"] == {
        "id": "ferry-data",
        "label": "Ferry data",
        "definition": "Passenger and freight data from ferries.",
        "synonyms": ["sailings"],
    }
    assert kb.vocabulary.resolve("Sailings") == "ferry-data"

    changes = vocabulary_history(kb, CURATOR)
    assert [(c.who, c.what) for c in changes] == [
        ("Cora Curator", "added the synonym 'sailings' to 'ferry-data'"),
        ("Cora Curator", "added the theme 'ferry-data' (Ferry data)"),
    ]
    assert changes[1].previous == original  # the file as it was before that change
    assert "ferry-data" in changes[0].previous and "sailings" not in changes[0].previous


def test_an_edit_of_another_list_leaves_the_themes_alone(kb):
    path = kb.settings.entries_dir / "vocabulary.yaml"
    with_sources(path)
    themes_before = read(kb)["themes"]
    add_synonym(kb, "census-2021", "ONS census", viewer=CURATOR, list_name="data_sources")
    assert read(kb)["themes"] == themes_before
    assert read(kb)["data_sources"][0]["synonyms"] == ["census", "ONS census"]
    assert read(kb)["data_sources"][0]["grades"] == {"accuracy": "good"}


@pytest.mark.parametrize(
    ("change", "error", "message"),
    [
        (
            lambda kb: add_synonym(kb, "no-such-theme", "x", viewer=CURATOR),
            NotFound,
            "there is no theme 'no-such-theme'",
        ),
        (
            lambda kb: add_synonym(kb, "data-quality", "DSA", viewer=CURATOR),
            Conflict,
            "'DSA' already names the theme 'data-sharing-agreements'",
        ),
        (
            lambda kb: add_synonym(kb, "data-quality", "dq", viewer=CURATOR),
            Conflict,
            "'dq' already names the theme 'data-quality'",
        ),
        (lambda kb: add_synonym(kb, "data-quality", "  ", viewer=CURATOR), KBError, "give the synonym"),
        (
            lambda kb: add_theme(kb, "data-quality", "Quality of data", viewer=CURATOR),
            Conflict,
            "already a theme with id 'data-quality'",
        ),
        (
            lambda kb: add_theme(kb, "", "Data quality", viewer=CURATOR),
            Conflict,
            "already a theme with id 'data-quality'",
        ),
        (
            lambda kb: add_theme(kb, "dq-2", "MoU", viewer=CURATOR),
            Conflict,
            "'MoU' already names the theme 'data-sharing-agreements'",
        ),
        (lambda kb: add_theme(kb, "Bad Id!", "Something", viewer=CURATOR), KBError, "is not a valid theme id"),
        (lambda kb: add_theme(kb, "", "", viewer=CURATOR), KBError, "give a label"),
        (lambda kb: retire(kb, "data-quality", " ", viewer=CURATOR), KBError, "say why the theme is retired"),
        (lambda kb: retire(kb, "nothing-like-it", "gone", viewer=CURATOR), NotFound, "there is no theme"),
        (lambda kb: merge(kb, "DQ", "data-quality", viewer=CURATOR), KBError, "are the same theme"),
        (lambda kb: merge(kb, "data-quality", "nowhere", viewer=CURATOR), NotFound, "there is no theme 'nowhere'"),
    ],
)
def test_a_bad_change_is_refused_with_a_clear_message_and_changes_nothing(kb, change, error, message):
    before = (kb.settings.entries_dir / "vocabulary.yaml").read_text()
    with pytest.raises(error, match=message.replace("(", r"\(")):
        change(kb)
    assert (kb.settings.entries_dir / "vocabulary.yaml").read_text() == before
    assert vocabulary_history(kb, CURATOR) == []
    assert kb.store.revisions() == []


def test_a_retired_theme_stays_resolvable_but_is_no_longer_offered(kb):
    retire(kb, "legacy-infrastructure", "too broad: use interoperability or analysis platforms", viewer=CURATOR)
    stored = themes_of(kb)["legacy-infrastructure"]
    assert stored["retired"] is True and stored["retired_reason"].startswith("too broad") and stored["retired_on"]
    vocabulary = kb.vocabulary
    assert vocabulary.resolve("COBOL") == "legacy-infrastructure"  # entries naming it still resolve
    assert "legacy-infrastructure" not in [t.id for t in vocabulary.offered]
    facets = browse.facet_counts(kb, viewer=None)  # the counts were cached before: the offer is read now
    assert "legacy-infrastructure" not in [v for v, _ in facets["theme"]] and facets["theme"]
    warnings = [p for p in kb.check() if "is retired" in p.message]
    assert warnings and all(p.severity == "warning" for p in warnings)
    assert "too broad" in warnings[0].message
    with pytest.raises(Conflict, match="already retired"):
        retire(kb, "legacy-infrastructure", "again", viewer=CURATOR)
    with pytest.raises(KBError, match="is retired"):
        add_synonym(kb, "legacy-infrastructure", "old kit", viewer=CURATOR)
    with pytest.raises(KBError, match="is retired"):
        merge(kb, "data-quality", "legacy-infrastructure", viewer=CURATOR)


def test_a_merge_keeps_old_names_and_proposes_each_retag_for_review(kb):
    every = sorted(e.id for e in kb.load().entries.values() if "dashboards-and-reporting" in e.themes)
    tagged = [i for i in every if kb.stored(i).status == "published"]
    assert tagged and IN_REVIEW in every  # an entry in review is its author's to retag (see below)
    published_before = {i: kb.store.path_for(i).read_text() for i in tagged}

    result = merge(kb, "dashboards-and-reporting", "data-quality", viewer=CURATOR)

    assert (result.source, result.target) == ("dashboards-and-reporting", "data-quality")
    assert result.skipped_because == ((IN_REVIEW, IN_REVIEW_SKIPPED),)
    visible = [i for i in tagged if kb.visible_to(CURATOR, [i])(i)]
    assert list(result.proposed) == visible
    themes = themes_of(kb)
    assert "dashboards-and-reporting" not in themes
    assert {"Dashboards and reporting", "Power BI"} <= set(themes["data-quality"]["synonyms"])
    assert themes["data-quality"]["replaces"] == ["dashboards-and-reporting"]
    assert kb.vocabulary.resolve("dashboards-and-reporting") == "data-quality"  # old links still resolve
    assert kb.vocabulary.resolve("Power BI") == "data-quality"
    # Nothing was rewritten: each entry has a retag waiting for review.
    assert {i: kb.store.path_for(i).read_text() for i in tagged} == published_before
    assert kb.store.revisions() == tagged
    revision, _ = kb.store.revision(tagged[0])
    assert "dashboards-and-reporting" not in revision.themes and "data-quality" in revision.themes
    assert revision.status == "in-review" and revision.revised_by == CURATOR.name

    queue = {item.entry.id: item for item in review_queue(kb, OTHER_REVIEWER) if item.revision}
    assert set(queue) == set(tagged)
    assert not any(item.may_review for item in review_queue(kb, CURATOR) if item.revision)  # not their own
    entry_id = next(i for i in tagged if kb.stored(i).status == "published")
    approve(kb, entry_id, OTHER_REVIEWER, queue[entry_id].version, revision=True)
    assert "data-quality" in kb.store.get(entry_id).themes
    found = browse.newest_ids(kb, filters=Filters.of(status="published", theme=("data-quality",)))
    assert entry_id in found  # indexed on approval: no sync


def test_a_merge_skips_an_entry_with_an_edit_already_waiting(kb):
    tagged = sorted(e.id for e in kb.load().entries.values() if "dashboards-and-reporting" in e.themes)
    waiting = kb.store.get(tagged[0])
    kb.store.write_revision(replace(waiting, title="A pending edit", status="in-review"), base=None)
    result = merge(kb, "dashboards-and-reporting", "data-quality", viewer=CURATOR)
    assert tagged[0] in result.skipped and tagged[0] not in result.proposed
    assert kb.store.revision(tagged[0])[0].title == "A pending edit"  # left as it was


def test_search_and_the_api_take_a_new_synonym_at_once_without_a_sync(kb, tmp_path):
    client = TestClient(create_app(kb, TokenStore(tmp_path / "tokens.json")), raise_server_exceptions=False)
    generation = kb.parts.generation()
    assert kb.search("zebrafication", mode="bm25") == []
    assert client.get("/search", params={"q": "zebrafication", "mode": "keyword"}).json()["hits"] == []

    add_synonym(kb, "data-sharing-agreements", "zebrafication", viewer=CURATOR)

    hits = kb.search("zebrafication", mode="bm25")
    assert hits and all("data-sharing-agreements" in h.themes for h in hits[:3])
    api_hits = client.get("/search", params={"q": "zebrafication", "mode": "keyword"}).json()["hits"]
    assert api_hits and all("data-sharing-agreements" in h["themes"] for h in api_hits[:3])
    assert kb.parts.generation() == generation  # nothing was re-indexed


def test_a_vocabulary_changed_by_another_process_is_read_again(kb):
    assert kb.vocabulary.resolve("tidal data") is None
    path = kb.settings.entries_dir / "vocabulary.yaml"
    path.write_text(path.read_text().replace("synonyms: [DQ,", "synonyms: [tidal data, DQ,"))
    assert kb.vocabulary.resolve("tidal data") == "data-quality"


def test_candidates_come_from_unknown_entry_themes_and_unmatched_searches_without_leaking(kb):
    set_themes(kb, PUBLIC, ["data-sharing-agreements", "ferry timetables"])
    set_themes(kb, ORG_ONLY, ["machine-learning", "secret programme"])  # Home Affairs only
    log = search_log(kb.settings)
    log.record_search("ferry timetables", "hybrid", [])  # no result, no theme named
    log.record_search("DSA template", "hybrid", [])  # names a theme: not a candidate
    log.record_search("quantum widgets", "keyword", [])
    log.flush()

    found = {c.term.casefold(): c for c in candidate_terms(kb, CURATOR).items}
    assert set(found) == {"ferry timetables", "quantum widgets"}  # nothing of the hidden entry
    ferry = found["ferry timetables"]
    assert [e for e, _ in ferry.entries] == [PUBLIC] and [s.query for s in ferry.searches] == ["ferry timetables"]
    assert found["quantum widgets"].entries == ()
    assert list(found)[0] == "ferry timetables"  # an entry and a search: most used first

    operator = {c.term for c in candidate_terms(kb, None).items}
    assert "secret programme" in operator

    add_synonym(kb, "data-sharing-agreements", "ferry timetables", viewer=CURATOR)
    assert "ferry timetables" not in {c.term.casefold() for c in candidate_terms(kb, CURATOR).items}


@pytest.mark.parametrize("viewer", [CONTRIBUTOR, REVIEWER])
def test_only_curators_keep_the_vocabulary(kb, viewer):
    for change in (
        lambda: add_theme(kb, "", "Ferry data", viewer=viewer),
        lambda: add_synonym(kb, "data-quality", "grading", viewer=viewer),
        lambda: merge(kb, "dashboards-and-reporting", "data-quality", viewer=viewer),
        lambda: retire(kb, "data-quality", "no", viewer=viewer),
        lambda: vocabulary_history(kb, viewer),
        lambda: candidate_terms(kb, viewer),
    ):
        with pytest.raises(Forbidden, match="only curators"):
            change()
    assert kb.store.revisions() == []


def test_a_broken_vocabulary_file_is_not_overwritten(kb):
    path = kb.settings.entries_dir / "vocabulary.yaml"
    path.write_text("themes:\n  - id: a\n    label: [unclosed\n")
    with pytest.raises(KBError, match="cannot be read; run `python -m kb check`"):
        add_theme(kb, "", "Ferry data", viewer=CURATOR)
    assert path.read_text() == "themes:\n  - id: a\n    label: [unclosed\n"


def test_the_command_line_keeps_the_vocabulary(kb):
    runner = CliRunner()

    def run(*args: str, code: int = 0):
        result = runner.invoke(cli, ["vocabulary", *args], catch_exceptions=False)
        assert result.exit_code == code, result.output
        assert "Traceback" not in result.output
        return result.output

    assert "added the theme ferry-data (Ferry data)" in run("add-theme", "Ferry data", "--definition", "Ferries.")
    assert "now names ferry-data" in run("add-synonym", "ferry-data", "sailings", "--by", "Ana")
    assert "already names the theme 'data-sharing-agreements'" in run("add-synonym", "ferry-data", "DSA", code=1)
    assert "retired legacy-infrastructure" in run("retire", "legacy-infrastructure", "--reason", "too broad")
    merged = run("merge", "dashboards-and-reporting", "data-quality")
    assert "merged dashboards-and-reporting into data-quality" in merged and "retag proposed for review" in merged
    history = run("history")
    assert history.splitlines()[2].endswith("Ana: added the synonym 'sailings' to 'ferry-data'")
    assert "the operator: merged the theme 'dashboards-and-reporting' into 'data-quality'" in history
    assert "no candidate terms" in run("candidates")


def test_a_link_to_a_merged_theme_and_a_filter_by_its_new_theme_find_entries_tagged_either_way(kb):
    def listed(theme: str) -> set[str]:
        return set(browse.every_match(kb, browse.SearchRequest(facets=Filters.of(theme=theme)), OTHER_REVIEWER))

    old = listed("dashboards-and-reporting")
    quality = listed("data-quality")
    assert old and old - quality
    merge(kb, "dashboards-and-reporting", "data-quality", viewer=CURATOR)
    first = sorted(old)[0]
    queue = {item.entry.id: item for item in review_queue(kb, OTHER_REVIEWER) if item.revision}
    approve(kb, first, OTHER_REVIEWER, queue[first].version, revision=True)  # one retag approved, others wait

    assert listed("data-quality") == quality | old  # retagged or not yet
    assert listed("dashboards-and-reporting") == quality | old  # an old link reads as the theme it went into
    assert listed("Power BI") == quality | old  # a synonym too


def test_changes_made_at_the_same_time_are_all_kept(kb):
    from concurrent.futures import ThreadPoolExecutor

    words = [f"parallel term {n}" for n in range(8)]
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(lambda w: add_synonym(kb, "data-quality", w, viewer=CURATOR), words))
    assert set(words) <= set(themes_of(kb)["data-quality"]["synonyms"])  # none lost to another's write
    assert len(vocabulary_history(kb, CURATOR)) == len(words)


def test_the_themes_command_says_which_theme_is_retired(kb):
    retire(kb, "legacy-infrastructure", "too broad", viewer=CURATOR)
    output = CliRunner().invoke(cli, ["themes"]).output
    assert "retired " in output and ": too broad" in output


def set_status(kb, entry_id: str, status: str) -> None:
    path = kb.store.path_for(entry_id)
    text = path.read_text()
    path.write_text(text.replace("\nstatus: published\n", f"\nstatus: {status}\n", 1))


def test_a_merge_leaves_drafts_and_entries_in_review_to_their_authors(kb):
    set_status(kb, DRAFTED, "draft")
    kb.sync()
    files = {i: kb.store.path_for(i).read_text() for i in (DRAFTED, IN_REVIEW)}

    result = merge(kb, "dashboards-and-reporting", "data-quality", viewer=CURATOR)

    assert dict(result.skipped_because) == {DRAFTED: DRAFT_SKIPPED, IN_REVIEW: IN_REVIEW_SKIPPED}
    assert not {DRAFTED, IN_REVIEW} & set(result.proposed) and result.proposed
    assert {i: kb.store.path_for(i).read_text() for i in files} == files  # not rewritten behind their backs
    assert kb.store.revision(DRAFTED) is None and kb.store.revision(IN_REVIEW) is None
    # The draft's author edits it as before (no "someone else's edit is pending"), and its old theme reads
    # as the new one.
    author = User("Tomasz Zielinski", "Environment and Rural Agency", ("contributor",), local=False)
    target = open_edit(kb, DRAFTED, author)
    assert "data-quality" in target.entry.themes and "dashboards-and-reporting" not in target.entry.themes
    save_edit(kb, target, replace(target.entry, title="Flood response data cell, redrafted"), author, status="draft")
    assert kb.store.get(DRAFTED).title == "Flood response data cell, redrafted"


def test_a_merge_proposes_no_retag_an_entry_the_curator_may_not_see(kb):
    assert not kb.visible_to(CURATOR, [ORG_ONLY])(ORG_ONLY)  # Beta Agency; the entry is Home Affairs' only
    set_themes(kb, ORG_ONLY, ["dashboards-and-reporting"])
    kb.sync()
    result = merge(kb, "dashboards-and-reporting", "data-quality", viewer=CURATOR)
    assert ORG_ONLY not in result.proposed and ORG_ONLY not in result.skipped  # nothing said of it
    assert kb.store.revision(ORG_ONLY) is None  # and nothing proposed on their behalf


def published_facet(kb, viewer=OTHER_REVIEWER) -> dict[str, int]:
    return dict(browse.facet_counts(kb, viewer=viewer)["theme"])


def found_by_theme(kb, theme: str, viewer=OTHER_REVIEWER) -> set[str]:
    return set(browse.every_match(kb, browse.SearchRequest(facets=Filters.of(theme=theme)), viewer))


def used(kb, theme_id: str, viewer=OTHER_REVIEWER) -> int:
    return next(t.entries for t in glossary.glossary(kb, viewer) if t.theme_id == theme_id)


def test_adopting_a_candidate_term_reaches_search_facets_and_the_glossary_at_once(kb):
    set_themes(kb, PUBLIC, ["data-sharing-agreements", "Ferry Timetables"])
    kb.sync()
    assert published_facet(kb).get("Ferry Timetables") == 1

    add_theme(kb, "ferry-timetables", "Ferry timetables", viewer=CURATOR)

    assert used(kb, "ferry-timetables") == 1
    assert found_by_theme(kb, "ferry-timetables") == {PUBLIC}
    facet = published_facet(kb)
    assert facet.get("ferry-timetables") == 1 and "Ferry Timetables" not in facet


def test_a_new_synonym_of_a_theme_reaches_search_facets_and_the_glossary_at_once(kb):
    before = found_by_theme(kb, "data-quality")
    assert PUBLIC not in before
    set_themes(kb, PUBLIC, ["data-sharing-agreements", "Tidal data"])
    kb.sync()

    add_synonym(kb, "data-quality", "Tidal data", viewer=CURATOR)

    assert found_by_theme(kb, "data-quality") == before | {PUBLIC}
    assert published_facet(kb)["data-quality"] == len(before) + 1 == used(kb, "data-quality")
    assert "Tidal data" not in published_facet(kb)


def test_after_a_merge_a_theme_s_facet_count_is_what_filtering_by_it_finds(kb):
    merge(kb, "dashboards-and-reporting", "data-quality", viewer=CURATOR)  # retags wait for review
    found = found_by_theme(kb, "data-quality")
    assert published_facet(kb)["data-quality"] == len(found) == used(kb, "data-quality")


def test_the_facet_counts_read_a_merged_theme_as_the_theme_it_went_into(kb):
    # Even where the index still holds a merged theme's id (the vocabulary changed by hand, say), the facet
    # counts an entry under the theme a filter by it finds it with.
    found = found_by_theme(kb, "data-quality") | found_by_theme(kb, "dashboards-and-reporting")
    path = kb.settings.entries_dir / "vocabulary.yaml"
    data = yaml.safe_load(path.read_text())
    data["themes"] = [t for t in data["themes"] if t["id"] != "dashboards-and-reporting"]
    next(t for t in data["themes"] if t["id"] == "data-quality")["replaces"] = ["dashboards-and-reporting"]
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    assert found_by_theme(kb, "data-quality") == found
    assert published_facet(kb)["data-quality"] == len(found)


def test_two_data_sources_are_made_one_from_the_command_line(kb):
    def names(base) -> dict[str, tuple[str, ...]]:
        return {s.id: s.names for s in catalogue(base)}

    first, second = "Workforce headcount statistics", "Workforce FTE statistics"
    before = names(kb)
    assert sum(1 for n in before.values() if first in n or second in n) == 2

    runner = CliRunner()

    def run(*args: str) -> str:
        result = runner.invoke(cli, ["vocabulary", *args], catch_exceptions=False)
        assert result.exit_code == 0, result.output
        return result.output

    added = run("add-theme", first, "--id", "workforce-statistics", "--list", "data_sources")
    assert "added the data source workforce-statistics (Workforce headcount statistics)" in added
    assert "now names workforce-statistics" in run(
        "add-synonym", "workforce-statistics", second, "--list", "data_sources"
    )
    assert "workforce-statistics" not in {t["id"] for t in read(kb)["themes"]}  # the themes are left alone
    fresh = KnowledgeBase(kb.settings, embedder=kb.parts.embedder)
    after = names(fresh)
    assert set(after["workforce-statistics"]) == {first, second}
    assert len(after) == len(before) - 1

    run("add-theme", "Staff census", "--id", "staff-census", "--list", "data_sources")
    merged = run("merge", "staff-census", "workforce-statistics", "--list", "data_sources")
    assert "merged staff-census into workforce-statistics" in merged
    sources = {s["id"]: s for s in read(kb)["data_sources"]}
    assert "staff-census" not in sources and "Staff census" in sources["workforce-statistics"]["synonyms"]
    assert kb.store.revisions() == []  # no entry retagged
    assert "the operator: added the synonym 'Workforce FTE statistics'" in run("history")


# --------------------------------------------------------------------------- a vocabulary edited by hand


def edit_by_hand(kb, old: str, new: str) -> None:
    path = kb.settings.entries_dir / "vocabulary.yaml"
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))


def test_a_vocabulary_edited_by_hand_is_read_by_the_next_sync_without_embedding_again(kb, monkeypatch):
    """Lighthouse's own changes index the entries they touch at once; a file edited in a text editor (or
    copied from elsewhere) is caught by the next sync, which re-reads the themes of unchanged entries."""
    set_themes(kb, PUBLIC, ["data-sharing-agreements", "Tidal data"])
    kb.sync()
    before = found_by_theme(kb, "data-quality")
    assert PUBLIC not in before and published_facet(kb).get("Tidal data") == 1

    edit_by_hand(kb, "synonyms: [DQ, ", "synonyms: [Tidal data, DQ, ")
    embedded: list[str] = []
    real_embed = kb.embedder.embed
    monkeypatch.setattr(kb.embedder, "embed", lambda texts: embedded.extend(texts) or real_embed(texts))
    report = kb.sync()

    assert report.updated == [PUBLIC] and not report.added and not report.removed
    assert embedded == [], "its passages did not change: their vectors are kept"
    assert found_by_theme(kb, "data-quality") == before | {PUBLIC}
    assert "Tidal data" not in published_facet(kb)
    assert not kb.sync().changed  # read once: the next sync parses nothing again


def test_a_sync_after_a_hand_edit_that_reads_no_entry_differently_indexes_nothing(kb):
    edit_by_hand(kb, "synonyms: [DQ, ", "synonyms: [Harbour data, DQ, ")
    report = kb.sync()
    assert not report.changed and report.unchanged > 0


def test_an_unreadable_vocabulary_file_never_reads_every_entry_again(kb):
    """A file that cannot be read reads no theme: the sync leaves the entries' themes as indexed, and the
    sync after the file is mended reads them with it."""
    set_themes(kb, PUBLIC, ["data-sharing-agreements", "Tidal data"])
    kb.sync()
    path = kb.settings.entries_dir / "vocabulary.yaml"
    good = path.read_text()
    path.write_text("themes: [unclosed\n")
    report = kb.sync()
    assert not report.changed
    assert any("vocabulary.yaml" in p.source for p in report.problems)
    path.write_text(good.replace("synonyms: [DQ, ", "synonyms: [Tidal data, DQ, ", 1))
    assert kb.sync().updated == [PUBLIC]
    assert PUBLIC in found_by_theme(kb, "data-quality")


@pytest.mark.parametrize("synonym", ["Tidal data", "Harbour data"])  # one entry reads it, none does
def test_after_a_change_made_in_lighthouse_the_next_sync_reads_no_theme_again(kb, monkeypatch, synonym):
    """Lighthouse indexes the entries its own change reads differently there and then, so the next sync
    finds the index in step with the vocabulary and parses no unchanged file."""
    set_themes(kb, PUBLIC, ["data-sharing-agreements", "Tidal data"])
    kb.sync()
    add_synonym(kb, "data-quality", synonym, viewer=CURATOR)
    parsed: list[str] = []
    real_load = kb.store.load_file
    monkeypatch.setattr(
        kb.store, "load_file", lambda path, *a, **k: parsed.append(path.stem) or real_load(path, *a, **k)
    )
    assert not kb.sync().changed
    assert parsed == []
    assert (PUBLIC in found_by_theme(kb, "data-quality")) == (synonym == "Tidal data")


def test_entries_indexed_while_the_vocabulary_was_unreadable_are_read_again_once_it_is_restored(kb):
    """Restored exactly as it was, the file reads as the record says: what was indexed meanwhile, its
    themes as written, is read again all the same."""
    path = kb.settings.entries_dir / "vocabulary.yaml"
    good = path.read_text()
    path.write_text("themes: [unclosed\n")
    set_themes(kb, PUBLIC, ["data-sharing-agreements", "DQ"])  # "DQ" is a synonym of data-quality
    assert kb.sync().updated == [PUBLIC]
    assert PUBLIC not in found_by_theme(kb, "data-quality")
    path.write_text(good)
    assert kb.sync().updated == [PUBLIC]
    assert PUBLIC in found_by_theme(kb, "data-quality")


def test_an_entry_indexed_under_a_hand_edited_vocabulary_is_read_again_when_the_edit_is_undone(kb):
    """An evidence note indexes its entry again, its file untouched, as the vocabulary reads it then; once
    the edit is undone by hand, the vocabulary reads the entry otherwise, and the next sync reads it again."""
    from kb import evidence
    from kb.identity import CONTRIBUTOR

    set_themes(kb, PUBLIC, ["data-sharing-agreements", "Tidal data"])
    kb.sync()
    path = kb.settings.entries_dir / "vocabulary.yaml"
    original = path.read_text()
    edit_by_hand(kb, "synonyms: [DQ, ", "synonyms: [Tidal data, DQ, ")
    ana = User("Ana Okafor", "Northfield City Council", (CONTRIBUTOR,), local=False)
    evidence.add_note(kb, PUBLIC, text="We hit the same wall with tide gauges.", year=2023, viewer=ana)
    assert PUBLIC in found_by_theme(kb, "data-quality")  # read with the edit
    path.write_text(original)
    assert kb.sync().updated == [PUBLIC]
    assert PUBLIC not in found_by_theme(kb, "data-quality") and published_facet(kb).get("Tidal data") == 1
