"""Entry files: parsing, validation with clear messages, safe ids, atomic and conflict-aware writes."""

from __future__ import annotations

import pytest

from kb.entries import MAX_TITLE, Entry, Lighthouse, slugify
from kb.entry_files import parse_entry, render_entry
from kb.errors import Conflict, EntryError, KBError, NotFound
from kb.store import EntryStore

GOOD = """---
id: open-data-pilot
title: Open data pilot
summary: We published bus timetables as open data.
kind: project
outcome: succeeded
organisation: Transport Office
status: published
visibility: public
themes: [open-data]
started: 2021-03
ended: 2022-01-15
lighthouse:
  stage: proven
  impact: Journey apps used it within a week.
  benefits: [40 apps, 2m journeys]
---

## Context

Nobody could find the timetables.

## Lessons

Publish early.
"""


def entry(**changes) -> Entry:
    base = dict(
        id="a-test-entry",
        title="A test entry",
        summary="Short.",
        kind="experiment",
        outcome="failed",
        organisation="Org",
        status="published",
        visibility="public",
    )
    base.update(changes)
    return Entry(**base)


def test_parse_reads_fields_sections_and_lighthouse():
    e, warnings = parse_entry(GOOD, "open-data-pilot.md")
    assert warnings == []
    assert e.id == "open-data-pilot" and e.kind == "project" and e.outcome == "succeeded"
    assert e.started == "2021-03" and e.ended == "2022-01-15" and e.year == 2021
    assert e.lighthouse == Lighthouse("proven", "Journey apps used it within a week.", ["40 apps", "2m journeys"], [])
    assert list(e.sections) == ["Context", "Lessons"]
    assert e.sections["Lessons"] == "Publish early."


def test_render_then_parse_is_the_same_entry():
    e, _ = parse_entry(GOOD, "x.md")
    again, _ = parse_entry(render_entry(e), "x.md")
    assert again == e


def test_every_problem_is_reported_with_file_field_and_remedy():
    bad = GOOD.replace("kind: project", "kind: programme").replace("started: 2021-03", "started: 2021-13")
    bad = bad.replace("organisation: Transport Office\n", "")
    with pytest.raises(EntryError) as caught:
        parse_entry(bad, "open-data-pilot.md")
    by_field = {p.field: str(p) for p in caught.value.problems}
    assert set(by_field) >= {"kind", "started", "organisation"}
    assert (
        "open-data-pilot.md, field 'kind': 'programme' is not allowed; use one of: project, experiment"
        in by_field["kind"]
    )
    assert "not a real calendar date" in by_field["started"]
    assert "required but missing" in by_field["organisation"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "is empty"),
        ("just text, no front matter", "has no front matter"),
        ("---\ntitle: [unclosed\n---\n", "not valid YAML at line"),
        ("---\n- a list\n---\n", "'field: value' lines"),
        ("---\nid: x\x00\n---\n", "binary file"),
        ("---\nid: x\nstarted: 2021-13-01\n---\n", "value YAML cannot read"),
        ("---\nid: x\nstarted: 2021-02-30\n---\n", "value YAML cannot read"),
    ],
)
def test_malformed_files_get_a_clear_message(text, message):
    with pytest.raises(EntryError, match=message):
        parse_entry(text, "broken.md")


def test_limits_and_unknown_fields():
    with pytest.raises(EntryError, match=f"shorten it to at most {MAX_TITLE}"):
        parse_entry(GOOD.replace("title: Open data pilot", "title: " + "x" * (MAX_TITLE + 1)), "x.md")
    _, warnings = parse_entry(GOOD.replace("kind: project", "kind: project\ncolour: blue"), "x.md")
    assert [w.field for w in warnings] == ["colour"] and warnings[0].severity == "warning"


def test_end_before_start_is_refused():
    with pytest.raises(EntryError, match="before started"):
        parse_entry(GOOD.replace("ended: 2022-01-15", "ended: 2020-01"), "x.md")


@pytest.mark.parametrize("title", ["../../etc/passwd", ".hidden", "a/b\\c", "..", "", "   ", "Ünïcødé ½ plan"])
def test_slugs_are_safe_file_names(title):
    slug = slugify(title)
    assert slug and "/" not in slug and "\\" not in slug and ".." not in slug and not slug.startswith(".")
    assert slug == slug.lower() and all(c.isalnum() or c == "-" for c in slug)


def test_a_long_slug_ends_on_a_whole_word():
    title = "Matching hospital discharge and social care records to study delayed discharge across regions"
    assert slugify(title) == "matching-hospital-discharge-and-social-care-records-to-study-delayed-discharge"
    assert slugify("x" * 79 + " yy") == "x" * 79 and slugify("x" * 100) == "x" * 80  # one long word is cut
    assert slugify("a" * 80 + " b") == "a" * 80
    # ids that imports made stay as they were, so importing the same register again finds its entries
    assert (
        slugify(title, whole_words=False)
        == "matching-hospital-discharge-and-social-care-records-to-study-delayed-discharge-a"
    )


def test_store_loads_good_files_and_reports_bad_ones(tmp_path):
    store = EntryStore(tmp_path)
    (tmp_path / "open-data-pilot.md").write_text(GOOD)
    (tmp_path / "bad-date.md").write_text(GOOD.replace("started: 2021-03", "started: 2021-13-01"))
    (tmp_path / "broken.md").write_text("---\nid: broken\n---\n")
    (tmp_path / "wrong-name.md").write_text(GOOD)
    (tmp_path / "binary.md").write_bytes(b"\x89PNG\x00\x00")
    (tmp_path / "README.md").write_text("# not an entry")
    result = store.load()
    assert list(result.entries) == ["open-data-pilot"]
    sources = {p.source for p in result.problems}
    assert sources == {"broken.md", "wrong-name.md", "binary.md", "bad-date.md"}
    assert any("does not match the file name" in str(p) for p in result.problems)


def test_write_is_atomic_validated_and_refuses_to_clobber(tmp_path):
    store = EntryStore(tmp_path)
    first = entry()
    version = store.write(first, create=True)
    assert store.get(first.id) == first and store.version(first.id) == version
    with pytest.raises(Conflict, match="already exists"):
        store.write(entry(title="Another"), create=True)
    # Someone else edits the file after we read it: our save is refused, theirs is kept.
    store.write(entry(summary="Their change."), expected_version=version)
    with pytest.raises(Conflict, match="changed by someone else"):
        store.write(entry(summary="Our change."), expected_version=version)
    assert store.get(first.id).summary == "Their change."
    assert not list(tmp_path.glob(".tmp-*"))
    with pytest.raises(EntryError):
        store.write(entry(kind="nonsense"))
    assert store.get(first.id).kind == "experiment"


def test_unique_ids_and_path_traversal(tmp_path):
    store = EntryStore(tmp_path)
    store.write(entry(id="same-title"), create=True)
    assert store.unique_id("Same title") == "same-title-2"
    for bad in ("../x", "a/b", ".hidden", "", "A"):
        with pytest.raises(NotFound):
            store.path_for(bad)


def test_sample_entries_are_valid_and_rich():
    from tests.conftest import SAMPLE_ENTRIES

    result = EntryStore(SAMPLE_ENTRIES).load()
    assert [p for p in result.problems if p.severity == "error"] == []
    entries = list(result.entries.values())
    assert len(entries) >= 40
    failed = [e for e in entries if e.outcome in ("failed", "stopped")]
    assert len(failed) * 3 >= len(entries)
    lighthouses = [e for e in entries if e.lighthouse]
    assert len(lighthouses) >= 6 and all(e.lighthouse.impact and e.lighthouse.benefits for e in lighthouses)
    assert len({e.organisation for e in entries}) >= 8
    assert all(len(e.sections) == 8 for e in entries)


def test_every_change_keeps_the_previous_version(tmp_path):
    store = EntryStore(tmp_path)
    store.write(entry(summary="First."), create=True)
    assert store.history("a-test-entry") == []
    store.write(entry(summary="Second."))
    store.write(entry(summary="Third."))
    versions = store.history("a-test-entry")
    assert [parse_entry(v.text)[0].summary for v in versions] == ["Second.", "First."]
    assert store.get("a-test-entry").summary == "Third."
    assert [p.name for p in store.files()] == ["a-test-entry.md"]  # history is not an entry


# --------------------------------------------------------------------------- what is never read


def write_good(folder, entry_id: str = "open-data-pilot"):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{entry_id}.md").write_text(GOOD.replace("id: open-data-pilot", f"id: {entry_id}"))


def test_a_key_given_twice_is_refused_with_the_key_and_the_line():
    twice = GOOD.replace("visibility: public\n", "visibility: organisation\nvisibility: public\n")
    with pytest.raises(EntryError) as caught:
        parse_entry(twice, "pilot.md")
    problem = caught.value.problems[0]
    assert (problem.source, problem.field) == ("pilot.md", "visibility")
    assert "'visibility' twice (lines 9 and 10)" in problem.message  # the file's own lines
    nested = GOOD.replace("  stage: proven\n", "  stage: proven\n  stage: pilot\n")
    with pytest.raises(EntryError, match="'stage' twice"):
        parse_entry(nested, "pilot.md")


def test_every_yaml_file_refuses_a_key_given_twice(tmp_path):
    from kb.mapping import load_mapping
    from kb.signin import AccessFileError, load_access
    from kb.vocabulary import Vocabulary

    (tmp_path / "vocabulary.yaml").write_text("themes:\n  - id: a\n    label: A\n    label: B\n")
    assert "'label' is given twice" in Vocabulary.load(tmp_path).problems[0].message
    (tmp_path / "mapping.yaml").write_text("fields:\n  title: Title\n  title: Name\n")
    with pytest.raises(KBError, match="'title' is given twice"):
        load_mapping(tmp_path / "mapping.yaml")
    (tmp_path / "access.yaml").write_text("organisations:\n  a.gov: A\n  a.gov: B\n")
    with pytest.raises(AccessFileError, match="'a.gov' is given twice"):
        load_access(tmp_path / "access.yaml")


def test_symbolic_links_are_named_and_never_followed(tmp_path):
    outside = tmp_path / "outside"
    write_good(outside, "secret-outside")
    entries = tmp_path / "entries"
    write_good(entries)
    (entries / "secret-outside.md").symlink_to(outside / "secret-outside.md")
    (entries / "vocabulary.yaml").symlink_to(outside / "secret-outside.md")
    store = EntryStore(entries)
    files, problems = store.scan()
    assert [p.name for p in files] == ["open-data-pilot.md"]
    assert [(p.source, "symbolic link" in p.message) for p in problems] == [("secret-outside.md", True)]
    assert "secret-outside" not in store.load().entries
    with pytest.raises(NotFound, match="no entry with id 'secret-outside'"):
        store.get("secret-outside")
    with pytest.raises(EntryError, match="symbolic link"):
        store.load_file(entries / "secret-outside.md")
    from kb.vocabulary import Vocabulary

    assert "symbolic link" in Vocabulary.load(entries).problems[0].message


def test_a_missing_folder_or_a_plain_file_is_refused(tmp_path):
    (tmp_path / "a-file").write_text("x")
    for folder, words in ((tmp_path / "none", "does not exist"), (tmp_path / "a-file", "is a file")):
        with pytest.raises(KBError, match=words):
            EntryStore(folder).scan()


@pytest.mark.parametrize("entry_id", ["", "   ", "\t"])
def test_blank_ids_are_refused(tmp_path, entry_id):
    with pytest.raises(NotFound, match="give an entry id"):
        EntryStore(tmp_path).get(entry_id)


def test_missing_entries_are_named_without_the_folder(tmp_path):
    with pytest.raises(NotFound) as caught:
        EntryStore(tmp_path / "entries").get("nothing-here")
    assert str(caught.value) == "no entry with id 'nothing-here'" and str(tmp_path) not in str(caught.value)


def test_leftover_temporary_files_are_never_versions_and_are_swept(tmp_path):
    import os
    import time

    store = EntryStore(tmp_path)
    store.write(entry(summary="First."), create=True)
    store.write(entry(summary="Second."))
    history = tmp_path / ".history" / "a-test-entry"
    fresh, stale = history / ".tmp-abc123.tmp", history / ".tmp-old.tmp"
    legacy = history / ".tmp-before.md"  # the name an older version's killed save left
    for leftover in (fresh, stale, legacy):
        leftover.write_text("---\nhalf a file")
    old = time.time() - 2 * 3600
    os.utime(stale, (old, old))
    os.utime(legacy, (old, old))
    versions = store.history("a-test-entry")
    assert [parse_entry(v.text)[0].summary for v in versions] == ["First."]
    assert fresh.exists(), "a live writer's file is left alone"
    assert not stale.exists() and not legacy.exists(), "a killed writer's files are swept"


def test_writes_leave_no_file_an_entry_glob_would_read(tmp_path, monkeypatch):
    import kb.store

    def killed(*args):
        raise KeyboardInterrupt  # the process dies between writing the temporary file and renaming it

    store = EntryStore(tmp_path)
    store.write(entry(summary="First."), create=True)
    monkeypatch.setattr(kb.store.os, "replace", killed)
    with pytest.raises(KeyboardInterrupt):
        store.write(entry(summary="Second."))
    assert sorted(p.name for p in tmp_path.rglob("*.md") if ".history" not in p.parts) == ["a-test-entry.md"]


def test_a_merged_key_may_be_overridden_but_a_mapping_s_own_key_not_twice():
    from kb.yamlfile import DuplicateKey, load_yaml

    assert load_yaml("base: &b {a: 1, b: 2}\nother:\n  <<: *b\n  b: 3\n")["other"] == {"a": 1, "b": 3}
    with pytest.raises(DuplicateKey, match="'c' is given twice"):
        load_yaml("x:\n  <<: {a: 1}\n  c: 1\n  c: 2\n")


GRADED = GOOD.replace(
    "started: 2021-03\n",
    """data_sources:
  - Bus operator returns
  - name: ONS Postcode Directory
    grades:
      accuracy: {rating: good, note: "Matched 98% of stops"}
      timeliness: {rating: poor, note: 3 months late}
      validity: Fair
    graded: 2021-09
  - name: Stop register
started: 2021-03
""",
)


def test_data_sources_carry_grades_and_render_back_losslessly():
    e, warnings = parse_entry(GRADED, "x.md")
    assert warnings == []
    assert e.data_sources == ["Bus operator returns", "ONS Postcode Directory", "Stop register"]
    onspd = e.data_quality["ONS Postcode Directory"]
    assert onspd.graded == "2021-09"
    assert [(d, g.rating, g.note) for d, g in onspd.grades.items()] == [
        ("accuracy", "good", "Matched 98% of stops"),
        ("timeliness", "poor", "3 months late"),
        ("validity", "fair", ""),
    ]
    assert e.lowest_quality == "poor" and set(e.data_quality) == {"ONS Postcode Directory"}
    text = render_entry(e)
    assert "- Bus operator returns\n" in text and "data_quality" not in text
    assert parse_entry(text, "x.md")[0] == e
    from kb.entry_files import entry_from_dict

    assert entry_from_dict(e.to_dict(), "x.jsonl", e.sections)[0] == e  # JSONL's form reads back too


def test_bad_grades_name_their_place_and_every_one_is_reported():
    bad = (
        GRADED.replace("rating: good", "rating: great")
        .replace("validity: Fair", "speed: fair")
        .replace("graded: 2021-09", "graded: last spring")
        .replace(
            "  - name: Stop register\n", "  - grades: {accuracy: good}\n  - name: Stop register\n    grades: [good]\n"
        )
    )
    with pytest.raises(EntryError) as caught:
        parse_entry(bad, "buses.md")
    messages = [str(p) for p in caught.value.problems]
    expected = [
        "buses.md, field 'data_sources[2].grades.accuracy.rating': 'great' is not a rating; use one of: "
        "poor, fair, good, excellent",
        "buses.md, field 'data_sources[2].grades.speed': 'speed' is not a dimension; use one of: accuracy, "
        "completeness, consistency, timeliness, uniqueness, validity",
        "buses.md, field 'data_sources[2].graded': 'last spring' is not a date; write YYYY, YYYY-MM or YYYY-MM-DD",
        "buses.md, field 'data_sources[3]': is a mapping without a name",
        "buses.md, field 'data_sources[4].grades': must be a mapping of dimensions",
    ]
    for wanted in expected:
        assert any(m.startswith(wanted) for m in messages), (wanted, messages)


def test_a_bad_grade_on_one_source_keeps_the_others_and_their_grades():
    from kb.entry_fields import FieldReader, read_data_sources

    f = FieldReader({}, "x.md")
    names, quality = read_data_sources(
        f,
        [{"name": "A", "grades": {"accuracy": "awful"}}, {"name": "B", "grades": {"validity": "good"}}, "C"],
        None,
    )
    assert names == ["A", "B", "C"] and list(quality) == ["B"]
    assert [p.field for p in f.problems] == ["data_sources[1].grades.accuracy.rating"]


# A source whose name holds colons, graded with notes that hold colons and brackets left open or closed.
ODD_SOURCE = "HMRC: PAYE RTI (monthly)"
ODD_GRADES = {
    "accuracy": ("good", "matched 98% (of rows"),
    "timeliness": ("poor", "late: a month (sometimes two)"),
    "validity": ("fair", ""),
}


def test_grades_in_words_round_trip_a_name_with_a_colon_and_notes_with_brackets():
    from kb.entries import Grade, SourceQuality
    from kb.entry_fields import quality_from_words, quality_words
    from kb.entry_files import entry_from_dict

    e, _ = parse_entry(GRADED, "x.md")
    odd = SourceQuality({d: Grade(r, n) for d, (r, n) in ODD_GRADES.items()}, "2024-03")
    e.data_sources.append(ODD_SOURCE)
    e.data_quality[ODD_SOURCE] = odd
    words = quality_words(e)
    assert words[-1].startswith(f"{ODD_SOURCE} (graded 2024-03): accuracy good (matched 98% (of rows)")
    quality, unread = quality_from_words(words)
    assert unread == []
    assert list(quality) == ["ONS Postcode Directory", ODD_SOURCE]
    again, _ = entry_from_dict(e.to_dict() | {"data_quality": quality}, "x.md")
    assert again.data_quality == e.data_quality
