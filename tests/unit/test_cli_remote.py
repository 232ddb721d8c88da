"""`search --api URL` and `similar --api URL`: the command line asks a running API (a real server on
127.0.0.1) and prints what a local search prints, as the token's person may see it."""

from __future__ import annotations

import json
import threading
import time

import pytest
import uvicorn
from click.testing import CliRunner

from kb.api import create_app
from kb.cli import cli
from kb.tokens import TokenStore
from tests.servers import free_port

HIDDEN = "chatbot-for-policy-guidance-withdrawn"  # visible to its own organisation only


@pytest.fixture
def api(kb, tmp_path):
    kb.sync()
    tokens = TokenStore(tmp_path / "tokens.json")
    server = uvicorn.Server(
        uvicorn.Config(create_app(kb, tokens), host="127.0.0.1", port=free_port(), log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started, "the API did not start"
    yield f"http://127.0.0.1:{server.config.port}", tokens
    server.should_exit = True
    thread.join(timeout=10)


def run(*args: str, code: int = 0):
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    assert result.exit_code == code, result.output
    return result.output


def test_a_search_through_the_api_prints_what_a_local_search_prints(api):
    url, _ = api
    cases = [
        ("data sharing agreement", ()),
        ("mainframe", ("--mode", "bm25", "--outcome", "failed", "--outcome", "stopped")),
        ("people stopped using the dashboard", ("--mode", "dense", "--year-from", "2019", "--kind", "project")),
    ]
    for query, options in cases:
        local = run("search", query, *options, "--limit", "4", "--as", "anonymous")
        assert "No entries found" not in local, query
        assert run("search", query, *options, "--limit", "4", "--api", url) == local, query
        remote = json.loads(run("search", query, *options, "--limit", "4", "--api", url, "--json"))
        assert remote == json.loads(run("search", query, *options, "--limit", "4", "--as", "anonymous", "--json"))


def test_similar_through_the_api_and_a_hidden_entry_answers_like_a_missing_one(api, kb):
    url, tokens = api
    some = "benefits-and-housing-data-sharing-pilot"
    assert run("similar", some, "--api", url) == run("similar", some, "--as", "anonymous")
    hidden = run("similar", HIDDEN, "--api", url, code=1)
    missing = run("similar", "no-such-entry", "--api", url, code=1)
    assert hidden.replace(HIDDEN, "X") == missing.replace("no-such-entry", "X") and "Traceback" not in hidden

    owner = kb.stored(HIDDEN).organisation
    token, _ = tokens.create("Olive Owner", organisation=owner, roles="contributor")
    assert run("similar", HIDDEN, "--api", url, "--token", token, "--limit", "2")  # its own organisation sees it


def test_the_token_s_person_sees_their_organisation_s_entries(api, kb):
    url, tokens = api
    entry = kb.stored(HIDDEN)
    token, _ = tokens.create("Olive Owner", organisation=entry.organisation, roles="contributor")
    anonymous = json.loads(run("search", entry.title, "--limit", "50", "--api", url, "--json"))
    theirs = json.loads(run("search", entry.title, "--limit", "50", "--json", "--api", url, "--token", token))
    assert HIDDEN not in [h["id"] for h in anonymous] and HIDDEN in [h["id"] for h in theirs]


def test_a_server_that_is_not_there_and_a_mistaken_combination_are_one_clear_line():
    output = run("search", "data", "--api", f"http://127.0.0.1:{free_port()}", code=1)
    assert "did not answer" in output and "is it running?" in output and "Traceback" not in output
    assert "--as reads a local index" in run("search", "data", "--api", "http://127.0.0.1:1", "--as", "x", code=2)


def test_a_search_through_the_api_starts_without_the_model_or_the_vector_store(api):
    """The point of --api: the process imports neither torch and the model nor chromadb."""
    import subprocess
    import sys

    from tests.conftest import ROOT

    url, _ = api
    heavy = ("torch", "sentence_transformers", "chromadb", "transformers")
    probe = (
        "import runpy, sys\n"
        f"sys.argv = ['kb', '--model', 'all-MiniLM-L6-v2', 'search', 'data sharing', '--api', {url!r}]\n"
        "try:\n    runpy.run_module('kb', run_name='__main__')\nexcept SystemExit as exit:\n"
        "    assert not exit.code, exit.code\n"
        f"print(sorted(name for name in {heavy!r} if name in sys.modules), file=sys.stderr)\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-500:]
    assert "1. " in done.stdout, done.stdout[-500:]
    assert done.stderr.strip().splitlines()[-1] == "[]", done.stderr[-500:]


def test_the_feeds_api_address_does_not_send_the_command_line_s_searches_away(kb, monkeypatch):
    """KB_API_URL is where readers reach the API (feed addresses); only KB_CLI_API_URL means "ask it"."""
    kb.sync()
    monkeypatch.setenv("KB_API_URL", f"http://127.0.0.1:{free_port()}")
    assert "1. " in run("search", "data sharing", "--limit", "2", "--as", "anonymous")
    monkeypatch.setenv("KB_CLI_API_URL", f"http://127.0.0.1:{free_port()}")
    assert "did not answer" in run("search", "data sharing", "--limit", "2", code=1)
