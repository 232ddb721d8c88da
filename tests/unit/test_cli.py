"""The command line is a contract: every command, its JSON shape, and one-line errors with exit 1."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from kb.cli import cli


@pytest.fixture
def run(entries_dir):
    runner = CliRunner()

    def invoke(*args: str, ok: bool = True):
        result = runner.invoke(cli, list(args), catch_exceptions=False)
        if ok:
            assert result.exit_code == 0, result.output
        return result

    invoke("sync")
    return invoke


def test_sync_reports_and_second_sync_is_a_no_op(run):
    report = json.loads(run("sync", "--json").output)
    assert report["added"] == [] and report["unchanged"] >= 40 and report["passages"] == 0
    assert json.loads(run("sync", "--rebuild", "--json").output)["rebuilt"] is True


def test_search_json_contract(run):
    hits = json.loads(run("search", "mainframe pension", "--limit", "3", "--json").output)
    assert len(hits) == 3 and hits[0]["id"] == "mainframe-blocked-pension-data-share"
    for hit in hits:
        assert {"id", "title", "score", "passage", "organisation", "kind", "outcome"} <= set(hit)


def test_search_filters_and_modes(run):
    hits = json.loads(
        run("search", "data", "--outcome", "failed", "--kind", "experiment", "--limit", "50", "--json").output
    )
    assert hits and {h["outcome"] for h in hits} == {"failed"} and {h["kind"] for h in hits} == {"experiment"}
    lighthouses = json.loads(run("search", "data", "--lighthouse", "--json", "--mode", "bm25").output)
    assert lighthouses and all(h["lighthouse_stage"] for h in lighthouses)
    themed = json.loads(run("search", "pipelines", "--theme", "reproducible-analysis", "--json").output)
    assert themed and all("reproducible-analysis" in h["themes"] for h in themed)
    org = json.loads(run("search", "data", "--organisation", "Cabinet Digital Office", "--json").output)
    assert org and {h["organisation"] for h in org} == {"Cabinet Digital Office"}
    assert "No entries found" in run("search", "data", "--organisation", "Nobody").output


def test_similar_and_show(run):
    similar = json.loads(run("similar", "mainframe-blocked-pension-data-share", "--limit", "3", "--json").output)
    assert len(similar) == 3 and all(s["id"] != "mainframe-blocked-pension-data-share" for s in similar)
    assert {"id", "title", "score", "passage", "organisation", "kind", "outcome"} <= set(similar[0])
    shown = json.loads(run("show", "mainframe-blocked-pension-data-share", "--json").output)
    assert shown["id"] == "mainframe-blocked-pension-data-share" and "Lessons" in shown["sections"]
    assert run("show", "mainframe-blocked-pension-data-share").output.startswith("---\nid: mainframe")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("show", "no-such-entry"), "no entry with id 'no-such-entry'"),
        (("show", "../../etc/passwd"), "not a valid entry id"),
        (("similar", "no-such-entry"), "no entry with id"),
        (("search", "x", "--mode", "magic"), "Invalid value for '--mode'"),
        (("add", "/no/such/file.md"), "does not exist"),
    ],
)
def test_errors_are_one_line_and_exit_non_zero(run, args, message):
    result = run(*args, ok=False)
    assert result.exit_code != 0 and message in result.output
    assert "Traceback" not in result.output


def test_add_validates_copies_and_indexes(run, tmp_path, entries_dir):
    draft = tmp_path / "draft.md"
    draft.write_text(
        "---\nid: ../../evil\ntitle: Parking permits go digital\nsummary: Quokka permits.\n"
        "kind: project\noutcome: succeeded\norganisation: Northfield City Council\n"
        "status: published\nvisibility: public\n---\n## Lessons\n\nStart small.\n"
    )
    bad = run("add", str(draft), ok=False)
    assert bad.exit_code == 1 and "field 'id'" in bad.output and "not a safe id" in bad.output
    draft.write_text(draft.read_text().replace("id: ../../evil\n", ""))
    assert "added parking-permits-go-digital" in run("add", str(draft)).output
    assert (entries_dir / "parking-permits-go-digital.md").is_file()
    hits = json.loads(run("search", "quokka permits", "--json").output)
    assert hits[0]["id"] == "parking-permits-go-digital"
    assert "added parking-permits-go-digital-2" in run("add", str(draft)).output  # never overwrites


def test_check_names_each_problem(run, entries_dir):
    assert "0 problem(s)" in run("check").output
    (entries_dir / "bad.md").write_text("---\nid: bad\ntitle: Bad\nkind: plan\n---\n")
    result = run("check", ok=False)
    assert result.exit_code == 1
    assert "bad.md, field 'kind': 'plan' is not allowed" in result.output
    assert "bad.md, field 'summary': is required but missing" in result.output


def test_stats_and_themes(run):
    stats = json.loads(run("stats", "--json").output)
    assert stats["entries"] >= 40 and stats["by"]["outcome"]["failed"] >= 1
    assert "data-sharing-agreements" in run("themes").output


def test_export_then_import_round_trip(run, tmp_path, entries_dir):
    out = tmp_path / "export.csv"
    run("export", "--format", "csv", "--out", str(out))
    target = tmp_path / "copy"
    target.mkdir()
    (target / "vocabulary.yaml").write_text((entries_dir / "vocabulary.yaml").read_text())
    result = run("--entries", str(target), "--index", str(tmp_path / "copy-index"), "import", str(out))
    assert "Traceback" not in result.output
    from kb.store import EntryStore

    original, copied = EntryStore(entries_dir).load().entries, EntryStore(target).load().entries
    assert copied == original
    jsonl = run("export", "--format", "jsonl").output.strip().splitlines()
    assert len(jsonl) == len(original) and json.loads(jsonl[0])["id"]


def test_every_command_is_documented_in_the_readme_with_help():
    from bench.cli import bench
    from tests.conftest import ROOT

    readme = (ROOT / "README.md").read_text()
    for program, group in (("kb", cli), ("bench", bench)):
        for name, command in group.commands.items():
            assert f"python -m {program} {name}" in readme, f"README does not show `python -m {program} {name}`"
            assert command.help and "Example" in command.help, f"{program} {name} has no help with an example"


@pytest.mark.parametrize("entry_id", ["../../etc/passwd", "..", ".hidden", "a/b", "/etc/passwd", "x\x00y", "CON"])
def test_ids_cannot_leave_the_entries_folder_on_any_command(run, entry_id):
    for command in (("show", entry_id), ("similar", entry_id), ("show", entry_id, "--as", "anonymous")):
        result = run(*command, ok=False)
        assert result.exit_code == 1 and "Traceback" not in result.output


def test_add_whose_indexing_fails_says_the_file_is_saved_and_sync_indexes_it(run, tmp_path, entries_dir, monkeypatch):
    from kb import KnowledgeBase

    draft = tmp_path / "draft.md"
    draft.write_text(
        "---\ntitle: Parking permits go digital\nsummary: Quokka permits.\nkind: project\noutcome: succeeded\n"
        "organisation: Northfield City Council\nstatus: published\nvisibility: public\n---\n## Lessons\n\nStart small.\n"
    )
    with monkeypatch.context() as patched:
        patched.setattr(KnowledgeBase, "index_entries", lambda self, ids: 1 / 0)
        result = run("add", str(draft), ok=False)
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "saved as parking-permits-go-digital.md, but not indexed yet (division by zero)" in result.output
    assert (entries_dir / "parking-permits-go-digital.md").is_file()
    run("sync")
    assert json.loads(run("search", "quokka permits", "--json").output)[0]["id"] == "parking-permits-go-digital"


def test_add_refuses_oversize_and_binary_files(run, tmp_path):
    from kb.entries import MAX_FILE_BYTES

    big = tmp_path / "big.md"
    big.write_text("---\ntitle: x\n---\n" + "x" * (MAX_FILE_BYTES + 1))
    result = run("add", str(big), ok=False)
    assert result.exit_code == 1 and "an entry file may be" in result.output
    binary = tmp_path / "image.md"
    binary.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00")
    result = run("add", str(binary), ok=False)
    assert result.exit_code == 1 and "Traceback" not in result.output


def test_check_and_sync_name_each_symbolic_link_and_never_serve_it(run, tmp_path, entries_dir):
    outside = tmp_path / "outside.md"
    outside.write_text(
        (entries_dir / "flood-response-data-cell.md").read_text().replace("id: flood-response-data-cell", "id: linked")
    )
    (entries_dir / "linked.md").symlink_to(outside)
    checked = run("check", ok=False)
    assert checked.exit_code == 1 and "linked.md" in checked.output and "symbolic link" in checked.output
    synced = run("sync")
    assert "linked.md" in synced.output and "symbolic link" in synced.output
    assert "linked" not in {h["id"] for h in json.loads(run("search", "flood response data cell", "--json").output)}
    assert run("show", "linked", ok=False).exit_code == 1


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_a_reader_s_export_imports_back_without_blanking_anything(run, tmp_path, entries_dir, fmt):
    """An export made --as a reader withholds anonymous fields and hidden links, and says so: importing
    it back must never overwrite the stored values with what was withheld."""
    from kb.store import EntryStore

    before = {p.name: p.read_bytes() for p in entries_dir.glob("*.md")}
    anonymous = [e for e in EntryStore(entries_dir).load().entries.values() if e.anonymous and e.team]
    assert anonymous, "the samples hold an anonymous entry with a team"
    out = tmp_path / f"view.{fmt}"
    run("export", "--format", fmt, "--as", "anonymous", "--out", str(out))
    text = out.read_text(encoding="utf-8-sig")
    assert anonymous[0].team not in text and "withheld" in text
    imported = run("import", str(out), "--no-index")  # every row unchanged, none refused
    assert "Traceback" not in imported.output
    after = {p.name: p.read_bytes() for p in entries_dir.glob("*.md")}
    assert after == before, "nothing stored changed"


WEB = ("fastapi", "uvicorn", "starlette")  # the HTTP API's stack: only `serve` imports it


@pytest.mark.parametrize(
    ("command", "not_loaded"),
    [
        (["show", "benefits-and-housing-data-sharing-pilot"], ("torch", "sentence_transformers", "chromadb", *WEB)),
        (["check"], ("torch", "sentence_transformers", "chromadb", *WEB)),
        (["themes"], ("torch", "sentence_transformers", "chromadb", *WEB)),
        (["stats"], ("torch", "sentence_transformers", "chromadb", *WEB)),
        (["export", "--format", "jsonl"], ("torch", "sentence_transformers", *WEB)),
        (["token", "list"], ("torch", "sentence_transformers", "chromadb", *WEB)),
    ],
    ids=lambda value: value[0] if isinstance(value, list) else "",
)
def test_a_command_that_embeds_nothing_starts_without_the_model(settings, command, not_loaded):
    """A whole process, as a user runs it: the model and torch cost seconds to import; the vector store
    about half a second, and `show`, `check` and `themes` never open it."""
    import subprocess
    import sys

    from tests.conftest import ROOT

    probe = (
        "import runpy, sys\n"
        f"sys.argv = ['kb', '--entries', {str(settings.entries_dir)!r}, '--index', {str(settings.index_dir)!r}, "
        f"'--model', 'all-MiniLM-L6-v2', *{command!r}]\n"
        "try:\n    runpy.run_module('kb', run_name='__main__')\nexcept SystemExit as exit:\n"
        "    assert not exit.code, exit.code\n"
        f"print(sorted(name for name in {not_loaded!r} if name in sys.modules), file=sys.stderr)\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-500:]
    assert done.stderr.strip().splitlines()[-1] == "[]", done.stderr[-500:]
