"""Fuzzing: no input makes the entry parser or the importer raise anything but the project's own errors."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kb.entry_files import parse_entry
from kb.errors import EntryError, KBError
from kb.importer import import_table, load_mapping
from kb.store import EntryStore

FIELD_NAMES = [
    "id",
    "title",
    "summary",
    "kind",
    "outcome",
    "organisation",
    "status",
    "visibility",
    "themes",
    "started",
    "ended",
    "lighthouse",
    "partners",
    "anonymous",
    "related",
]
YAML_VALUES = st.one_of(
    st.text(max_size=30),
    st.integers(),
    st.floats(allow_nan=True),
    st.booleans(),
    st.none(),
    st.sampled_from(
        [
            "2021-13-01",
            "2021-02-30",
            "[a, b",
            "{x: 1}",
            "- a\n- b",
            "!!python/object:os.system",
            "&a [*a]",
            "0x1F",
            "~",
            "'''",
            "2021-01-01T25:00:00",
            "1e999",
            ".inf",
        ]
    ),
)

front_matter = st.lists(st.tuples(st.sampled_from(FIELD_NAMES), YAML_VALUES), max_size=10).map(
    lambda pairs: "---\n" + "\n".join(f"{k}: {v}" for k, v in pairs) + "\n---\n## Lessons\n\nText.\n"
)


@settings(max_examples=300, deadline=None)
@given(text=st.one_of(st.text(max_size=400), front_matter))
def test_the_entry_parser_only_raises_entry_errors(text):
    try:
        parse_entry(text, "fuzz.md")
    except EntryError as exc:
        assert exc.problems and all(p.source == "fuzz.md" for p in exc.problems)


CELLS = st.one_of(st.text(max_size=40), st.sampled_from(["=1+1", "@SUM(A1)", "", "\x00", "é", "a,b", '"', "\n"]))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    rows=st.lists(st.lists(CELLS, min_size=1, max_size=6), min_size=1, max_size=8),
    raw=st.binary(max_size=200),
    kind=st.sampled_from(["csv", "jsonl", "raw-csv", "raw-jsonl"]),
)
def test_the_importer_reports_problems_and_never_crashes(rows, raw, kind):
    import csv
    import io
    import json

    folder = Path(tempfile.mkdtemp())
    try:
        if kind == "csv":
            buffer = io.StringIO()
            csv.writer(buffer).writerows([["title", "summary", "kind", "outcome", "organisation"], *rows])
            source = folder / "register.csv"
            source.write_text(buffer.getvalue(), encoding="utf-8")
        elif kind == "jsonl":
            source = folder / "register.jsonl"
            source.write_text(
                "\n".join(
                    json.dumps(dict(zip(["title", "summary", "kind", "outcome"], r, strict=False))) for r in rows
                ),
                encoding="utf-8",
            )
        else:
            source = folder / ("register.csv" if kind == "raw-csv" else "register.jsonl")
            source.write_bytes(raw)
        try:
            report = import_table(EntryStore(folder / "entries"), source, load_mapping(None))
        except KBError:
            return  # a whole-file problem, said in one line
        entries = folder / "entries"
        if not report.created:  # nothing written: the folder was never needed
            assert not entries.exists() or EntryStore(entries).load().entries == {}
            return
        written = EntryStore(entries).load()
        assert written.problems == [] and len(written.entries) == len(report.created)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
