"""Export to CSV and JSONL, and the round trip back through the importer with the built-in mapping."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import replace
from pathlib import Path

import openpyxl
import pytest

from kb.entries import SECTIONS, Entry, Lighthouse
from kb.errors import KBError
from kb.exporter import FIELD_COLUMNS, csv_columns, export_entries, guard_formula, join_items, unguard_formula
from kb.importer import import_table, load_mapping, split_items
from kb.store import EntryStore


def sample_entries() -> list[Entry]:
    """Entries that exercise every awkward corner of a table: lists, lighthouse, Markdown, unicode, formulas."""
    lighthouse_project = Entry(
        id="benefits-housing-pilot",
        title="Benefits and housing data-sharing pilot — Ōtautahi, Québec & Łódź",
        summary="We shared claimant records with housing teams; the agreement took fourteen months.",
        kind="experiment",
        outcome="stopped",
        organisation="Department for Work and Welfare",
        status="published",
        visibility="public",
        team="Vulnerability Data Unit",
        contact="vdu@example.gov",
        anonymous=True,
        partners=["Ministry of Housing, Communities and Places", "Northfield City Council"],
        themes=["data-sharing-agreements", "data-governance"],
        tags=["homelessness; prevention", "pilot", "Parts, Materials, & Processes", "a;", ";b", "日本語"],
        data_sources=["Benefit claimant records"],
        started="2021-04",
        ended="2022-09-30",
        phase="pilot",
        evidence="observed",
        lighthouse=Lighthouse(
            stage="replicated",
            impact="Councils act months earlier; 400 households a week flagged.",
            benefits=["£1.2m saved", "fewer evictions; earlier help"],
            reused_by=["court-and-probation-bridge"],
        ),
        created="2022-10-12",
        updated="2023-01-05",
        author="Priya Natarajan",
        reviewer="Tom Okafor",
        review_comment="Approved, with thanks.",
        source="Team write-up",
        related=["cross-government-dsa-template"],
        links=["https://example.gov/report?a=1;b=2", "https://example.gov/é"],
        sections={
            "Context": 'Housing teams learned too late.\n\nTwo paragraphs, with "quotes", commas; and tabs\tinside.',
            "What we did": "- scoped a pilot\n- drafted a DSA\n\n| table | row |\n|---|---|\n| a | b |",
            "What happened": "=SUM(A1:A3) is what the analyst typed.\n\n### A sub-heading\n\n> a quote",
            "What didn't": "'=not a formula, an apostrophe first",
            "Lessons": "@mention, +plus, and **bold** — ✓ émoji 🚀",
            "Recommendations": "1. Use one template.\n2. Start legal review early.",
            "Evidence and links": "See [the report](https://example.gov/report).",
            "Appendix": "A section outside the standard eight,\u2028with a Unicode line separator.",
        },
    )
    plain = Entry(
        id="school-meals-uptake",
        title="School meals uptake model",
        summary="A model that never went live.",
        kind="project",
        outcome="failed",
        organisation="DfE",
        status="draft",
        visibility="internal",
        sections={"Lessons": "-1 is a valid first character too."},
    )
    return [lighthouse_project, plain]


@pytest.fixture
def store(tmp_path: Path) -> EntryStore:
    """The sample entries written and read back, so they are exactly what an entry file holds."""
    store = EntryStore(tmp_path / "source")
    for entry in sample_entries():
        store.write(entry, create=True)
    return store


def assert_same_entries(expected: dict[str, Entry], actual: dict[str, Entry]) -> None:
    assert sorted(actual) == sorted(expected)
    for entry_id, entry in expected.items():
        for name in Entry.__dataclass_fields__:
            assert getattr(actual[entry_id], name) == getattr(entry, name), f"{entry_id}: {name}"


# --------------------------------------------------------------------------- CSV


def test_csv_has_one_row_per_entry_with_lists_joined_and_sections_as_columns(store: EntryStore) -> None:
    out = io.StringIO()
    entries = list(store.load().entries.values())
    assert export_entries(entries, "csv", out) == 2
    rows = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert len(rows) == 2
    header = list(rows[0])
    assert header[: len(FIELD_COLUMNS)] == list(FIELD_COLUMNS)
    assert header[len(FIELD_COLUMNS) :] == [f"section: {name}" for name in (*SECTIONS, "Appendix")]
    row = next(r for r in rows if r["id"] == "benefits-housing-pilot")
    assert row["partners"] == "Ministry of Housing, Communities and Places; Northfield City Council"
    assert row["tags"] == "homelessness;; prevention; pilot; Parts, Materials, & Processes; a;;; ;;b; 日本語"
    assert row["lighthouse.stage"] == "replicated"
    assert row["lighthouse.benefits"] == "£1.2m saved; fewer evictions;; earlier help"
    assert row["anonymous"] == "true"
    assert row["section: What we did"].startswith("'- scoped a pilot\n- drafted a DSA")
    assert row["section: What happened"].startswith("'=SUM(A1:A3)")
    assert row["section: What didn't"] == "''=not a formula, an apostrophe first"
    plain = next(r for r in rows if r["id"] == "school-meals-uptake")
    assert plain["lighthouse.stage"] == "" and plain["anonymous"] == "false"
    assert plain["section: Lessons"] == "'-1 is a valid first character too."


def test_formula_guard_and_list_joining_are_undone_by_the_importer() -> None:
    for text in ("=1+1", "+44 20", "-", "@here", "'=x", "''=x", "'plain", "plain", ""):
        guarded = guard_formula(text)
        assert guarded in (text, "'" + text)
        assert not guarded.startswith(("=", "+", "-", "@"))
        assert unguard_formula(guarded) == text
    items = ["a; b", "c;", ";d", "e"]
    assert split_items(join_items(items), ";") == items


def test_export_to_a_path_is_utf8_with_a_byte_order_mark(tmp_path: Path, store: EntryStore) -> None:
    path = tmp_path / "out" / "register.csv"
    path.parent.mkdir()
    assert export_entries(store.load().entries.values(), "CSV", path) == 2
    raw = path.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf") and "Łódź".encode() in raw
    assert [p.name for p in path.parent.iterdir()] == ["register.csv"]  # no temporary file left behind


def test_export_of_nothing_writes_the_header_only() -> None:
    out = io.StringIO()
    assert export_entries([], "csv", out) == 0
    assert out.getvalue().strip().split(",")[:3] == ["id", "title", "summary"]
    assert csv_columns([])[-1] == "section: Evidence and links"


def test_unknown_format_and_unwritable_path(tmp_path: Path) -> None:
    with pytest.raises(KBError, match="cannot export as 'xml'; choose one of: csv, xlsx, jsonl"):
        export_entries([], "xml", io.StringIO())
    with pytest.raises(KBError, match="an Excel workbook cannot be written to the terminal; give a file with --out"):
        export_entries([], "xlsx", io.StringIO())
    blocker = tmp_path / "a-file"
    blocker.write_text("x", encoding="utf-8")
    with pytest.raises(KBError, match="cannot write"):
        export_entries([], "csv", blocker / "register.csv")


# --------------------------------------------------------------------------- JSONL


def test_jsonl_has_one_object_per_entry_with_lists_as_lists(store: EntryStore) -> None:
    out = io.StringIO()
    assert export_entries(store.load().entries.values(), "jsonl", out) == 2
    lines = out.getvalue().rstrip("\n").split("\n")  # not splitlines: JSON keeps U+2028 inside strings
    assert len(lines) == 2
    record = next(json.loads(line) for line in lines if "benefits-housing-pilot" in line)
    assert record["tags"][0] == "homelessness; prevention"
    assert record["lighthouse"]["benefits"] == ["£1.2m saved", "fewer evictions; earlier help"]
    assert record["sections"]["What happened"].startswith("=SUM(A1:A3)")  # JSON needs no formula guard
    assert record["anonymous"] is True
    assert "日本語" in lines[0] or "日本語" in lines[1]  # unicode as itself, not \\u escapes


# --------------------------------------------------------------------------- round trip


@pytest.mark.parametrize("fmt", ["csv", "xlsx", "jsonl"])
def test_export_imports_back_to_the_same_entries(tmp_path: Path, store: EntryStore, fmt: str) -> None:
    original = store.load().entries
    path = tmp_path / f"register.{fmt}"
    export_entries(original.values(), fmt, path)

    target = EntryStore(tmp_path / "target")
    report = import_table(target, path, load_mapping(None))
    assert report.errors == [] and report.warnings == []
    assert sorted(report.created) == sorted(original)
    loaded = target.load()
    assert loaded.problems == []
    assert_same_entries(original, loaded.entries)

    again = import_table(target, path, load_mapping(None))
    assert sorted(again.unchanged) == sorted(original) and again.created == again.updated == []


def test_export_opened_and_saved_in_a_spreadsheet_imports_back(tmp_path: Path, store: EntryStore) -> None:
    """The CSV's rows put into a workbook, as a user who opens it in Excel and saves .xlsx would have them."""
    original = store.load().entries
    out = io.StringIO()
    export_entries(original.values(), "csv", out)
    workbook = openpyxl.Workbook()
    for row in csv.reader(io.StringIO(out.getvalue())):
        workbook.active.append(row)
    path = tmp_path / "register.xlsx"
    workbook.save(path)

    target = EntryStore(tmp_path / "target")
    report = import_table(target, path, load_mapping(None))
    assert report.errors == []
    assert_same_entries(original, target.load().entries)


def test_new_rows_added_to_an_export_get_ids_and_safe_defaults(tmp_path: Path, store: EntryStore) -> None:
    out = io.StringIO()
    export_entries([], "csv", out)
    header = next(csv.reader(io.StringIO(out.getvalue())))
    row = dict.fromkeys(header, "")
    row.update(
        title="Street lighting sensors",
        summary="Sensors on lamp posts.",
        kind="project",
        outcome="partial",
        organisation="Northfield City Council",
        tags="iot; sensors",
    )
    path = tmp_path / "new.csv"
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=header)
        writer.writeheader()
        writer.writerow(row)
    target = EntryStore(tmp_path / "target")
    assert import_table(target, path, load_mapping(None)).created == ["street-lighting-sensors"]
    entry = target.get("street-lighting-sensors")
    assert (entry.status, entry.visibility, entry.tags) == ("draft", "internal", ["iot", "sensors"])
    assert entry.source == "Imported from new.csv"  # how the next import of this file knows the row
    assert import_table(target, path, load_mapping(None)).unchanged == ["street-lighting-sensors"]

    entry.source = ""  # now it looks written by hand: a row without an id must not take it over
    target.write(entry)
    report = import_table(target, path, load_mapping(None))
    assert report.refused_rows == [2] and "already has" in report.errors[0].message


def test_a_hand_made_table_may_leave_out_optional_columns(tmp_path: Path) -> None:
    path = tmp_path / "minimal.csv"
    path.write_text(
        "title,summary,kind,outcome,organisation,section: Lessons\n"
        "Open data portal,It launched.,project,succeeded,GDS,Publish early.\n",
        encoding="utf-8",
    )
    target = EntryStore(tmp_path / "target")
    report = import_table(target, path, load_mapping(None))
    assert report.created == ["open-data-portal"]
    assert target.get("open-data-portal").sections == {"Lessons": "Publish early."}

    path.write_text("title,kind\nX,project\n", encoding="utf-8")
    with pytest.raises(KBError, match="has no column 'summary' .* its columns are: title, kind"):
        import_table(target, path, load_mapping(None))


# --------------------------------------------------------------------------- a reader's view


def redacted_view(entries: dict[str, Entry]) -> tuple[list[Entry], dict[str, list[str]]]:
    """What `export --as` gives a reader: no team, contact or author on the anonymous entry, and no ids of
    entries the reader cannot see; with the fields withheld from each entry."""
    anonymous = entries["benefits-housing-pilot"]
    assert anonymous.anonymous and anonymous.team and anonymous.lighthouse and anonymous.lighthouse.reused_by
    hidden_links = replace(
        anonymous,
        team="",
        contact="",
        author="",
        related=[],
        lighthouse=replace(anonymous.lighthouse, reused_by=[]),
    )
    plain = entries["school-meals-uptake"]
    partly_hidden = replace(plain, related=["benefits-housing-pilot"])
    withheld = {
        hidden_links.id: ["team", "contact", "author", "related", "lighthouse.reused_by"],
        plain.id: ["related"],
    }
    return [hidden_links, partly_hidden], withheld


@pytest.fixture
def linked_store(store: EntryStore) -> EntryStore:
    """The sample entries, the plain one related to a visible entry and to one the reader cannot see."""
    plain = store.get("school-meals-uptake")
    plain.related = ["benefits-housing-pilot", "internal-only-review"]
    store.write(plain)
    return store


def test_a_redacted_export_says_what_it_withheld(linked_store: EntryStore) -> None:
    view, withheld = redacted_view(linked_store.load().entries)
    withheld["school-meals-uptake"] = []
    out = io.StringIO()
    export_entries(view, "csv", out, withheld=withheld)
    rows = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert list(rows[0])[-1] == "withheld"
    assert [row["withheld"] for row in rows] == ["team; contact; author; related; lighthouse.reused_by", ""]

    out = io.StringIO()
    export_entries(view, "jsonl", out, withheld={"benefits-housing-pilot": ["team"]})
    records = [json.loads(line) for line in out.getvalue().rstrip("\n").split("\n")]
    assert [record["withheld"] for record in records] == [["team"], []]

    full = io.StringIO()
    export_entries(view, "jsonl", full)
    assert "withheld" not in json.loads(full.getvalue().split("\n")[0])


def test_only_known_optional_fields_can_be_withheld(linked_store: EntryStore) -> None:
    view, _ = redacted_view(linked_store.load().entries)
    for name in ("colour", "title"):
        with pytest.raises(KBError, match=f"cannot mark '{name}' as withheld"):
            export_entries(view, "csv", io.StringIO(), withheld={"school-meals-uptake": [name]})


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_reimporting_a_redacted_export_changes_nothing_stored(
    tmp_path: Path, linked_store: EntryStore, fmt: str
) -> None:
    before = {path.name: path.read_bytes() for path in linked_store.files()}
    view, withheld = redacted_view(linked_store.load().entries)
    path = tmp_path / f"for-a-reader.{fmt}"
    export_entries(view, fmt, path, withheld=withheld)

    report = import_table(linked_store, path, load_mapping(None))

    assert report.errors == []
    assert sorted(report.unchanged) == sorted(Path(name).stem for name in before)
    assert report.updated == report.created == []
    assert {path.name: path.read_bytes() for path in linked_store.files()} == before
    (warning,) = report.warnings
    assert "withheld" in warning.message and "left as stored" in warning.message
    assert "team" in warning.message and "lighthouse.reused_by" in warning.message


def test_an_edited_redacted_export_updates_only_what_it_holds(tmp_path: Path, linked_store: EntryStore) -> None:
    view, withheld = redacted_view(linked_store.load().entries)
    view[0].summary = "A corrected summary."
    view[0].related = ["school-meals-uptake"]  # withheld: what a reader typed here cannot replace the stored list
    path = tmp_path / "for-a-reader.csv"
    export_entries(view, "csv", path, withheld=withheld)

    report = import_table(linked_store, path, load_mapping(None))

    assert report.updated == ["benefits-housing-pilot"]
    entry = linked_store.get("benefits-housing-pilot")
    assert entry.summary == "A corrected summary."
    assert (entry.team, entry.contact, entry.author) == (
        "Vulnerability Data Unit",
        "vdu@example.gov",
        "Priya Natarajan",
    )
    assert entry.related == ["cross-government-dsa-template"]
    assert entry.lighthouse is not None and entry.lighthouse.reused_by == ["court-and-probation-bridge"]
    assert entry.lighthouse.stage == "replicated"


def test_a_redacted_export_into_an_empty_folder_leaves_withheld_fields_empty(
    tmp_path: Path, linked_store: EntryStore
) -> None:
    view, withheld = redacted_view(linked_store.load().entries)
    path = tmp_path / "for-a-reader.jsonl"
    export_entries(view, "jsonl", path, withheld=withheld)
    target = EntryStore(tmp_path / "target")
    report = import_table(target, path, load_mapping(None))
    assert sorted(report.created) == ["benefits-housing-pilot", "school-meals-uptake"]
    entry = target.get("benefits-housing-pilot")
    assert (entry.team, entry.contact, entry.author, entry.related) == ("", "", "", [])
    assert target.get("school-meals-uptake").related == []  # only part of the list was there to see


def test_an_unknown_name_in_the_withheld_column_is_a_warning(tmp_path: Path, linked_store: EntryStore) -> None:
    out = io.StringIO()
    view, withheld = redacted_view(linked_store.load().entries)
    export_entries(view, "csv", out, withheld=withheld)
    text = out.getvalue().replace("team; contact; author; related; lighthouse.reused_by", "team; colour; title")
    path = tmp_path / "edited.csv"
    path.write_text(text, encoding="utf-8")

    report = import_table(linked_store, path, load_mapping(None))

    assert report.errors == []
    unknown = [p for p in report.warnings if p.row == 2]
    assert [(p.field, p.message) for p in unknown] == [
        ("withheld", "names 'colour', 'title', which no export withholds (only optional fields such as team); ignored")
    ]
    assert linked_store.get("benefits-housing-pilot").team == "Vulnerability Data Unit"


# --------------------------------------------------------------------------- data-source grades


def graded_store(tmp_path: Path, odd: bool = False) -> EntryStore:
    """One entry grading a source; with `odd`, a second source whose name holds a colon, graded with notes
    that hold colons and brackets left open."""
    from kb.entries import Grade, SourceQuality

    store = EntryStore(tmp_path / "graded")
    quality = {
        "Benefit claimant records": SourceQuality(
            {"accuracy": Grade("fair", "Addresses lagged; by months"), "uniqueness": Grade("poor")}, "2021-10"
        )
    }
    if odd:
        quality["HMRC: PAYE RTI"] = SourceQuality(
            {"accuracy": Grade("good", "matched (most rows"), "timeliness": Grade("poor", "late: by weeks)")}, "2024-03"
        )
    entry = replace(
        sample_entries()[0],
        data_sources=["Benefit claimant records", "Housing register", *(["HMRC: PAYE RTI"] if odd else [])],
        data_quality=quality,
    )
    store.write(entry, create=True)
    return store


def test_grades_are_words_in_a_spreadsheet_and_structure_in_jsonl(tmp_path: Path) -> None:
    store = graded_store(tmp_path)
    entries = list(store.load().entries.values())
    buffer = io.StringIO()
    export_entries(entries, "csv", buffer)
    (row,) = csv.DictReader(io.StringIO(buffer.getvalue()))
    assert row["data_quality"] == (
        "Benefit claimant records (graded 2021-10): accuracy fair (Addresses lagged;; by months), uniqueness poor"
    )
    assert row["data_sources"] == "Benefit claimant records; Housing register"
    buffer = io.StringIO()
    export_entries(entries, "jsonl", buffer)
    record = json.loads(buffer.getvalue())
    assert record["data_quality"] == {
        "Benefit claimant records": {
            "grades": {
                "accuracy": {"rating": "fair", "note": "Addresses lagged; by months"},
                "uniqueness": {"rating": "poor", "note": ""},
            },
            "graded": "2021-10",
        }
    }


@pytest.mark.parametrize("odd", [False, True], ids=["plain", "colon-in-name-bracket-in-note"])
@pytest.mark.parametrize("fmt", ["csv", "xlsx", "jsonl"])
def test_an_export_imports_back_with_its_grades(tmp_path: Path, fmt: str, odd: bool) -> None:
    store = graded_store(tmp_path, odd)
    original = store.load().entries
    path = tmp_path / f"register.{fmt}"
    export_entries(original.values(), fmt, path)
    again = import_table(store, path, load_mapping(None))
    assert again.errors == [] and sorted(again.unchanged) == sorted(original)
    target = EntryStore(tmp_path / "empty")
    created = import_table(target, path, load_mapping(None))
    assert created.errors == [] and created.warnings == []
    assert_same_entries(original, target.load().entries)


def test_a_grade_an_import_cannot_read_refuses_its_row_with_the_place(tmp_path: Path) -> None:
    store = graded_store(tmp_path)
    path = tmp_path / "register.csv"
    export_entries(store.load().entries.values(), "csv", path)
    text = path.read_text(encoding="utf-8-sig")
    path.write_text(text.replace("accuracy fair", "accuracy"), encoding="utf-8")
    report = import_table(EntryStore(tmp_path / "empty"), path, load_mapping(None))
    messages = [str(p) for p in report.errors]
    assert messages == [
        "register.csv, row 2, field 'data_quality': line 1: 'accuracy (Addresses lagged; by months)' is not a "
        "grade; write a dimension, then a rating, e.g. 'accuracy good'"
    ]
    assert report.created == []
