"""A damaged index is always detected and repaired.

An index big enough that Chroma has written its HNSW graph is built once. Then each of its files in
turn, on a fresh copy, is truncated to half, garbled at 8 bytes or deleted, and:
1. a reader (one process running search, similar and stats) either answers exactly as the pristine
   index did or refuses in one line that names the index and `python -m kb sync`; it never crashes;
2. `python -m kb sync` succeeds;
3. the answers are the pristine ones again.
Real processes on real files, with the deterministic hashing embedder; each is forked from one that has
already imported the library and the libraries Chroma uses, but not Chroma (tests.preforked), so a case
pays for its work rather than for most of its imports. Steps 1 and 2 of all the cases start together and run two cases at a time (one per
core), in test order; each test waits for its own case, then checks step 3 in this process.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import sqlite3
import subprocess
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from kb.chroma_client import clear_client_cache
from tests.conftest import ROOT, SAMPLE_ENTRIES
from tests.faults import DAMAGES, KEYWORD_INDEX_FILES, damage_file
from tests.integration import damage_driver
from tests.preforked import Preforked

pytestmark = pytest.mark.slow  # minutes, not seconds: in `make test` and CI, not in `make test-fast`

# The sample entries four times under new ids: about 1,550 passages, past the 1,000 vectors Chroma keeps
# in its log before it writes a collection's HNSW graph, while the entries collection (under 200) stays
# in the log: both of Chroma's storage paths.
COPIES = 4
COLLECTION = "lighthouse"
SIMILAR_TO = "benefits-and-housing-data-sharing-pilot-0"
COMMANDS = [
    ["search", "data sharing agreement", "--json", "--limit", "5"],
    ["similar", SIMILAR_TO, "--json", "--limit", "5"],
    ["stats", "--json"],
]
HNSW_FILES = ["data_level0.bin", "header.bin", "length.bin", "link_lists.bin", "index_metadata.pickle"]
# Every file of the built index by its kind; the first test checks this against the built folder.
# A collection still in Chroma's log has an empty graph and no id map (index_metadata.pickle).
FILE_KINDS = [
    "chroma/chroma.sqlite3",
    *(f"chroma/passages-hnsw/{name}" for name in HNSW_FILES),
    *(f"chroma/entries-hnsw/{name}" for name in HNSW_FILES if name != "index_metadata.pickle"),
    *(f"lexical/{name}" for name in KEYWORD_INDEX_FILES),
    "vocabulary-read",
    "checked-files",
]
NOT_INDEX_FILES = {".write.lock"}  # the writers' lock: empty, holds nothing of the index
PROCESS_SECONDS = 120  # a hung process fails its case rather than the whole run
CASES_AT_ONCE = 2  # one per core of the machines this runs on
# Read once, at import: while the cases run in threads, the tests' fixtures set and unset KB_* variables.
INHERITED_ENVIRONMENT = {name: value for name, value in os.environ.items() if not name.startswith("KB_")}


@dataclass(frozen=True)
class Pristine:
    entries: Path
    index: Path
    files: dict[str, Path]  # kind -> path inside the index folder
    answers: list  # each command's JSON answer, scores rounded


@dataclass(frozen=True)
class CaseRun:
    """A damaged copy of the index after a reader and a sync met it, and what they did wrong."""

    index: Path
    env: dict[str, str]
    problems: list[str]


def write_copies(folder: Path) -> int:
    """The sample entries, COPIES times each under ids <id>-0, <id>-1, ...; returns how many."""
    folder.mkdir()
    shutil.copy(SAMPLE_ENTRIES / "vocabulary.yaml", folder)
    written = 0
    for path in sorted(SAMPLE_ENTRIES.glob("*.md")):
        if path.name.lower() == "readme.md":
            continue
        text = path.read_text(encoding="utf-8")
        for copy in range(COPIES):
            new_id = f"{path.stem}-{copy}"
            (folder / f"{new_id}.md").write_text(re.sub(r"(?m)^id: .*$", f"id: {new_id}", text, count=1))
            written += 1
    return written


# Read by the servers as they import PRELOAD, so the same for every command; `environment` adds each
# case's folders.
SHARED_ENVIRONMENT = INHERITED_ENVIRONMENT | {
    "KB_MODEL": "hashing-bow",
    "ANONYMIZED_TELEMETRY": "False",
    "HF_HUB_OFFLINE": "1",
    "PYTHONPATH": str(ROOT),
}
# The library and the libraries Chroma loads, but not Chroma: a command that does not need it reads the
# index's mark without it (kb.chroma_metadata), as `python -m kb` does.
PRELOAD = [
    "kb.cli",
    *("pydantic", "pydantic_settings", "httpx", "grpc", "google.protobuf.message", "rich.console", "tenacity"),
    *("opentelemetry.sdk.trace", "opentelemetry.sdk.metrics", "opentelemetry.exporter.otlp.proto"),
    *("jsonschema", "overrides", "psutil", "pybase64"),
]


def environment(entries: Path, index: Path) -> dict[str, str]:
    return SHARED_ENVIRONMENT | {"KB_ENTRIES_DIR": str(entries), "KB_INDEX_DIR": str(index)}


def python_module(processes: Preforked, args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    return processes.run(args, env, cwd=ROOT, timeout=PROCESS_SECONDS)


def drive(processes: Preforked, env: dict[str, str]) -> subprocess.CompletedProcess:
    return python_module(processes, ["tests.integration.damage_driver", json.dumps(COMMANDS)], env)


def rounded(value):
    """JSON with every float rounded to 4 decimals: the same answer, computed again, compares equal."""
    if isinstance(value, float):
        return round(value, 4)
    if isinstance(value, list):
        return [rounded(v) for v in value]
    if isinstance(value, dict):
        return {k: rounded(v) for k, v in value.items()}
    return value


def answer(outcome: damage_driver.Outcome):
    try:
        return rounded(json.loads(outcome.stdout))
    except ValueError:
        return outcome.stdout  # not JSON: compares unequal to any pristine answer


def index_files(index: Path) -> dict[str, Path]:
    """Each file of a built index folder by its kind, Chroma's segment folders named by their collection."""
    with sqlite3.connect(f"file:{index / 'chroma' / 'chroma.sqlite3'}?mode=ro&immutable=1", uri=True) as db:
        segments = dict(
            db.execute(
                "SELECT s.id, c.name FROM segments s JOIN collections c ON s.collection = c.id WHERE s.scope = 'VECTOR'"
            )
        )
    files = {}
    for path in sorted(p for p in index.rglob("*") if p.is_file() and p.name not in NOT_INDEX_FILES):
        relative = path.relative_to(index)
        parts = relative.parts
        if parts[0] == "chroma" and len(parts) == 3:
            collection = segments.get(parts[1], parts[1]).removeprefix(f"{COLLECTION}-")
            kind = f"chroma/{collection}-hnsw/{parts[2]}"
        elif parts[:2] == ("lexical", COLLECTION):
            kind = "/".join(("lexical", *parts[2:]))
        else:
            kind = relative.as_posix()
        files[kind] = relative
    return files


def tail(text: str, size: int = 600) -> str:
    return text.strip()[-size:]


def crashed(process: subprocess.CompletedProcess) -> str | None:
    """How a process crashed, if it did: killed by a signal, or a Python traceback or a Rust panic shown."""
    if process.returncode < 0:
        return f"killed by {signal.Signals(-process.returncode).name}"
    output = process.stdout + process.stderr
    if "Traceback" in output:
        return "traceback"
    if "panicked" in output:
        return "panic"
    return None


def answer_problems(step: str, outcomes: list[damage_driver.Outcome], pristine: Pristine, *, may_refuse: bool):
    """What is wrong with these answers: each must be the pristine one, or (`may_refuse`) a one-line
    refusal naming the index and the command that repairs it."""
    if [o.command for o in outcomes] != COMMANDS:
        return [f"{step}: ran {len(outcomes)} of {len(COMMANDS)} commands"]
    problems = []
    for outcome, expected in zip(outcomes, pristine.answers, strict=True):
        name = outcome.command[0]
        if outcome.exit_code == 0:
            if answer(outcome) != expected:
                problems.append(f"{step}: {name} answered differently: {outcome.stdout[:300]!r}")
            continue
        refusals = [line for line in outcome.stderr.splitlines() if line.startswith("Error: ")]
        names_the_repair = len(refusals) == 1 and "index" in refusals[0] and "python -m kb sync" in refusals[0]
        if not (may_refuse and outcome.exit_code == 1 and names_the_repair):
            problems.append(f"{step}: {name} exited {outcome.exit_code}: {tail(outcome.stderr, 300)!r}")
    return problems


# The one file the built index leaves empty (the entries collection has no graph yet): truncating it
# would change nothing, so that case is not made; garbling it writes junk into it.
EMPTY_FILES = {"chroma/entries-hnsw/link_lists.bin"}
CASES = [(kind, how) for kind in FILE_KINDS for how in DAMAGES if not (kind in EMPTY_FILES and how == "truncate")]


def reader_and_sync(processes: Preforked, pristine: Pristine, kind: str, how: str, folder: Path) -> CaseRun:
    """Steps 1 and 2 of a case, on a damaged copy of the index in `folder`."""
    index = folder / "index"
    shutil.copytree(pristine.index, index)
    damage_file(index / pristine.files[kind], how, seed=kind)
    env = environment(pristine.entries, index)
    reader = drive(processes, env)
    crash = crashed(reader)
    problems = [f"reader: {crash} {tail(reader.stderr)}".rstrip()] if crash else []
    problems += answer_problems("reader", damage_driver.parse(reader.stdout), pristine, may_refuse=True)
    sync = python_module(processes, ["kb", "sync"], env)
    crash = crashed(sync)
    if crash or sync.returncode != 0:
        problems.append(f"sync: {crash or f'exit {sync.returncode}'} {tail(sync.stderr)}")
    return CaseRun(index, env, problems)


@pytest.fixture(scope="module")
def processes() -> Iterator[Preforked]:
    with Preforked(PRELOAD, SHARED_ENVIRONMENT, cwd=ROOT, servers=CASES_AT_ONCE) as started:
        assert "chromadb" not in started.loaded, "every command would start with Chroma loaded"
        yield started


@pytest.fixture(scope="module")
def pristine(processes, tmp_path_factory) -> Pristine:
    root = tmp_path_factory.mktemp("damage")
    entries, index = root / "entries", root / "index"
    count = write_copies(entries)
    env = environment(entries, index)
    built = python_module(processes, ["kb", "sync"], env)
    assert built.returncode == 0, built.stderr
    reader = drive(processes, env)
    outcomes = damage_driver.parse(reader.stdout)
    assert [o.exit_code for o in outcomes] == [0, 0, 0], reader.stdout + reader.stderr
    answers = [answer(o) for o in outcomes]
    assert len(answers[0]) == len(answers[1]) == 5 and answers[2]["entries"] == count, "pristine answers"
    return Pristine(entries, index, index_files(index), answers)


@pytest.fixture(scope="module")
def case_runs(processes, pristine, request, tmp_path_factory):
    """Steps 1 and 2 of every selected case, started now and run CASES_AT_ONCE at a time in test order."""
    selected = [
        (item.callspec.params["kind"], item.callspec.params["how"])
        for item in request.session.items
        if item.module is request.module and item.originalname == "test_a_damaged_index_file_is_detected_and_repaired"
    ]
    runs: dict[tuple[str, str], Future[CaseRun]] = {}
    pool = ThreadPoolExecutor(max_workers=CASES_AT_ONCE, thread_name_prefix="damage-case")
    for kind, how in selected:
        if kind in pristine.files:
            folder = tmp_path_factory.mktemp("case")
            runs[kind, how] = pool.submit(reader_and_sync, processes, pristine, kind, how, folder)
    yield runs
    pool.shutdown(cancel_futures=True)  # a run stopped early (-x) does not wait for the cases left


def test_the_cases_cover_every_file_of_the_built_index(pristine):
    assert sorted(pristine.files) == sorted(FILE_KINDS)
    empty = {kind for kind, path in pristine.files.items() if (pristine.index / path).stat().st_size == 0}
    assert empty == EMPTY_FILES, "only the files the cases leave untruncated may be empty"
    stats = pristine.answers[2]
    assert stats["passages"] > 1000 > stats["entries"], "one collection past Chroma's log, one still in it"


@pytest.mark.parametrize(("kind", "how"), CASES)
def test_a_damaged_index_file_is_detected_and_repaired(processes, pristine, case_runs, kind, how, monkeypatch):
    assert kind in pristine.files, f"the built index has no {kind}"
    run = case_runs[kind, how].result()
    problems = list(run.problems)
    if problems:  # a process, not this one, meets an index that may still be broken
        after = damage_driver.parse(drive(processes, run.env).stdout)
    else:
        monkeypatch.setenv("KB_ENTRIES_DIR", str(pristine.entries))
        monkeypatch.setenv("KB_INDEX_DIR", str(run.index))
        clear_client_cache()
        after = [damage_driver.run(command) for command in COMMANDS]
    problems += answer_problems("after sync", after, pristine, may_refuse=False)
    assert not problems, "\n".join(problems)
    clear_client_cache()
    shutil.rmtree(run.index)  # 75 copies of the index add up; a failing case's copy stays for a look
