"""Servers the integration tests start on 127.0.0.1: a Chroma server (`chroma run`) and API replicas
(`python -m kb serve`), each a real subprocess on a free port."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
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


def postgres_binaries() -> Path:
    """The folder of Debian's PostgreSQL server programs; skips (fails in CI) when none is installed."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    require(bool(found), "PostgreSQL is not installed (Debian's package postgresql)")
    return found[-1].parent


class PostgresServer:
    """A throwaway PostgreSQL cluster in `folder`, listening on 127.0.0.1 only, that hands out empty
    databases. PostgreSQL refuses to run as root, so as root it runs as the `postgres` account."""

    def __init__(self):
        self.bin = postgres_binaries()
        # Not under pytest's own temporary folder: that is private to root, and the server runs as postgres.
        self.folder, self.port = Path(tempfile.mkdtemp(prefix="lighthouse-postgres-")), free_port()
        self.data = self.folder / "data"
        self._count = 0

    def _run(self, *command: str) -> None:
        as_owner = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        done = subprocess.run([*as_owner, *command], capture_output=True, text=True, timeout=STARTUP_SECONDS)
        if done.returncode:
            pytest.fail(f"{' '.join(command)} failed:\n{done.stdout}\n{done.stderr}")

    def start(self) -> PostgresServer:
        self.folder.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            shutil.chown(self.folder, "postgres", "postgres")
        self._run(str(self.bin / "initdb"), "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8")
        options = (
            f"-c listen_addresses=127.0.0.1 -c port={self.port} -c unix_socket_directories={self.folder} -c fsync=off"
        )
        self._run(
            str(self.bin / "pg_ctl"), "-D", str(self.data), "-o", options, "-l", str(self.folder / "log"), "-w", "start"
        )
        return self

    def new_database(self) -> str:
        """The URL of a new, empty database on this server."""
        import psycopg

        self._count += 1
        name = f"lighthouse_{self._count}"
        with psycopg.connect(f"host=127.0.0.1 port={self.port} user=postgres dbname=postgres", autocommit=True) as c:
            c.execute(f"CREATE DATABASE {name}")
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{name}"

    def stop(self) -> None:
        try:
            self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop")
        finally:
            shutil.rmtree(self.folder, ignore_errors=True)
