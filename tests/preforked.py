"""`python -m <module> <args>` as real, separate processes, without paying the imports each time.

    with Preforked(["kb.cli", "chromadb"], env, cwd=ROOT, servers=2) as processes:
        done = processes.run(["kb", "sync"], env, timeout=120)   # a subprocess.CompletedProcess

Importing the library and Chroma takes about 1.5 s of a short command's 2 s. A server process imports
them once and forks a child per command: the child sets the command's environment, working folder and
output files, runs the module as `python -m` would, and ends as any Python process ends (exit code,
traceback, atexit handlers, finalizers), so a crash still shows as a signal or a traceback. Each
server runs one command at a time; `servers` of them run that many at once.

Forking is safe here because the preloaded modules start no Python threads (the server checks that
before it serves), and the native thread pool numpy starts (OpenBLAS) shuts down and restarts around a
fork itself.
"""

from __future__ import annotations

import importlib
import json
import os
import queue
import runpy
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

POLL_SECONDS = 0.01


class Preforked:
    def __init__(self, preload: list[str], env: dict[str, str], *, cwd: Path, servers: int = 1):
        """`servers` server processes, each started with `env` (what is read at import must be the same
        for every command) after importing the modules of `preload`."""
        self._idle: queue.SimpleQueue[subprocess.Popen] = queue.SimpleQueue()
        self._all: list[subprocess.Popen] = []
        for _ in range(servers):
            server = subprocess.Popen(
                [sys.executable, "-m", "tests.preforked", json.dumps(preload)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                env=env,
                cwd=cwd,
                text=True,
            )
            self._all.append(server)
        for server in self._all:
            ready = server.stdout.readline() if server.stdout else ""
            if ready.strip() != "ready":
                self.close()
                raise RuntimeError(f"the preforked server did not start: {ready!r}")
            self._idle.put(server)

    def run(self, args: list[str], env: dict[str, str], *, cwd: Path, timeout: float) -> subprocess.CompletedProcess:
        """`python -m args[0] args[1:]` with this environment, in this folder: its exit code (minus the
        signal that killed it), stdout and stderr. Raises subprocess.TimeoutExpired, as subprocess.run
        does, when it runs longer than `timeout` (it is killed)."""
        server = self._idle.get()
        try:
            with tempfile.TemporaryDirectory(prefix="preforked-") as folder:
                out, err = Path(folder) / "stdout", Path(folder) / "stderr"
                request = {"args": args, "env": env, "cwd": str(cwd), "stdout": str(out), "stderr": str(err)}
                assert server.stdin is not None and server.stdout is not None
                server.stdin.write(json.dumps(request | {"timeout": timeout}) + "\n")
                server.stdin.flush()
                reply = json.loads(server.stdout.readline() or '{"lost": true}')
                if reply.get("lost"):
                    raise RuntimeError("the preforked server ended")
                stdout, stderr = (p.read_text(encoding="utf-8", errors="replace") for p in (out, err))
        finally:
            self._idle.put(server)
        if reply["timed_out"]:
            raise subprocess.TimeoutExpired(["python", "-m", *args], timeout, stdout, stderr)
        return subprocess.CompletedProcess(["python", "-m", *args], reply["returncode"], stdout, stderr)

    def close(self) -> None:
        for server in self._all:
            if server.stdin:
                server.stdin.close()
            server.wait(timeout=30)
            if server.stdout:
                server.stdout.close()

    def __enter__(self) -> Preforked:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _serve(preload: list[str]) -> None:
    for name in preload:
        importlib.import_module(name)
    if threading.active_count() != 1:  # native pools (OpenBLAS's) stop and restart around a fork themselves
        raise SystemExit(f"the preloaded modules started threads ({threading.enumerate()}): forking is not safe")
    print("ready", flush=True)
    for line in sys.stdin:
        request = json.loads(line)
        pid = os.fork()
        if pid == 0:
            _become(request)  # returns only by raising: the child ends as a process run alone would
        print(json.dumps(_wait(pid, request["timeout"])), flush=True)


def _become(request: dict) -> None:
    """In the child: the command's streams, folder and environment, then the module as `python -m`."""
    for fd, path, flags in (
        (0, os.devnull, os.O_RDONLY),
        (1, request["stdout"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC),
        (2, request["stderr"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC),
    ):
        opened = os.open(path, flags, 0o600)
        os.dup2(opened, fd)
        os.close(opened)
    sys.stdin = open(0, encoding="utf-8", closefd=False)  # noqa: SIM115 - the process's own streams
    sys.stdout = open(1, "w", encoding="utf-8", closefd=False)  # noqa: SIM115
    sys.stderr = open(2, "w", encoding="utf-8", closefd=False)  # noqa: SIM115
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    module, *args = request["args"]
    sys.argv = [module, *args]
    runpy.run_module(module, run_name="__main__", alter_sys=True)
    raise SystemExit(0)


def _wait(pid: int, timeout: float) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return {"returncode": os.waitstatus_to_exitcode(status), "timed_out": False}
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            return {"returncode": -signal.SIGKILL, "timed_out": True}
        time.sleep(POLL_SECONDS)


if __name__ == "__main__":
    _serve(json.loads(sys.argv[1]))
