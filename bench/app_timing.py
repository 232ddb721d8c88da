"""`streamlit run` with timing: every script run and every `kb.browse.find` call is written, as one JSON
line (what, start as wall-clock seconds, seconds taken), to the file named first on the command line.

    python -m bench.app_timing TIMINGS.jsonl run app.py --server.port 8501 ...

The search-page benchmark (`bench/search_page.py`) starts the app this way, so that it can tell how much
of the time from pressing Search to the results on screen the server spent running the page, and how
much of that went to the search itself. Nothing in the app or the library knows about it.
"""

from __future__ import annotations

import functools
import json
import sys
import threading
import time
from pathlib import Path


def _recorder(path: Path):
    lock = threading.Lock()

    def record(what: str, started: float, seconds: float) -> None:
        line = json.dumps({"what": what, "start": started, "seconds": seconds})
        with lock, path.open("a", encoding="utf-8") as out:
            out.write(line + "\n")

    return record


def _timed(what: str, function, record):
    @functools.wraps(function)
    def timed(*args, **kwargs):
        wall, started = time.time(), time.perf_counter()
        try:
            return function(*args, **kwargs)
        finally:
            record(what, wall, time.perf_counter() - started)

    return timed


def main() -> None:
    record = _recorder(Path(sys.argv[1]))
    from streamlit.runtime.scriptrunner import script_runner
    from streamlit.web import cli

    import kb.browse

    kb.browse.find = _timed("find", kb.browse.find, record)  # the page calls browse.find at run time
    runner = script_runner.ScriptRunner
    runner._run_script = _timed("script", runner._run_script, record)  # type: ignore[method-assign]
    sys.argv = ["streamlit", *sys.argv[2:]]
    cli.main(prog_name="streamlit")


if __name__ == "__main__":
    main()
