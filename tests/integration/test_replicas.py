"""Past one machine: two API replicas (`python -m kb serve`) sharing one entries folder, one Chroma
server (`chroma run`) and one database, each with its own local index folder, all real subprocesses on
127.0.0.1.

A save through one replica is found through the other within CATCH_UP_SECONDS, a deleted entry leaves
both, two concurrent edits of one entry through different replicas give one winner and one conflict, a
token's requests spread over both replicas have one allowance, and a replica killed with SIGKILL in the middle of a save loses nothing while the other carries on.
"""

from __future__ import annotations

import shutil
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from kb import KnowledgeBase, Settings
from kb.api import EditIn
from kb.api.app import BURST, RATE_PER_MINUTE
from kb.chroma_client import clear_client_cache
from kb.embedder import HashingEmbedder
from kb.entries import SECTIONS
from kb.entry_files import parse_entry
from kb.store import EntryStore
from kb.tokens import TokenStore
from tests.conftest import SAMPLE_ENTRIES
from tests.servers import ApiReplica, chroma_running, kb_environment

pytestmark = pytest.mark.server

CATCH_UP_SECONDS = 5.0  # a change through one replica is seen through the other within this
POLL_SECONDS = 0.05
EDIT_FIELDS = set(EditIn.model_fields)
SAVED = "benefits-and-housing-data-sharing-pilot"  # public, published entries, none of them a lighthouse
DELETED = "apprenticeship-outcomes-tracking"
CONTESTED = "cloud-migration-of-statistics-warehouse"
CRASHED = "common-person-identifier-across-departments"


@dataclass
class Cluster:
    root: Path
    entries: Path
    chroma_url: str
    tokens: TokenStore
    a: ApiReplica
    b: ApiReplica

    def sync(self):
        """What the sync job does (`python -m kb sync` on a timer, with its own index folder)."""
        settings = Settings(
            entries_dir=self.entries,
            index_dir=self.root / "sync-index",
            chroma_url=self.chroma_url,
            model="hashing-bow",
        )
        try:
            return KnowledgeBase(settings, embedder=HashingEmbedder()).sync()
        finally:
            clear_client_cache()

    def bearer(self, name: str, organisation: str, roles: str = "contributor,reviewer") -> dict[str, str]:
        token, _ = self.tokens.create(name, organisation=organisation, roles=roles)
        return {"Authorization": f"Bearer {token}"}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory) -> Iterator[Cluster]:
    root = tmp_path_factory.mktemp("replicas")
    entries = root / "entries"
    shutil.copytree(SAMPLE_ENTRIES, entries)
    with chroma_running(root / "chroma") as chroma_url:
        shared = {
            "KB_ENTRIES_DIR": str(entries),
            "KB_CHROMA_URL": chroma_url,
            "KB_TOKENS_FILE": str(root / "tokens.json"),
            "KB_DATABASE_URL": f"sqlite:///{root / 'lighthouse.sqlite3'}",
        }
        replicas = {
            name: ApiReplica(
                name, kb_environment(**shared, KB_INDEX_DIR=str(root / f"index-{name}")), root / f"{name}.log"
            )
            for name in ("a", "b")
        }
        cluster = Cluster(root, entries, chroma_url, TokenStore(root / "tokens.json"), replicas["a"], replicas["b"])
        assert len(cluster.sync().added) >= 40
        try:
            for replica in replicas.values():
                replica.start()
            yield cluster
        finally:
            for replica in replicas.values():
                replica.stop()


def organisation_of(cluster: Cluster, entry_id: str) -> str:
    return EntryStore(cluster.entries).get(entry_id).organisation


def edit(read: dict, **changes) -> dict:
    """The body of a PUT made from what GET returned: the editable fields, the version read, the changes."""
    fields = {k: v for k, v in read.items() if k in EDIT_FIELDS}
    return fields | {"version": read["version"]} | changes


def found(url: str, query: str, headers: dict[str, str], **params) -> list[str]:
    """The ids a keyword search finds through one replica (the replica's own local keyword index)."""
    answer = httpx.get(f"{url}/search", params={"q": query, "mode": "keyword", **params}, headers=headers, timeout=30)
    assert answer.status_code == 200, answer.text
    return [hit["id"] for hit in answer.json()["hits"]]


def within(seconds: float, condition: Callable[[], bool], what: str) -> float:
    """Poll until `condition` holds; the seconds it took. Fails after `seconds`."""
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > seconds:
            pytest.fail(f"{what}: not seen within {seconds} s")
        time.sleep(POLL_SECONDS)
    took = time.monotonic() - started
    print(f"{what}: {took:.3f} s")
    return took


def marker() -> str:
    return f"zq{uuid.uuid4().hex[:12]}"


# --------------------------------------------------------------------------- a save reaches the other replica


def test_a_save_through_one_replica_is_found_through_the_other(cluster):
    a, b = cluster.a.url, cluster.b.url
    author = cluster.bearer("Sam Saver", organisation_of(cluster, SAVED))
    for url in (a, b):  # both replicas have searched, so each has a local index at the current mark
        assert SAVED in found(url, "housing data sharing pilot", author)

    word = marker()
    read = httpx.get(f"{a}/entries/{SAVED}", headers=author).json()
    saved = httpx.put(f"{a}/entries/{SAVED}", json=edit(read, summary=f"Edited through A: {word}."), headers=author)
    assert saved.status_code == 200, saved.text
    assert saved.json()["status"] == "published" and not saved.json()["pending_review"]

    shown = within(
        CATCH_UP_SECONDS,
        lambda: word in httpx.get(f"{b}/entries/{SAVED}", headers=author).json()["summary"],
        "an edit through A, shown through B",
    )
    searched = within(
        CATCH_UP_SECONDS, lambda: found(b, word, author)[:1] == [SAVED], "an edit through A, searched through B"
    )
    assert max(shown, searched) < CATCH_UP_SECONDS

    # A new entry sent for review through A: its author reads it, and a reviewer finds it, through B.
    word = marker()
    new = {
        "title": f"Replica lesson {word}",
        "summary": f"Saved through replica A, {word}.",
        "kind": "project",
        "outcome": "succeeded",
        "organisation": organisation_of(cluster, SAVED),
        "sections": {"Lessons": f"Everything written through one replica is read through any other, {word}."},
        "status": "in-review",
    }
    created = httpx.post(f"{a}/entries", json=new, headers=author)
    assert created.status_code == 201, created.text
    new_id = created.json()["id"]
    within(
        CATCH_UP_SECONDS,
        lambda: httpx.get(f"{b}/entries/{new_id}", headers=author).status_code == 200,
        "a new entry through A, shown through B",
    )
    within(
        CATCH_UP_SECONDS,
        lambda: found(b, word, author, status="in-review")[:1] == [new_id],
        "a new entry through A, searched through B",
    )


# --------------------------------------------------------------------------- a delete leaves both


def test_a_deleted_entry_disappears_from_both_replicas(cluster):
    """There is no delete endpoint: an entry is deleted by removing its file from the shared folder
    (a curator's commit), and the sync job takes it out of the index."""
    reader = cluster.bearer("Dee Deleter", organisation_of(cluster, DELETED))
    query = "apprenticeship outcomes tracking"
    for url in (cluster.a.url, cluster.b.url):
        assert httpx.get(f"{url}/entries/{DELETED}", headers=reader).status_code == 200
        assert DELETED in found(url, query, reader)

    (cluster.entries / f"{DELETED}.md").unlink()
    for url in (cluster.a.url, cluster.b.url):  # the file is the record: gone at once
        assert httpx.get(f"{url}/entries/{DELETED}", headers=reader).status_code == 404
        found(url, query, reader)  # and searching before the sync is still an answer, not an error

    assert DELETED in cluster.sync().removed
    for name, url in (("A", cluster.a.url), ("B", cluster.b.url)):
        within(CATCH_UP_SECONDS, lambda url=url: DELETED not in found(url, query, reader), f"a delete, through {name}")
        assert httpx.get(f"{url}/stats", headers=reader).status_code == 200


# --------------------------------------------------------------------------- concurrent edits


def test_two_concurrent_edits_through_different_replicas_one_wins_one_conflicts(cluster):
    organisation = organisation_of(cluster, CONTESTED)
    editors = [cluster.bearer(f"Editor {n}", organisation) for n in ("One", "Two")]
    for _ in range(3):
        read = httpx.get(f"{cluster.a.url}/entries/{CONTESTED}", headers=editors[0]).json()
        words = [marker(), marker()]
        answers: list[httpx.Response | None] = [None, None]
        start = threading.Barrier(2)

        def put(n: int, url: str, words=words, read=read, answers=answers, start=start) -> None:
            body = edit(read, summary=f"Edited by editor {n}: {words[n]}.")
            start.wait()
            answers[n] = httpx.put(f"{url}/entries/{CONTESTED}", json=body, headers=editors[n], timeout=60)

        threads = [threading.Thread(target=put, args=(n, url)) for n, url in enumerate((cluster.a.url, cluster.b.url))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

        statuses = [answer.status_code for answer in answers]
        assert sorted(statuses) == [200, 409], [answer.text for answer in answers]
        winner, loser = (0, 1) if statuses[0] == 200 else (1, 0)
        assert answers[loser].headers["content-type"].startswith("application/problem+json")
        stored = (cluster.entries / f"{CONTESTED}.md").read_text()
        assert words[winner] in stored and words[loser] not in stored
        # Both replicas name the stored file's version alike (keyed with the secret beside the shared tokens).
        urls = (cluster.a.url, cluster.b.url)
        now = {httpx.get(f"{url}/entries/{CONTESTED}", headers=editors[0]).json()["version"] for url in urls}
        assert now == {answers[winner].json()["version"]}
        for name, url in (("A", cluster.a.url), ("B", cluster.b.url)):
            within(
                CATCH_UP_SECONDS,
                lambda url=url, words=words, winner=winner: found(url, words[winner], editors[0])[:1] == [CONTESTED],
                f"the winning edit, through {name}",
            )
            assert found(url, words[loser], editors[0]) == []


# --------------------------------------------------------------------------- a replica killed mid-save


# --------------------------------------------------------------------------- one request rate for both


def test_a_token_s_requests_through_both_replicas_share_one_allowance(cluster):
    """The default limit (BURST at once, RATE_PER_MINUTE after) holds for the deployment, not per replica."""
    caller = cluster.bearer("Rita Rate", "Beta Agency", roles="contributor")
    statuses: list[int] = []
    started = time.monotonic()
    with httpx.Client(timeout=30) as client:
        while 429 not in statuses and len(statuses) < 2 * BURST + 10:
            url = (cluster.a, cluster.b)[len(statuses) % 2].url
            answer = client.get(f"{url}/vocabulary", headers=caller)
            statuses.append(answer.status_code)
    elapsed = time.monotonic() - started
    assert answer.status_code == 429 and answer.headers["content-type"].startswith("application/problem+json")
    assert int(answer.headers["retry-after"]) >= 1
    let_through = statuses.count(200)
    print(f"{let_through} requests let through before the first 429, in {elapsed:.2f} s")
    assert statuses.count(200) == len(statuses) - 1
    assert BURST <= let_through <= BURST + RATE_PER_MINUTE / 60 * elapsed + 1  # one burst, not one per replica


def test_a_replica_killed_in_the_middle_of_a_save_loses_nothing(cluster):
    """A is killed once the entry file has changed, while it is still indexing the new version (a large
    entry, so that the window is wide): the file is whole, B carries on, and the sync job repairs the
    index."""
    a, b, path = cluster.a, cluster.b, cluster.entries / f"{CRASHED}.md"
    author = cluster.bearer("Kit Killed", organisation_of(cluster, CRASHED))
    before, after, last = marker(), marker(), marker()
    read = httpx.get(f"{a.url}/entries/{CRASHED}", headers=author).json()
    saved = httpx.put(f"{a.url}/entries/{CRASHED}", json=edit(read, summary=f"Before: {before}."), headers=author)
    assert saved.status_code == 200, saved.text
    old = path.read_bytes()

    # About 730 KB of distinct words in eight sections (each under the 100,000-character cap): thousands of
    # passages to embed and send to Chroma, so the save is still indexing well after the file is written.
    sections = {
        name: "\n\n".join(" ".join(f"s{n}p{p}x{w}" for w in range(60)) + "." for p in range(170))
        for n, name in enumerate(SECTIONS)
    }
    sections[SECTIONS[-1]] += f"\n\nEnd {last}."
    body = edit(saved.json()["entry"] | {"version": saved.json()["version"]}, summary=f"After: {after}.")
    body["sections"] = sections
    answer: list[object] = []

    def save() -> None:
        try:
            answer.append(httpx.put(f"{a.url}/entries/{CRASHED}", json=body, headers=author, timeout=120))
        except httpx.HTTPError as exc:  # the connection dies with the process
            answer.append(exc)

    thread = threading.Thread(target=save)
    thread.start()
    deadline = time.monotonic() + 60
    while path.read_bytes() == old and not answer and time.monotonic() < deadline:
        time.sleep(0.001)
    a.kill()
    thread.join(timeout=60)
    assert path.read_bytes() != old, f"the save never wrote the file: {answer}"
    assert isinstance(answer[0], httpx.HTTPError), (
        f"the save finished before A could be killed in the middle of it: {answer}"
    )

    # The file is the new version, whole (the rename is atomic); the folder loads without a problem.
    text = path.read_text()
    entry, _ = parse_entry(text, path.name)
    assert after in entry.summary and entry.sections == sections
    assert EntryStore(cluster.entries).load().problems == []

    # B carries on: it serves the entry from the shared folder and answers searches.
    assert after in httpx.get(f"{b.url}/entries/{CRASHED}", headers=author).json()["summary"]
    assert SAVED in found(b.url, "housing data sharing pilot", author)

    # The sync job repairs whatever A left half indexed; then both replicas agree with the file.
    cluster.sync()
    assert not cluster.sync().changed
    a.start()
    for name, url in (("B", b.url), ("A restarted", a.url)):
        within(
            CATCH_UP_SECONDS, lambda url=url: found(url, last, author)[:1] == [CRASHED], f"the saved version, {name}"
        )
        assert found(url, after, author)[:1] == [CRASHED]
        assert found(url, before, author) == []
