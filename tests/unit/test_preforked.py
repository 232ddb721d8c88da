"""A command run by tests.preforked ends as the same command run alone would: its exit code, its output,
its traceback, the signal that killed it, its atexit handlers, in its own environment and folder."""

from __future__ import annotations

import os
import signal
import subprocess
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.preforked import Preforked

PROBE = """
    import atexit, os, signal, sys, time

    print("out", os.environ.get("PROBE"), os.getcwd())
    print("err", file=sys.stderr)
    what = sys.argv[1]
    if what == "exit":
        sys.exit(3)
    if what == "raise":
        raise RuntimeError("the probe failed")
    if what == "signal":
        sys.stdout.flush()
        os.kill(os.getpid(), signal.SIGSEGV)
    if what == "sleep":
        time.sleep(60)
    if what == "atexit":
        atexit.register(lambda: print("at exit"))
"""


@pytest.fixture(scope="module")
def processes(tmp_path_factory) -> Iterator[tuple[Preforked, Path]]:
    modules = tmp_path_factory.mktemp("modules")
    (modules / "probe.py").write_text(textwrap.dedent(PROBE), encoding="utf-8")
    env = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": f"{ROOT}{os.pathsep}{modules}"}
    with Preforked(["json"], env, cwd=ROOT, servers=2) as started:
        yield started, modules


def run(processes, what: str, tmp_path: Path, timeout: float = 30) -> subprocess.CompletedProcess:
    started, modules = processes
    env = {"PYTHONPATH": f"{ROOT}{os.pathsep}{modules}", "PROBE": what}
    return started.run(["probe", what], env, cwd=tmp_path, timeout=timeout)


def test_exit_code_output_environment_and_folder_are_the_command_s_own(processes, tmp_path):
    done = run(processes, "exit", tmp_path)
    assert done.returncode == 3
    assert done.stdout == f"out exit {tmp_path}\n" and done.stderr == "err\n"


def test_an_uncaught_exception_prints_its_traceback_and_exits_1(processes, tmp_path):
    done = run(processes, "raise", tmp_path)
    assert done.returncode == 1
    assert "Traceback" in done.stderr and "RuntimeError: the probe failed" in done.stderr


def test_a_command_killed_by_a_signal_reports_it(processes, tmp_path):
    done = run(processes, "signal", tmp_path)
    assert done.returncode == -signal.SIGSEGV
    assert done.stdout.startswith("out signal")


def test_atexit_handlers_run_as_at_the_end_of_any_process(processes, tmp_path):
    done = run(processes, "atexit", tmp_path)
    assert done.returncode == 0 and done.stdout.endswith("at exit\n")


def test_a_command_past_its_timeout_is_killed_and_raises(processes, tmp_path):
    with pytest.raises(subprocess.TimeoutExpired):
        run(processes, "sleep", tmp_path, timeout=0.5)
    assert run(processes, "exit", tmp_path).returncode == 3, "the servers still serve after a timeout"
