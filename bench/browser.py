"""Debian's Chromium as the browser benchmarks and the browser tests run it on this closed network, and
the app or server process they start beside it."""

from __future__ import annotations

import re
import socket
import subprocess
from pathlib import Path

CHROMIUM = Path("/usr/bin/chromium")
# The search page's results line: "12 best matches among 2,100 entries", or "8 close matches among ..."
# where the model judges closeness (app_pages/search.py, match_count).
RESULTS_LINE = re.compile(r"(best|close) match(es)? among")
# The Insights map's first point that no other point covers: its centre and the entry title its
# description names (app_pages/insights.py). None when the map has no such point.
FREE_MAP_POINT = """() => {
  const marks = [...document.querySelectorAll("[data-testid='stVegaLiteChart']")].pop()
      .querySelectorAll('svg .role-mark path');
  for (const mark of marks) {
    const r = mark.getBoundingClientRect(), x = r.x + r.width / 2, y = r.y + r.height / 2;
    const title = (mark.getAttribute('aria-label') || '').match(/Title: (.*?); Organisation:/);
    if (title && document.elementFromPoint(x, y) === mark) return {x, y, title: title[1]};
  }
  return null;
}"""
# Without the background-networking flags Chromium keeps trying hosts this network refuses.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def free_port() -> int:
    """A port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def stop(process: subprocess.Popen) -> None:
    """Ask the process to end, and make it if it will not."""
    process.terminate()
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=20)
