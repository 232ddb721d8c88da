"""Servers the integration tests start on 127.0.0.1: a Chroma server (`chroma run`) and API replicas
(`python -m kb serve`), each a real subprocess on a free port."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import pytest

from bench.browser import free_port, stop  # noqa: F401  (the tests take them from here)
from tests.conftest import ROOT, require

STARTUP_SECONDS = 60  # a loaded machine may take this long to import the stack and answer


def chroma_command() -> str:
    """The `chroma` command beside this Python, or on the PATH; skips (fails in CI) when there is none."""
    beside = Path(sys.executable).parent / "chroma"
    require(beside.exists() or shutil.which("chroma") is not None, "the `chroma` command is not installed")
    return str(beside) if beside.exists() else "chroma"


def wait_until_serving(process: subprocess.Popen, url: str, what: str, log: Path | None = None) -> None:
    """Poll `url` until it answers 200; fail with the process's log if it exits or never answers."""
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except (OSError, urllib.error.HTTPError):
            if process.poll() is not None:
                tail = log.read_text(errors="replace")[-3000:] if log and log.exists() else ""
                pytest.fail(f"{what} exited before it started serving\n{tail}")
            time.sleep(0.2)
    pytest.fail(f"{what} did not answer within {STARTUP_SECONDS} s")


@contextmanager
def chroma_running(data: Path) -> Iterator[str]:
    """A `chroma run` server keeping its data in `data`; yields its URL."""
    port = free_port()
    command = [chroma_command(), "run", "--path", str(data), "--host", "127.0.0.1", "--port", str(port)]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_serving(process, f"{url}/api/v2/heartbeat", "chroma run")
        yield url
    finally:
        stop(process)


def kb_environment(**settings: str) -> dict[str, str]:
    """The environment of a `python -m kb` subprocess: this one's, the fake embedder, no telemetry, no
    downloads, and the KB_* settings given (KB_ENTRIES_DIR=..., as keyword arguments)."""
    return {
        **os.environ,
        "KB_MODEL": "hashing-bow",
        "ANONYMIZED_TELEMETRY": "False",
        "HF_HUB_OFFLINE": "1",
        "PYTHONPATH": str(ROOT),
        **settings,
    }


class ApiReplica:
    """One `python -m kb serve` process with its own settings; started, killed and started again."""

    def __init__(self, name: str, environment: Mapping[str, str], log: Path):
        self.name, self.environment, self.log = name, dict(environment), log
        self.process: subprocess.Popen | None = None
        self.url = ""

    def start(self) -> ApiReplica:
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "kb", "serve", "--host", "127.0.0.1", "--port", str(port)],
                env=self.environment,
                cwd=ROOT,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        wait_until_serving(self.process, f"{self.url}/openapi.json", f"replica {self.name}", self.log)
        return self

    def kill(self) -> None:
        """SIGKILL: no handler runs, nothing is flushed or cleaned up."""
        assert self.process is not None
        self.process.kill()
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process is not None:
            stop(self.process)
