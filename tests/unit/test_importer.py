"""Bulk import: mappings, every input format, bad rows by row number, re-import, and NASA's real register."""

from __future__ import annotations

import csv
import io
import json
import os
import time
from pathlib import Path

import openpyxl
import pytest

from kb.entries import MAX_SECTION, MAX_SUMMARY, MAX_TITLE, Entry
from kb.errors import KBError
from kb.importer import (
    ImportReport,
    Mapping,
    import_table,
    load_mapping,
    shorten_summary,
    split_items,
)
from kb.store import EntryStore
from kb.vocabulary import Theme, Vocabulary
from tests.conftest import ROOT

# --------------------------------------------------------------------------- fixtures

REGISTER_MAPPING = """\
# A department's lessons register, as a civil servant would map it.
id:
  column: Ref
  prefix: reg-
fields:
  title: Project name
  summary: Summary
  organisation: Department
  outcome:
    column: Result
    values:
      Worked: succeeded
      Did not work: failed
  started: Start date
  tags:
    column: Keywords
    split: ","
  themes: Themes
  visibility:
    column: Sensitivity
    values: {Official: public}
    otherwise: internal
sections:
  What happened: What happened
  Lessons:
    - Lessons
    - column: Notes
      label: Notes
defaults:
  kind: project
  status: published
  visibility: internal
placeholders:
  phrases: [See attached PDF.]
"""

HEADER = [
    "Ref",
    "Project name",
    "Summary",
    "Department",
    "Result",
    "Start date",
    "Keywords",
    "Themes",
    "Sensitivity",
    "What happened",
    "Lessons",
    "Notes",
]


def register_row(ref: str, name: str, **cells: str) -> list[str]:
    values = {
        "Ref": ref,
        "Project name": name,
        "Summary": f"What {name} was about.",
        "Department": "Cabinet Office",
        "Result": "Worked",
        "Start date": "2021-04-01",
        "Keywords": "pilot, data",
        "Themes": "",
        "Sensitivity": "Official",
        "What happened": "It went ahead.",
        "Lessons": "Start small.",
        "Notes": "",
    }
    values.update({k.replace("_", " "): v for k, v in cells.items()})
    return [values[h] for h in HEADER]


def write_csv(
    path: Path, rows: list[list[str]], header: list[str] = HEADER, encoding: str = "utf-8", delimiter: str = ","
) -> Path:
    with path.open("w", newline="", encoding=encoding) as handle:
        writer = csv.writer(handle, delimiter=delimiter)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def write_xlsx(path: Path, rows: list[list[object]], header: list[str] = HEADER) -> Path:
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    sheet.title = "Register"
    sheet.append(header)
    for row in rows:
        sheet.append(row)
    workbook.save(path)
    return path


@pytest.fixture
def mapping(tmp_path: Path) -> Mapping:
    path = tmp_path / "register.yaml"
    path.write_text(REGISTER_MAPPING, encoding="utf-8")
    return load_mapping(path)


@pytest.fixture
def store(tmp_path: Path) -> EntryStore:
    return EntryStore(tmp_path / "entries")


def problems_by_row(report: ImportReport, severity: str = "error") -> dict[int | None, list[str]]:
    out: dict[int | None, list[str]] = {}
    for p in report.problems:
        if p.severity == severity:
            out.setdefault(p.row, []).append(f"{p.field}: {p.message}")
    return out


def mtimes(store: EntryStore) -> dict[str, int]:
    return {p.name: p.stat().st_mtime_ns for p in store.files()}


# --------------------------------------------------------------------------- the mapping


def test_identity_mapping_needs_no_file() -> None:
    mapping = load_mapping(None)
    assert mapping.key_column == "id"
    assert {"title", "summary", "lighthouse.stage", "tags"} <= set(mapping.fields)


def test_mapping_reads_rules(mapping: Mapping) -> None:
    assert mapping.key_column == "Ref" and mapping.id_prefix == "reg-"
    assert mapping.fields["outcome"].values == {"worked": "succeeded", "did not work": "failed"}
    assert [r.label for r in mapping.sections["Lessons"]] == ["", "Notes"]
    assert mapping.defaults["kind"] == "project"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("fields: [title\n", "not valid YAML at line"),
        ("- just\n- a list\n", "must be 'key: value' lines"),
        (
            "fields:\n  titel: Name\n  summary: S\ndefaults: {kind: project, outcome: failed, organisation: X}\n",
            "'titel' is not an entry field",
        ),
        ("fields:\n  summary: S\ndefaults: {kind: project, outcome: failed, organisation: X}\n", "has no 'title'"),
        ("fields:\n  title: T\n  summary: S\n", "nothing gives 'kind'"),
        ("colums:\n  title: T\n", "unknown setting 'colums'"),
        ("fields:\n  title: {column: T, split: ','}\n  summary: S\n", "split and keep_together are for list fields"),
        ("id: {column: Ref, prefix: 'Bad Prefix!'}\nfields: {title: T, summary: S}\n", "id prefix 'Bad Prefix!'"),
        (
            "fields: {title: T, summary: S}\ndefaults: {kind: project, outcome: faild, organisation: X}\n",
            "defaults: outcome 'faild' is not allowed; use one of: succeeded",
        ),
    ],
)
def test_bad_mapping_is_one_clear_line(tmp_path: Path, text: str, expected: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(KBError) as caught:
        load_mapping(path)
    message = str(caught.value)
    assert expected in message
    assert "\n" not in message


def test_the_example_in_the_docs_is_a_valid_mapping(tmp_path: Path) -> None:
    docs = (ROOT / "docs" / "importing.md").read_text(encoding="utf-8")
    example = docs.split("```yaml\n", 1)[1].split("```", 1)[0]
    path = tmp_path / "example.yaml"
    path.write_text(example, encoding="utf-8")
    mapping = load_mapping(path)
    assert mapping.key_column == "Ref" and mapping.sheet == "Register" and mapping.delimiter == ";"
    assert mapping.fields["tags"].keep_together == ("Health, Safety & Wellbeing",)


def test_missing_mapping_file(tmp_path: Path) -> None:
    with pytest.raises(KBError, match="does not exist"):
        load_mapping(tmp_path / "nope.yaml")


# --------------------------------------------------------------------------- rows and problems


def test_bad_rows_are_reported_by_row_and_the_good_rows_imported(
    tmp_path: Path, store: EntryStore, mapping: Mapping
) -> None:
    path = write_csv(
        tmp_path / "register.csv",
        [
            register_row("1", "Shared address index"),  # row 2
            register_row("2", "Fraud model", Result="Maybe"),  # row 3: not an outcome
            register_row("3", "Court data bridge"),  # row 4
            register_row("4", ""),  # row 5: no title
            register_row("5", "Skills survey", Start_date="31/02/2020"),  # row 6: not a date
            register_row("6", "Waste permits", Result="Did not work"),  # row 7
        ],
    )
    report = import_table(store, path, mapping)

    assert sorted(report.created) == ["reg-1", "reg-3", "reg-6"]
    assert report.rows == 6
    errors = problems_by_row(report)
    assert set(errors) == {3, 5, 6}
    assert "Result" in errors[3][0] and "'Maybe' is not allowed" in errors[3][0]
    assert errors[5] == ["Project name: is empty; every row needs a title"]
    assert "Start date" in errors[6][0] and "not a date" in errors[6][0]
    assert all(p.source == "register.csv" for p in report.problems)
    assert report.refused_rows == [3, 5, 6]
    assert report.summary() == ("register.csv: 6 rows: 3 created, 0 updated, 0 unchanged, 3 refused, 0 warnings")

    loaded = store.load()
    assert loaded.problems == []
    assert loaded.entries["reg-6"].outcome == "failed"
    entry = loaded.entries["reg-1"]
    assert entry.title == "Shared address index"
    assert entry.tags == ["pilot", "data"]
    assert entry.visibility == "public" and entry.status == "published" and entry.kind == "project"
    assert entry.sections == {"What happened": "It went ahead.", "Lessons": "Start small."}
    assert entry.source == "Imported from register.csv"


def test_reimport_creates_no_duplicates_and_rewrites_only_changed_rows(
    tmp_path: Path, store: EntryStore, mapping: Mapping
) -> None:
    rows = [register_row("1", "Shared address index"), register_row("2", "Court data bridge")]
    path = write_csv(tmp_path / "register.csv", rows)
    assert import_table(store, path, mapping).created == ["reg-1", "reg-2"]
    before = mtimes(store)
    time.sleep(0.01)

    again = import_table(store, path, mapping)
    assert (again.created, again.updated, sorted(again.unchanged)) == ([], [], ["reg-1", "reg-2"])
    assert mtimes(store) == before

    rows[1] = register_row("2", "Court data bridge", Lessons="Agree the data model first.")
    write_csv(path, [rows[1], rows[0]])  # reordered rows: ids follow the key, not the position
    changed = import_table(store, path, mapping)
    assert (changed.created, changed.updated, changed.unchanged) == ([], ["reg-2"], ["reg-1"])
    assert len(store.files()) == 2
    assert store.get("reg-2").sections["Lessons"] == "Agree the data model first."
    assert mtimes(store)["reg-1.md"] == before["reg-1.md"]


def test_reimport_keeps_curator_edits_outside_the_mapped_columns(
    tmp_path: Path, store: EntryStore, mapping: Mapping
) -> None:
    path = write_csv(tmp_path / "register.csv", [register_row("1", "Shared address index")])
    import_table(store, path, mapping)
    entry = store.get("reg-1")
    entry.kind = "experiment"  # came from a default: the curator knows better
    entry.reviewer = "Ana"  # not in the mapping at all
    entry.sections["Recommendations"] = "Reuse the index."
    store.write(entry)

    assert import_table(store, path, mapping).unchanged == ["reg-1"]

    write_csv(path, [register_row("1", "Shared address index", Summary="A new summary.")])
    assert import_table(store, path, mapping).updated == ["reg-1"]
    entry = store.get("reg-1")
    assert entry.summary == "A new summary."
    assert (entry.kind, entry.reviewer) == ("experiment", "Ana")
    assert entry.sections["Recommendations"] == "Reuse the index."


def test_a_withheld_column_keeps_stored_values_with_any_mapping(
    tmp_path: Path, store: EntryStore, mapping: Mapping
) -> None:
    path = write_csv(tmp_path / "register.csv", [register_row("1", "A"), register_row("2", "B")])
    import_table(store, path, mapping)
    rows = [register_row("1", "A", Keywords="") + ["Tags"], register_row("2", "B", Keywords="") + [""]]
    write_csv(path, rows, header=[*HEADER, "Withheld"])

    report = import_table(store, path, mapping)

    assert (report.unchanged, report.updated) == (["reg-1"], ["reg-2"])
    assert store.get("reg-1").tags == ["pilot", "data"]
    assert store.get("reg-2").tags == []
    (warning,) = report.warnings
    assert warning.row is None and "tags (1 row)" in warning.message and "left as stored" in warning.message


def test_dry_run_writes_nothing(tmp_path: Path, store: EntryStore, mapping: Mapping) -> None:
    path = write_csv(tmp_path / "register.csv", [register_row("1", "A"), register_row("2", "", Result="Maybe")])
    report = import_table(store, path, mapping, dry_run=True)
    assert report.created == ["reg-1"]
    assert report.refused_rows == [3]
    assert report.summary().startswith("register.csv: 2 rows: 1 would be created, 0 would be updated")
    assert not store.root.exists()

    import_table(store, path, mapping)
    write_csv(path, [register_row("1", "A", Lessons="Changed.")])
    before = {p.name: p.read_bytes() for p in store.files()}
    assert import_table(store, path, mapping, dry_run=True).updated == ["reg-1"]
    assert {p.name: p.read_bytes() for p in store.files()} == before


def test_duplicate_keys_in_one_file_are_refused(tmp_path: Path, store: EntryStore, mapping: Mapping) -> None:
    path = write_csv(tmp_path / "register.csv", [register_row("7", "First"), register_row("7", "Second")])
    report = import_table(store, path, mapping)
    assert report.created == ["reg-7"]
    assert problems_by_row(report)[3] == [
        "Ref: has the same key as row 2 (id 'reg-7'); keys must be unique, so this row was not imported"
    ]
    assert store.get("reg-7").title == "First"


def test_without_a_key_ids_come_from_titles_and_collisions_are_refused(tmp_path: Path, store: EntryStore) -> None:
    mapping_path = tmp_path / "m.yaml"
    mapping_path.write_text(
        "fields: {title: Name, summary: Summary}\ndefaults: {kind: experiment, outcome: failed, organisation: DfE}\n",
        encoding="utf-8",
    )
    mapping = load_mapping(mapping_path)
    store.write(
        Entry(
            id="school-meals",
            title="School meals",
            summary="Hand written.",
            kind="project",
            outcome="succeeded",
            organisation="DfE",
        ),
        create=True,
    )
    path = write_csv(
        tmp_path / "tries.csv",
        [["Pupil attendance model", "One."], ["Pupil Attendance Model!", "Two."], ["School meals", "Three."]],
        header=["Name", "Summary"],
    )
    report = import_table(store, path, mapping)
    assert report.created == ["pupil-attendance-model"]
    errors = problems_by_row(report)
    assert "row 2 already has" in errors[3][0]
    assert "an entry from elsewhere already has" in errors[4][0]
    assert store.get("school-meals").summary == "Hand written."
    assert store.get("pupil-attendance-model").visibility == "internal"  # the safe built-in default
    assert store.get("pupil-attendance-model").status == "draft"

    again = import_table(store, path, mapping)
    assert again.unchanged == ["pupil-attendance-model"] and again.created == []


def test_long_title_and_summary_keep_their_full_text(tmp_path: Path, store: EntryStore, mapping: Mapping) -> None:
    sentence = "Teams shared a weekly extract of claimant records with the council housing team. "
    summary = (sentence * 40).strip()
    title = "A very long project name " * 12
    path = write_csv(tmp_path / "register.csv", [register_row("1", title.strip(), Summary=summary)])
    report = import_table(store, path, mapping)
    entry = store.get("reg-1")
    assert len(entry.title) <= MAX_TITLE and entry.title.endswith("…")
    assert len(entry.summary) <= MAX_SUMMARY and entry.summary.endswith("housing team.")
    assert summary in entry.sections["Context"]
    assert f"**Full title:** {title.strip()}" in entry.sections["Context"]
    assert [p.field for p in report.warnings] == ["Project name"]


def test_shorten_summary_keeps_whole_sentences() -> None:
    assert shorten_summary("One. Two. Three.", limit=10) == "One. Two."
    assert shorten_summary("x" * 30, limit=10) == "x" * 9 + "…"
    assert shorten_summary("Short.", limit=10) == "Short."


@pytest.mark.parametrize(
    ("text", "separator", "keep", "expected"),
    [
        ("a, b, c", ",", (), ["a", "b", "c"]),
        (
            "Hardware, Parts, Materials, & Processes, Power",
            ",",
            ("Parts, Materials, & Processes",),
            ["Hardware", "Parts, Materials, & Processes", "Power"],
        ),
        ("Kepler (K2, extended), Juno", ",", (), ["Kepler (K2, extended)", "Juno"]),
        ("first\nsecond, third", ",", (), ["first", "second", "third"]),
        ("a;; b; c", ";", (), ["a; b", "c"]),
        ("a;;; b", ";", (), ["a;", "b"]),
        (" , ,", ",", (), []),
        ("https://a.example/?x=1,2\nhttps://b.example", "", (), ["https://a.example/?x=1,2", "https://b.example"]),
    ],
)
def test_split_items(text: str, separator: str, keep: tuple[str, ...], expected: list[str]) -> None:
    assert split_items(text, separator, keep) == expected


def test_split_none_keeps_commas_inside_items(tmp_path: Path, store: EntryStore) -> None:
    mapping_path = tmp_path / "m.yaml"
    mapping_path.write_text(REGISTER_MAPPING.replace('    split: ","', "    split: none"), encoding="utf-8")
    path = write_csv(tmp_path / "register.csv", [register_row("1", "A", Keywords="Parts, Materials\nPower")])
    import_table(store, path, load_mapping(mapping_path))
    assert store.get("reg-1").tags == ["Parts, Materials", "Power"]


def test_lesson_that_only_points_to_an_attachment(tmp_path: Path, store: EntryStore, mapping: Mapping) -> None:
    path = write_csv(
        tmp_path / "register.csv",
        [
            register_row("1", "Remote work", What_happened="See attached PDF.", Lessons="see attached pdf"),
            register_row("2", "Half there", Lessons="See attached PDF."),
        ],
    )
    report = import_table(store, path, mapping)
    assert sorted(report.created) == ["reg-1", "reg-2"]
    held = store.get("reg-1")
    assert held.status == "draft" and "needs-text" in held.tags
    assert held.sections["Lessons"] == "see attached pdf"  # kept as written: nothing is lost
    warnings = problems_by_row(report, "warning")
    assert "Imported as draft, tagged 'needs-text'" in warnings[2][0]
    assert warnings[2][0].startswith("What happened, Lessons:")
    assert "in an attachment this file does not hold" in warnings[3][0]
    assert store.get("reg-2").status == "published"

    held.sections["Lessons"] = "The text from the PDF."
    held.tags.remove("needs-text")
    held.status = "published"
    store.write(held)
    again = import_table(store, path, mapping)
    assert "reg-1" in again.unchanged
    assert store.get("reg-1").sections["Lessons"] == "The text from the PDF."


def test_themes_are_matched_to_the_vocabulary(tmp_path: Path, store: EntryStore, mapping: Mapping) -> None:
    vocabulary = Vocabulary([Theme("data-sharing-agreements", "Data sharing agreements", synonyms=("DSA",))])
    path = write_csv(tmp_path / "register.csv", [register_row("1", "A", Themes="DSA, Quantum")])
    report = import_table(store, path, mapping, vocabulary=vocabulary)
    assert store.get("reg-1").themes == ["data-sharing-agreements", "Quantum"]
    assert [(p.row, p.field) for p in report.warnings] == [(2, "Themes")]


def test_section_from_two_columns_is_labelled(tmp_path: Path, store: EntryStore, mapping: Mapping) -> None:
    path = write_csv(tmp_path / "register.csv", [register_row("1", "A", Notes="Ask Priya.\n\n## Next\nMore.")])
    import_table(store, path, mapping)
    assert store.get("reg-1").sections["Lessons"] == "Start small.\n\n**Notes:** Ask Priya.\n\n### Next\nMore."


def test_sensitivity_values_map_to_visibility(tmp_path: Path, store: EntryStore, mapping: Mapping) -> None:
    path = write_csv(
        tmp_path / "register.csv",
        [
            register_row("1", "A", Sensitivity="OFFICIAL"),
            register_row("2", "B", Sensitivity="Secret"),
            register_row("3", "C", Sensitivity=""),
        ],
    )
    import_table(store, path, mapping)
    assert [store.get(i).visibility for i in ("reg-1", "reg-2", "reg-3")] == ["public", "internal", "internal"]


# --------------------------------------------------------------------------- bad input, file by file


@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        ("register.pdf", b"%PDF-1.4", "cannot import '.pdf' files"),
        ("register.xls", b"\xd0\xcf\x11\xe0", "old Excel .xls file"),
        ("register.xlsx", b"Ref,Project name\n1,A\n", "is not an Excel .xlsx workbook"),
        ("register.csv", b"PK\x03\x04\x00\x00binary", "is a binary file"),
        ("register.csv", b"", "is empty"),
        ("register.jsonl", b"\n\n", "is empty"),
        ("register.csv", b"\x81\x8d\x8f\x90\x9d", "neither UTF-8 nor Windows"),
        ("register.csv", b'Ref,"Project name\n1,A\n', "header row opens a quote at line 1 that is never closed"),
    ],
)
def test_unreadable_files_raise_one_clear_line(
    tmp_path: Path, store: EntryStore, mapping: Mapping, name: str, content: bytes, expected: str
) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(KBError) as caught:
        import_table(store, path, mapping)
    assert expected in str(caught.value)
    assert "\n" not in str(caught.value)


def test_missing_file_and_folder(tmp_path: Path, store: EntryStore, mapping: Mapping) -> None:
    with pytest.raises(KBError, match="does not exist"):
        import_table(store, tmp_path / "absent.csv", mapping)
    (tmp_path / "folder.csv").mkdir()
    with pytest.raises(KBError, match="is a folder"):
        import_table(store, tmp_path / "folder.csv", mapping)


def test_missing_columns_are_named_with_the_columns_that_exist(
    tmp_path: Path, store: EntryStore, mapping: Mapping
) -> None:
    header = [h for h in HEADER if h not in ("Summary", "Lessons")]
    path = write_csv(tmp_path / "register.csv", [["1"] * len(header)], header=header)
    with pytest.raises(KBError) as caught:
        import_table(store, path, mapping)
    message = str(caught.value)
    assert "has no column 'Summary' (for summary), 'Lessons' (for section Lessons)" in message
    assert "its columns are: Ref, Project name, Department" in message
    assert not store.root.exists()


def test_column_names_match_whatever_the_case_and_spacing(tmp_path: Path, store: EntryStore, mapping: Mapping) -> None:
    header = [f"  {h.upper()} " for h in HEADER]
    path = write_csv(tmp_path / "register.csv", [register_row("1", "A")], header=header)
    assert import_table(store, path, mapping).created == ["reg-1"]


def test_empty_rows_are_skipped_with_a_note(tmp_path: Path, store: EntryStore, mapping: Mapping) -> None:
    path = write_csv(
        tmp_path / "register.csv", [register_row("1", "A"), [""] * len(HEADER), [], register_row("2", "B"), [], []]
    )
    report = import_table(store, path, mapping)
    assert report.created == ["reg-1", "reg-2"] and report.rows == 2
    assert [p.message for p in report.warnings] == ["skipped empty row(s) 3, 4"]


def test_formula_like_cells_are_kept_as_text(tmp_path: Path, store: EntryStore, mapping: Mapping) -> None:
    path = write_csv(
        tmp_path / "register.csv",
        [register_row("1", '=HYPERLINK("x")', Lessons="=1+1", Summary="'=guarded by a spreadsheet export")],
    )
    import_table(store, path, mapping)
    entry = store.get("reg-1")
    assert entry.title == '=HYPERLINK("x")'
    assert entry.sections["Lessons"] == "=1+1"
    assert entry.summary == "=guarded by a spreadsheet export"


def test_huge_cells_are_capped_and_reported(tmp_path: Path, store: EntryStore, mapping: Mapping) -> None:
    path = write_csv(tmp_path / "register.csv", [register_row("1", "A", Lessons="x" * (MAX_SECTION + 5000))])
    report = import_table(store, path, mapping)
    assert report.created == ["reg-1"]
    assert len(store.get("reg-1").sections["Lessons"]) == MAX_SECTION
    (warning,) = report.warnings
    assert (warning.row, warning.field) == (2, "Lessons")
    assert f"is {MAX_SECTION + 5000:,} characters; kept the first {MAX_SECTION:,}" in warning.message


@pytest.mark.parametrize(("encoding", "note"), [("utf-8", None), ("utf-8-sig", None), ("cp1252", "read it as cp1252")])
def test_csv_encodings(tmp_path: Path, store: EntryStore, mapping: Mapping, encoding: str, note: str | None) -> None:
    path = write_csv(tmp_path / "register.csv", [register_row("1", "Café rôle – naïve")], encoding=encoding)
    report = import_table(store, path, mapping)
    assert store.get("reg-1").title == "Café rôle – naïve"
    assert report.encoding == encoding
    notes = [p.message for p in report.warnings]
    assert (note in notes[0]) if note else notes == []
    if note:
        assert "(read as cp1252)" in report.summary()


def test_semicolon_csv_from_a_european_excel(tmp_path: Path, store: EntryStore, mapping: Mapping) -> None:
    path = write_csv(tmp_path / "register.csv", [register_row("1", "A, with a comma")], delimiter=";")
    import_table(store, path, mapping)
    assert store.get("reg-1").title == "A, with a comma"


def test_csv_row_with_too_many_cells_is_refused(tmp_path: Path, store: EntryStore, mapping: Mapping) -> None:
    path = write_csv(tmp_path / "register.csv", [register_row("1", "A") + ["stray"], register_row("2", "B")])
    report = import_table(store, path, mapping)
    assert report.created == ["reg-2"] and report.rows == 2
    assert "beyond the last named column" in problems_by_row(report)[2][0]


def csv_text(rows: list[list[str]], raw: dict[tuple[int, str], str]) -> str:
    """HEADER and the rows as CSV; raw[(row index, column)] goes into that cell exactly as typed, unquoted."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(HEADER)
    for index, row in enumerate(rows):
        marked = [
            f"\x01{index}:{column}\x01" if (index, column) in raw else cell
            for column, cell in zip(HEADER, row, strict=True)
        ]
        writer.writerow(marked)
    text = buffer.getvalue()
    for (index, column), cell in raw.items():
        text = text.replace(f"\x01{index}:{column}\x01", cell)
    return text


@pytest.mark.parametrize("later_quote", [False, True], ids=["quote-runs-to-the-end", "quote-meets-a-later-quote"])
def test_an_unclosed_quote_refuses_its_own_row_and_every_later_row_is_read(
    tmp_path: Path, store: EntryStore, mapping: Mapping, later_quote: bool
) -> None:
    rows = [
        register_row("1", "A", Lessons="Start small.\n\nThen grow."),  # row 2, lines 2-4
        register_row("2", "B"),  # row 3, line 5
        register_row("3", "C"),  # row 4, line 6: its summary opens a quote that is never closed
        register_row("4", "D"),  # row 5, line 7
        register_row("5", "E", Lessons='Say "yes", then act.' if later_quote else "Act."),  # row 6, line 8
        register_row("6", "F"),  # row 7, line 9
    ]
    path = tmp_path / "register.csv"
    path.write_text(csv_text(rows, {(2, "Summary"): '"Never closed, it seems.'}), encoding="utf-8")

    report = import_table(store, path, mapping)

    assert report.rows == 6
    assert sorted(report.created) == ["reg-1", "reg-2", "reg-4", "reg-5", "reg-6"]
    assert [str(p) for p in report.errors] == [
        "register.csv, row 4, field 'Summary': opens a quote at line 6 that is never closed; "
        "close it or remove the quote character"
    ]
    assert store.get("reg-1").sections["Lessons"] == "Start small.\n\nThen grow."
    assert store.get("reg-5").sections["Lessons"] == ('Say "yes", then act.' if later_quote else "Act.")
    assert store.get("reg-4").summary == "What D was about."


@pytest.mark.parametrize(
    ("closing_row", "closing_column"),
    [(7, "Project name"), (4, "Lessons")],
    ids=["rows-later-in-the-same-column", "next-row-in-another-column"],
)
def test_a_stray_quote_that_closes_rows_later_joins_no_rows(
    tmp_path: Path, store: EntryStore, mapping: Mapping, closing_row: int, closing_column: str
) -> None:
    """Row 5 opens a quote; a quote at the end of a cell further down would close it as valid CSV."""
    rows = [register_row(str(n), f"Project {n}", Keywords="pilot") for n in range(1, 10)]  # rows 2-10
    raw = {(3, "Project name"): '"Quoted project', (closing_row, closing_column): 'Ends with a quote"'}
    path = tmp_path / "register.csv"
    path.write_text(csv_text(rows, raw), encoding="utf-8")

    report = import_table(store, path, mapping)

    assert report.rows == 9
    assert report.refused_rows == [5]
    (error,) = report.errors
    assert error.field == "Project name"
    assert error.message.startswith(f"opens a quote at line 5 that closes only at line {closing_row + 2}")
    assert sorted(report.created) == sorted(f"reg-{n}" for n in range(1, 10) if n != 4)
    assert store.get("reg-5").title == "Project 5"


def test_a_bad_quote_after_a_cell_over_several_lines_costs_one_row(
    tmp_path: Path, store: EntryStore, mapping: Mapping
) -> None:
    rows = [register_row("1", "A", What_happened="Line one.\nLine two."), register_row("2", "B")]
    path = tmp_path / "register.csv"
    path.write_text(csv_text(rows, {(0, "Notes"): '"Not closed'}), encoding="utf-8")
    report = import_table(store, path, mapping)
    assert report.rows == 2 and report.created == ["reg-2"]
    assert [str(p) for p in report.errors] == [
        "register.csv, row 2, field 'Notes': opens a quote at line 3 that is never closed; "
        "close it or remove the quote character"
    ]


def test_a_quote_in_the_middle_of_a_quoted_cell_refuses_that_row(
    tmp_path: Path, store: EntryStore, mapping: Mapping
) -> None:
    rows = [register_row("1", "A"), register_row("2", "B"), register_row("3", "C")]
    path = tmp_path / "register.csv"
    path.write_text(csv_text(rows, {(1, "Project name"): '"Phase 2" review'}), encoding="utf-8")
    report = import_table(store, path, mapping)
    assert report.rows == 3 and sorted(report.created) == ["reg-1", "reg-3"]
    (error,) = report.errors
    assert error.row == 3 and "line 3" in error.message and "quote" in error.message


def test_cells_over_several_lines_in_a_narrow_table_stay_whole(tmp_path: Path) -> None:
    """Lines inside a quoted cell that happen to hold commas are still one cell."""
    path = tmp_path / "minimal.csv"
    path.write_text(
        "title,summary,kind,outcome,organisation\n"
        '"Open data portal","It launched.\nThen, slowly, it grew, and grew.\nSee notes, below.",project,succeeded,GDS\n'
        'Street lights,"One line, two commas,\nand a second line",project,partial,Leeds\n'
        'Bus lanes,"A table pasted in:\n,,,,\nthat was all",project,failed,York\n',
        encoding="utf-8",
    )
    target = EntryStore(tmp_path / "target")
    report = import_table(target, path, load_mapping(None))
    assert report.errors == [] and sorted(report.created) == ["bus-lanes", "open-data-portal", "street-lights"]
    assert target.get("open-data-portal").summary == "It launched.\nThen, slowly, it grew, and grew.\nSee notes, below."


def test_xlsx_with_dates_numbers_and_a_formula(tmp_path: Path, store: EntryStore, mapping: Mapping) -> None:
    import datetime as dt

    rows: list[list[object]] = [register_row("1", "A"), register_row("2", "B")]
    rows[0][0], rows[0][5] = 1, dt.datetime(2019, 5, 17)
    rows[1][0], rows[1][10] = 2.0, "=SUM(A1:A3)"
    rows.append([None] * len(HEADER))
    path = write_xlsx(tmp_path / "register.xlsx", rows)
    report = import_table(store, path, mapping)
    assert report.created == ["reg-1", "reg-2"]
    assert store.get("reg-1").started == "2019-05-17"
    assert store.get("reg-2").sections["Lessons"] == "=SUM(A1:A3)"
    (warning,) = report.warnings
    assert (warning.row, warning.field) == (3, "Lessons") and "formula" in warning.message


def test_xlsx_sheet_by_name(tmp_path: Path, store: EntryStore) -> None:
    path = write_xlsx(tmp_path / "register.xlsx", [register_row("1", "A")])
    mapping_path = tmp_path / "m.yaml"
    mapping_path.write_text(REGISTER_MAPPING + "sheet: Lessons\n", encoding="utf-8")
    with pytest.raises(KBError, match="no sheet 'Lessons'; its sheets are: Register"):
        import_table(store, path, load_mapping(mapping_path))
    mapping_path.write_text(REGISTER_MAPPING + "sheet: register\n", encoding="utf-8")
    assert import_table(store, path, load_mapping(mapping_path)).created == ["reg-1"]


def test_jsonl_bad_lines_are_refused_and_the_rest_imported(tmp_path: Path, store: EntryStore, mapping: Mapping) -> None:
    good = dict(zip(HEADER, register_row("1", "A"), strict=True))
    lines = [
        json.dumps(good),
        "{not json",
        "",
        json.dumps(["a list"]),
        json.dumps({**good, "Ref": 2, "Keywords": ["x", "y"]}),
    ]
    path = tmp_path / "register.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    report = import_table(store, path, mapping)
    assert report.created == ["reg-1", "reg-2"]
    assert report.rows == 4
    errors = problems_by_row(report)
    assert set(errors) == {2, 4}
    assert "not valid JSON" in errors[2][0] and "one JSON object" in errors[4][0]
    assert store.get("reg-2").tags == ["x", "y"]


def test_entry_files_that_are_broken_are_not_overwritten(tmp_path: Path, store: EntryStore, mapping: Mapping) -> None:
    store.root.mkdir(parents=True)
    (store.root / "reg-1.md").write_text("no front matter", encoding="utf-8")
    path = write_csv(tmp_path / "register.csv", [register_row("1", "A")])
    report = import_table(store, path, mapping)
    assert report.created == [] and "cannot be read" in problems_by_row(report)[2][0]
    assert (store.root / "reg-1.md").read_text(encoding="utf-8") == "no front matter"


# --------------------------------------------------------------------------- NASA's real register

SHARED_DATA = ROOT.parent / "shared" / "data"
NASA_XLSX = SHARED_DATA / "nasa_llis" / "llis.xlsx"
NASA_MAPPING = ROOT / "mappings" / "nasa-llis.yaml"


def require_shared_data() -> None:
    if NASA_XLSX.is_file():
        return
    message = f"NASA's register is not at {NASA_XLSX}: ../shared/data is absent"
    if os.environ.get("CI", "").lower() not in ("", "0", "false"):
        pytest.fail(message + ", and CI must have it")
    pytest.skip(message)


@pytest.mark.data
def test_nasa_register_imports_whole(tmp_path: Path) -> None:
    require_shared_data()
    store = EntryStore(tmp_path / "entries")
    mapping = load_mapping(NASA_MAPPING)

    report = import_table(store, NASA_XLSX, mapping)

    assert report.rows == 2101
    assert len(report.created) + len(report.refused_rows) == 2101
    assert [str(p) for p in report.errors] == ["llis.xlsx, row 594, field 'Title': is empty; every row needs a title"]
    loaded = store.load()
    assert loaded.problems == []
    assert sorted(loaded.entries) == sorted(report.created)
    entries = loaded.entries
    assert all(len(e.title) <= MAX_TITLE and len(e.summary) <= MAX_SUMMARY for e in entries.values())
    assert max(len(text) for e in entries.values() for text in e.sections.values()) > 30_000  # nothing cut

    lesson = entries["nasa-llis-30004"]
    assert lesson.title == "Relationship of Government and Contractor Risk Management Processes"
    assert lesson.summary.startswith("The purpose of this lesson is to highlight the Radiation Budget Instrument")
    assert (lesson.kind, lesson.outcome, lesson.organisation, lesson.team) == (
        "project",
        "not-recorded",
        "NASA",
        "LaRC",
    )
    assert (lesson.status, lesson.visibility) == ("published", "public")
    assert (lesson.started, lesson.created, lesson.phase) == ("2018-04-05", "2021-07-23", "Implementation")
    assert lesson.tags[:4] == [
        "Procurement, Small Business & Industrial Relations",
        "Program and Project Management",
        "Risk Management / Assessment",
        "Radiation Budget Instrument",
    ]
    assert lesson.links == ["https://llis.nasa.gov/lesson/30004"]
    assert list(lesson.sections) == ["What happened", "Lessons", "Recommendations", "Evidence and links"]
    assert lesson.sections["Lessons"].startswith("Approach 1 made it difficult")
    assert "**Related NASA policies and standards:** Langley Management System" in lesson.sections["Evidence and links"]

    pdf = entries["nasa-llis-26803"]
    assert pdf.status == "draft" and "needs-text" in pdf.tags
    assert pdf.sections["Lessons"] == "See attached PDF."
    assert pdf.summary.startswith("The purpose of this paper is to highlight the benefits, risks")
    (warning,) = [p for p in report.warnings if p.row == 7]
    assert "See attached PDF." in warning.message and "needs-text" in warning.message

    before = mtimes(store)
    again = import_table(store, NASA_XLSX, mapping)
    assert (again.created, again.updated, len(again.unchanged)) == ([], [], 2100)
    assert mtimes(store) == before


def test_a_stray_quote_closed_on_the_next_line_is_never_silent(
    tmp_path: Path, store: EntryStore, mapping: Mapping
) -> None:
    """Read as CSV, it is one cell with a line break; it may also be a swallowed row. Only the person who
    wrote it can tell, so the report names both lines."""
    rows = [register_row(str(n), f"Project {n}", Keywords="pilot") for n in range(1, 5)]  # rows 2-5
    raw = {(1, "Project name"): '"Quoted project', (2, "Project name"): 'Ends with a quote"'}
    path = tmp_path / "register.csv"
    path.write_text(csv_text(rows, raw), encoding="utf-8")
    report = import_table(store, path, mapping)
    warned = [p for p in report.warnings if p.row == 3 and "reads as a row of its own" in p.message]
    assert warned and "line 3" in warned[0].message and "line 4" in warned[0].message, report.problems


def test_a_jsonl_key_given_twice_refuses_its_row(tmp_path: Path, store: EntryStore) -> None:
    """The last value would win silently: `visibility` twice could publish an organisation-only row."""
    base = {"id": "a", "title": "A", "summary": "S.", "kind": "project", "outcome": "failed", "organisation": "O"}
    line = json.dumps(base)[:-1] + ', "visibility": "organisation", "visibility": "public"}'
    good = json.dumps({**base, "id": "b", "title": "B"})
    path = tmp_path / "register.jsonl"
    path.write_text(f"{line}\n{good}\n", encoding="utf-8")
    report = import_table(store, path, load_mapping(None))
    assert report.created == ["b"]
    (error,) = report.errors
    assert (error.row, error.field) == (1, "visibility") and "twice" in error.message
