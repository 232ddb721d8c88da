"""The `lighthouse` command: every `python -m kb` command under it, and `lighthouse app` starting the web app.

(`make package` checks the built wheel in a new virtual environment; CI runs it.)
"""

from __future__ import annotations

import os
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from kb.cli import cli
from tests.browser.harness import START_SECONDS, free_port, wait_until_healthy
from tests.conftest import ROOT


def lighthouse(*args: str, **options) -> subprocess.CompletedProcess:
    """The console script as pip installs it: `kb.cli:main` with the default program name."""
    code = "import sys; from kb.cli import main; sys.argv[0] = 'lighthouse'; main()"
    return subprocess.run([sys.executable, "-c", code, *args], cwd=ROOT, capture_output=True, text=True, **options)


def test_lighthouse_names_itself_and_offers_every_command():
    done = lighthouse("--help", timeout=60)
    assert done.returncode == 0 and done.stdout.startswith("Usage: lighthouse "), done.stdout[:200]
    assert set(cli.commands) <= {line.split()[0] for line in done.stdout.split("Commands:")[1].splitlines() if line}
    assert {"app", "serve", "search", "check"} <= set(cli.commands)


def test_lighthouse_app_starts_the_web_app(tmp_path: Path):
    port = free_port()
    # From another folder, as an installed command is run (the checkout on the path stands for the install).
    env = {**os.environ, "PYTHONPATH": str(ROOT), "KB_MODEL": "hashing-bow", "KB_INDEX_DIR": str(tmp_path / "index")}
    command = [sys.executable, "-m", "kb", "app", "--server.port", str(port), "--server.headless", "true"]
    process = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_until_healthy(f"http://127.0.0.1:{port}", process, START_SECONDS)
    finally:
        process.terminate()  # as a service manager stops it: the command's own process only
        process.wait(timeout=15)
    # A stop meant for the command stops the app: none is left serving the port.
    with pytest.raises(OSError):
        urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2)


def test_the_app_s_own_settings_travel_as_flags_where_its_config_file_is_not_read():
    from kb.cli_web import streamlit_flags

    flags = streamlit_flags(ROOT / ".streamlit" / "config.toml")
    pairs = dict(zip(flags[::2], flags[1::2], strict=True))
    assert pairs["--server.address"] == "127.0.0.1", "local mode listens on this machine only, installed or not"
    assert pairs["--runner.postScriptGC"] == "false" and pairs["--browser.gatherUsageStats"] == "false"
    assert pairs["--theme.primaryColor"] == "#1d70b8"


def test_the_wheel_carries_the_web_app(tmp_path: Path):
    """The build copies app.py, app_pages/ and the Streamlit settings into kb/webapp/ (setup.py)."""
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path),
            str(ROOT),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    import zipfile

    (wheel,) = tmp_path.glob("lighthouse_kb-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert {"kb/webapp/app.py", "kb/webapp/.streamlit/config.toml", "kb/webapp/app_pages/search.py"} <= names
    assert "kb/database/migrations/versions/0001_initial.py" in names and "kb/database/migrations/env.py" in names


def test_a_setting_in_the_user_s_own_config_file_is_theirs(tmp_path: Path):
    from kb.cli_web import streamlit_flags

    theirs = tmp_path / "config.toml"
    theirs.write_text('[server]\naddress = "0.0.0.0"\n\n[theme]\nprimaryColor = "#000000"\n')
    flags = streamlit_flags(ROOT / ".streamlit" / "config.toml", own=(theirs, tmp_path / "missing.toml"))
    assert "--server.address" not in flags and "--theme.primaryColor" not in flags
    assert "--runner.postScriptGC" in flags, "what they do not set still comes with the app"
