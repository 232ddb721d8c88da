"""`python -m <module> <args>` as real, separate processes, without paying the imports each time.

    with Preforked(["kb.cli", "pydantic"], env, cwd=ROOT, servers=2) as processes:
        done = processes.run(["kb", "sync"], env, cwd=ROOT, timeout=120)   # a subprocess.CompletedProcess

Importing the library takes most of a short command's time. A server process imports the modules of
`preload` once and forks a child per command: the child takes the command's environment, working
folder and output files, runs the module as `__main__` (runpy), and ends as any Python process ends
(exit code, traceback, atexit handlers, finalizers), so a crash still shows as a signal or a traceback.
Each server runs one command at a time; `servers` of them run that many at once.

What an interpreter fixes as it starts is the server's, for every command: `sys.path` (PYTHONPATH and
the other PYTHON* variables) and the string hash seed. What a module reads from the environment at
import is read with the server's environment. And a preloaded module is already imported: code that
acts on whether a module is loaded sees it loaded (`Preforked.loaded` lists them).

Forking is safe because the server refuses to serve if the preloaded modules started a thread: a Python
thread, or a native one beyond the pool numpy's BLAS starts as it is imported (OpenBLAS stops and
restarts that pool around a fork itself).
"""

from __future__ import annotations

import contextlib
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
        """`servers` server processes, each started with `env` in `cwd`, after importing `preload`."""
        self._idle: queue.SimpleQueue[subprocess.Popen | None] = queue.SimpleQueue()  # None: a server lost
        self._all: list[subprocess.Popen] = []
        for _ in range(servers):
            self._all.append(
                subprocess.Popen(
                    [sys.executable, "-m", "tests.preforked", json.dumps(preload)],
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    env=env,
                    cwd=cwd,
                    text=True,
                )
            )
        loaded: set[str] = set()
        for server in self._all:
            ready = server.stdout.readline() if server.stdout else ""
            try:
                loaded |= set(json.loads(ready)["loaded"])
            except (ValueError, KeyError):
                self.close()
                raise RuntimeError(f"a preforked server did not start: {ready!r}") from None
            self._idle.put(server)
        self.loaded = frozenset(loaded)  # the top-level modules every command starts with

    def run(self, args: list[str], env: dict[str, str], *, cwd: Path, timeout: float) -> subprocess.CompletedProcess:
        """`python -m args[0] args[1:]` with this environment, in this folder: its exit code (minus the
        signal that killed it), stdout and stderr. Raises subprocess.TimeoutExpired, as subprocess.run
        does, when it runs longer than `timeout` (it is killed)."""
        server = self._idle.get()
        if server is None:  # one was lost: say so to every caller rather than wait for it
            self._idle.put(None)
            raise RuntimeError("a preforked server was lost in an earlier command")
        try:
            with tempfile.TemporaryDirectory(prefix="preforked-") as folder:
                out, err = Path(folder) / "stdout", Path(folder) / "stderr"
                request = {"args": args, "env": env, "cwd": str(cwd), "stdout": str(out), "stderr": str(err)}
                assert server.stdin is not None and server.stdout is not None
                server.stdin.write(json.dumps(request | {"timeout": timeout}) + "\n")
                server.stdin.flush()
                line = server.stdout.readline()
                if not line:
                    raise RuntimeError(f"a preforked server ended (exit code {server.wait()})")
                reply = json.loads(line)
                stdout, stderr = (p.read_text(encoding="utf-8", errors="replace") for p in (out, err))
        except BaseException:
            server.kill()  # it may be half way through an exchange: never hand it to the next command
            self._idle.put(None)
            raise
        self._idle.put(server)
        if reply["timed_out"]:
            raise subprocess.TimeoutExpired(["python", "-m", *args], timeout, stdout, stderr)
        return subprocess.CompletedProcess(["python", "-m", *args], reply["returncode"], stdout, stderr)

    def close(self) -> None:
        for server in self._all:
            if server.stdin:
                with contextlib.suppress(BrokenPipeError):  # a lost server: what was written stays unread
                    server.stdin.close()
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                server.kill()
            if server.stdout:
                server.stdout.close()

    def __enter__(self) -> Preforked:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _serve(preload: list[str]) -> None:
    import numpy  # noqa: F401 - first: the one native thread pool allowed is the one it starts

    native = _native_threads()
    for name in preload:
        importlib.import_module(name)
    if threading.active_count() != 1 or _native_threads() != native:
        raise SystemExit(f"{preload} started threads ({threading.enumerate()}): forking them is not safe")
    print(json.dumps({"loaded": sorted({name.split(".")[0] for name in sys.modules})}), flush=True)
    for line in sys.stdin:
        request = json.loads(line)
        pid = os.fork()
        if pid == 0:
            _become(request)  # returns only by raising: the child ends as a process run alone would
        print(json.dumps(_wait(pid, request["timeout"])), flush=True)


def _native_threads() -> int:
    return len(os.listdir("/proc/self/task"))


def _become(request: dict) -> None:
    """In the child: the command's files on its standard streams (Python's own stdout and stderr objects
    stay, with their buffering and error handling, empty since the server flushes every line), its
    folder and environment, then the module."""
    for fd, path, flags in (
        (0, os.devnull, os.O_RDONLY),
        (1, request["stdout"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC),
        (2, request["stderr"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC),
    ):
        opened = os.open(path, flags, 0o600)
        os.dup2(opened, fd)
        os.close(opened)
    sys.stdin = open(0, encoding="utf-8", closefd=False)  # noqa: SIM115 - not the server's, which may hold read-ahead
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
