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
    print("err", file=sys.stderr)  # line-buffered, as Python's stderr always is: kept by a crash
    what = sys.argv[1]
    if what == "alone":
        print(sorted(os.environ), repr(sys.stdin.read()))
    if what == "exit":
        sys.exit(3)
    if what == "raise":
        raise RuntimeError("the probe failed")
    if what == "signal":
        sys.stdout.flush()
        print("\\udcff undecodable", file=sys.stderr)  # written as Python's stderr writes it, not raised
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
    with Preforked(["json"], server_environment(modules), cwd=ROOT, servers=2) as started:
        yield started, modules


def server_environment(modules: Path) -> dict[str, str]:
    # the server's: a command's own PYTHONPATH would come too late, after its interpreter started
    return {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": f"{ROOT}{os.pathsep}{modules}"}


def run(processes, what: str, tmp_path: Path, timeout: float = 30) -> subprocess.CompletedProcess:
    started, modules = processes
    return started.run(["probe", what], {"PROBE": what}, cwd=tmp_path, timeout=timeout)


def test_exit_code_output_environment_and_folder_are_the_command_s_own(processes, tmp_path):
    done = run(processes, "exit", tmp_path)
    assert done.returncode == 3
    assert done.stdout == f"out exit {tmp_path}\n" and done.stderr == "err\n"


def test_an_uncaught_exception_prints_its_traceback_and_exits_1(processes, tmp_path):
    done = run(processes, "raise", tmp_path)
    assert done.returncode == 1
    assert "Traceback" in done.stderr and "RuntimeError: the probe failed" in done.stderr


def test_only_the_command_s_environment_and_no_input(processes, tmp_path):
    done = run(processes, "alone", tmp_path)
    assert done.returncode == 0
    assert done.stdout.splitlines()[-1] == "['PROBE'] ''", "the server's PATH is not the command's"


def test_a_command_killed_by_a_signal_reports_it_with_what_it_wrote(processes, tmp_path):
    done = run(processes, "signal", tmp_path)
    assert done.returncode == -signal.SIGSEGV
    assert done.stdout.startswith("out signal")
    assert done.stderr == "err\n\\udcff undecodable\n"


def test_atexit_handlers_run_as_at_the_end_of_any_process(processes, tmp_path):
    done = run(processes, "atexit", tmp_path)
    assert done.returncode == 0 and done.stdout.endswith("at exit\n")


def test_a_command_past_its_timeout_is_killed_and_raises(processes, tmp_path):
    _, modules = processes
    with Preforked(["json"], server_environment(modules), cwd=ROOT) as one:  # so the next command meets it again
        with pytest.raises(subprocess.TimeoutExpired):
            one.run(["probe", "sleep"], {}, cwd=tmp_path, timeout=0.5)
        assert one.run(["probe", "exit"], {}, cwd=tmp_path, timeout=30).returncode == 3, "it still serves"


def test_the_modules_loaded_are_listed(processes):
    started, _ = processes
    assert {"json", "numpy"} <= started.loaded and "probe" not in started.loaded


def test_a_lost_server_fails_the_commands_after_it_instead_of_keeping_them_waiting(processes, tmp_path):
    _, modules = processes
    with Preforked(["json"], server_environment(modules), cwd=ROOT) as one:
        one._all[0].kill()  # the server dies between two commands
        one._all[0].wait()
        with pytest.raises((RuntimeError, OSError)):
            one.run(["probe", "exit"], {}, cwd=tmp_path, timeout=30)
        with pytest.raises(RuntimeError, match="lost"):
            one.run(["probe", "exit"], {}, cwd=tmp_path, timeout=30)
