"""Server mode: the same code against a Chroma server (`chroma run` on 127.0.0.1) via KB_CHROMA_URL."""

from __future__ import annotations

import json
import shutil

import pytest
from click.testing import CliRunner

from kb.cli import cli
from tests.servers import chroma_running, free_port

pytestmark = pytest.mark.server


@pytest.fixture
def chroma_server(tmp_path):
    with chroma_running(tmp_path / "server-data") as url:
        yield url


def test_sync_search_and_similar_through_a_chroma_server(chroma_server, entries_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("KB_CHROMA_URL", chroma_server)
    shutil.rmtree(tmp_path / "index")  # the fixture's copy of the embedded sample index: this machine starts empty
    runner = CliRunner()

    def run(*args):
        result = runner.invoke(cli, list(args), catch_exceptions=False)
        assert result.exit_code == 0, result.output
        return result.output

    report = json.loads(run("sync", "--json"))
    assert len(report["added"]) >= 40
    assert not (tmp_path / "index" / "chroma").exists()  # vectors went to the server, not to disk here
    hits = json.loads(run("search", "mainframe pension award", "--limit", "3", "--json"))
    assert hits[0]["id"] == "mainframe-blocked-pension-data-share"
    similar = json.loads(run("similar", "mainframe-blocked-pension-data-share", "--json"))
    assert similar and all(s["id"] != "mainframe-blocked-pension-data-share" for s in similar)
    # A second machine with an empty local folder sees the same index and rebuilds its keyword index.
    monkeypatch.setenv("KB_INDEX_DIR", str(tmp_path / "replica"))
    assert json.loads(run("sync", "--json"))["unchanged"] == len(report["added"])
    hits = json.loads(run("search", "mainframe pension award", "--mode", "bm25", "--json"))
    assert hits[0]["id"] == "mainframe-blocked-pension-data-share"


def test_unreachable_server_is_one_clear_line(monkeypatch, entries_dir):
    monkeypatch.setenv("KB_CHROMA_URL", f"http://127.0.0.1:{free_port()}")
    result = CliRunner().invoke(cli, ["search", "anything"])
    assert result.exit_code == 1 and "Chroma server" in result.output and "Traceback" not in result.output
