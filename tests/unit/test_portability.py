"""The library imports where POSIX-only modules are missing (Windows): its file locks come from filelock."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import ROOT

POSIX_ONLY = ("fcntl", "termios", "pwd", "grp", "resource")


def test_every_library_module_imports_without_posix_only_modules():
    probe = (
        "import importlib, pkgutil, sys\n"
        f"for name in {POSIX_ONLY!r}:\n"
        "    sys.modules[name] = None  # importing it now raises ImportError, as on Windows\n"
        "import kb\n"
        "for module in pkgutil.walk_packages(kb.__path__, 'kb.'):\n"
        # __main__ runs the command line; the migrations are Alembic's scripts, run by Alembic only
        "    if not module.name.endswith('__main__') and '.migrations' not in module.name:\n"
        "        importlib.import_module(module.name)\n"
        "print('imported')\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0 and done.stdout.strip() == "imported", done.stderr[-800:]
