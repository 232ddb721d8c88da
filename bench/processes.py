"""How long a whole `python -m kb` process takes, from start to exit, beside `python -c pass`.

    python -m bench cli                      # NASA's 2,100 lessons from ../shared/data

A command line is used a process at a time, so what counts is everything a call costs: starting
Python, importing the library (and the model, for the commands that embed), and the work itself.
Each command runs several times on one collection (synced once into a work folder, shared with
`bench overhead`); the table gives the median and the slowest run, and the median's ratio to an
empty Python process, so a busy machine shifts every row alike.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from kb.config import Settings

# What each command must finish within at 2,000 entries (seconds, start to exit). A search may meet
# its target either way: in its own process, or asking a running API (`--api`).
TARGETS = {"show": 1.0, "check": 1.0, "stats": 1.0, "search": 2.0, "search --api": 2.0}
QUERY = "a test failed because the hardware was not flown as tested"


def commands(settings: Settings, entry_id: str, api_url: str | None = None) -> dict[str, list[str]]:
    """The processes timed: an empty Python, then each command against the collection (and, with
    `api_url`, search and similar asking the API served there)."""
    kb = [
        sys.executable,
        "-m",
        "kb",
        "--entries",
        str(settings.entries_dir),
        "--index",
        str(settings.index_dir),
        "--model",
        settings.model,
    ]
    return {
        "python -c pass": [sys.executable, "-c", "pass"],
        "show": [*kb, "show", entry_id],
        "check": [*kb, "check"],
        "stats": [*kb, "stats"],
        "search": [*kb, "search", QUERY, "--limit", "5"],
        "similar": [*kb, "similar", entry_id, "--limit", "5"],
        **(
            {
                "search --api": [*kb, "search", QUERY, "--limit", "5", "--api", api_url],
                "similar --api": [*kb, "similar", entry_id, "--limit", "5", "--api", api_url],
            }
            if api_url
            else {}
        ),
    }


@contextmanager
def api_served(settings: Settings) -> Iterator[str]:
    """`python -m kb serve` on the collection, on a free port of 127.0.0.1, until the block ends."""
    import urllib.request

    from bench.browser import free_port, stop

    port = free_port()
    command = [sys.executable, "-m", "kb", "--entries", str(settings.entries_dir), "--index", str(settings.index_dir)]
    command += ["--model", settings.model, "serve", "--port", str(port)]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                # A first search loads the model, so that no timed request pays for it.
                urllib.request.urlopen(f"{url}/search?q=warm+up", timeout=60).read()
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("python -m kb serve did not start") from None
                time.sleep(0.5)
        yield url
    finally:
        stop(process)


def timed(command: list[str]) -> float:
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed: {done.stderr.strip()[-300:]}")
    return seconds


def run_process_bench(settings: Settings, entry_id: str, *, repeats: int = 5, log=lambda message: None) -> dict:
    """Each command `repeats` times, in turns (so a burst of load falls on all of them), after one
    untimed run each that warms the disk cache; the `--api` ones against a server started for them."""
    log("starting the API for the --api rows")
    with api_served(settings) as url:
        return _timed_commands(settings, commands(settings, entry_id, url), repeats, log)


def _timed_commands(settings: Settings, chosen: dict[str, list[str]], repeats: int, log) -> dict:
    for name, command in chosen.items():
        log(f"warming up: {name}")
        timed(command)
    runs: dict[str, list[float]] = {name: [] for name in chosen}
    for turn in range(repeats):
        log(f"turn {turn + 1} of {repeats}")
        for name, command in chosen.items():
            runs[name].append(timed(command))
    floor = statistics.median(runs["python -c pass"])
    entries = sum(1 for _ in settings.entries_dir.glob("*.md"))
    return {
        "entries": entries,
        "repeats": repeats,
        "commands": {
            name: {
                "median_s": round(statistics.median(times), 3),
                "max_s": round(max(times), 3),
                "ratio_to_python": round(statistics.median(times) / floor, 1),
                "target_s": TARGETS.get(name),
            }
            for name, times in runs.items()
        },
    }


def format_report(figures: dict[str, Any]) -> str:
    lines = [
        f"Whole processes at {figures['entries']:,} entries, {figures['repeats']} runs each",
        "",
        f"{'command':<16} {'median s':>9} {'max s':>7} {'× python':>9} {'target s':>9}  met",
    ]
    for name, row in figures["commands"].items():
        target = row["target_s"]
        met = "" if target is None else ("yes" if row["median_s"] <= target else "no")
        lines.append(
            f"{name:<16} {row['median_s']:>9.3f} {row['max_s']:>7.3f} {row['ratio_to_python']:>9.1f} "
            f"{'' if target is None else f'{target:.1f}':>9}  {met}"
        )
    return "\n".join(lines)


def first_entry(entries_dir: Path) -> str:
    return min(path.stem for path in entries_dir.glob("*.md"))
