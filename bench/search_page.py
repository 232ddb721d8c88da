"""Press Search, see results: the search page in headless Chromium on a real register (NASA's 2,100
lessons by default), and where the time goes. Figures, never a timed test.

For each query the page is opened afresh (the empty search page), the query typed, and the time taken
from the click on Search to the results line ("… best matches among …") on screen. Then a few clicks on
a point of the Insights map, each timed until its entry's title is on screen. Beside the searches:

- on the server, from `bench.app_timing`: the page's script run that the click started, and within it
  `kb.browse.find` (the search, facet counts and the in-scope count); the rest of the run is the page's
  own Streamlit commands (widgets, cards) and sending them;
- in the browser, from Chrome's performance counters (DevTools protocol): how long its main thread was
  busy over the same interval, and how much of that was script, style and layout.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np

from bench.browser import CHROMIUM, CHROMIUM_ARGS, FREE_MAP_POINT, RESULTS_LINE, free_port, stop
from bench.register import DEFAULT_QUERIES, import_register
from kb.config import Settings
from kb.errors import KBError

WARM_UP = 2  # searches not counted: the app's first search loads the model and fills its caches
MAP_CLICKS = 5  # clicks on a point of the Insights map, each timed until its entry is on screen
BROWSER_METRICS = ("TaskDuration", "ScriptDuration", "LayoutDuration", "RecalcStyleDuration")


def prepare(register: Path, mapping: Path, work: Path, model: str, backend: str, log) -> Settings:
    """The register's entries under work/entries, synced into work/index (kept between runs: only what
    changed is embedded again)."""
    from kb.embedder import make_embedder
    from kb.knowledge import KnowledgeBase

    settings = Settings(entries_dir=work / "entries", index_dir=work / "index", chroma_url=None, model=model)
    log(f"importing {register.name} into {settings.entries_dir} ...")
    import_register(register, mapping, settings.entries_dir)
    log("syncing (minutes the first time: every passage is embedded) ...")
    report = KnowledgeBase(settings, embedder=make_embedder(model, backend)).sync()
    log(f"  {report.summary()}")
    return settings


def _summary(values: list[float], digits: int = 3) -> dict[str, float]:
    array = np.asarray(values, dtype=float)
    if not len(array):
        return {"p50": float("nan"), "p95": float("nan")}
    return {
        "p50": round(float(np.percentile(array, 50)), digits),
        "p95": round(float(np.percentile(array, 95)), digits),
    }


def _load() -> float:
    return round(os.getloadavg()[0], 2)


def run_search_page_bench(
    register: Path,
    mapping: Path,
    *,
    work_dir: Path,
    model: str,
    backend: str = "torch",
    queries: int = len(DEFAULT_QUERIES),
    log=lambda message: None,
) -> dict[str, Any]:
    """Time `queries` searches from the page (the default queries, repeated as needed); see the module."""
    from playwright.sync_api import sync_playwright

    if not CHROMIUM.is_file():
        raise KBError(f"{CHROMIUM} is absent (apt-get install chromium)")
    work_dir = Path(work_dir).resolve()
    settings = prepare(register, mapping, work_dir, model, backend, log)
    timings = work_dir / "app-timings.jsonl"
    timings.unlink(missing_ok=True)
    port = free_port()
    env = {
        **os.environ,
        "KB_ENTRIES_DIR": str(settings.entries_dir),
        "KB_INDEX_DIR": str(settings.index_dir),
        "KB_MODEL": model,
        "KB_MODEL_BACKEND": backend,
    }
    for name in ("KB_CHROMA_URL", "KB_USER_NAME", "KB_USER_ORGANISATION", "KB_USER_ROLES"):
        env.pop(name, None)  # local mode, as someone trying Lighthouse on their laptop
    root = Path(__file__).resolve().parent.parent
    command = [
        *(sys.executable, "-m", "bench.app_timing", str(timings), "run", str(root / "app.py")),
        *("--server.port", str(port), "--server.address", "127.0.0.1", "--server.headless", "true"),
        *("--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none"),
    ]
    app = subprocess.Popen(command, cwd=root, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    texts = [DEFAULT_QUERIES[n % len(DEFAULT_QUERIES)] for n in range(WARM_UP + queries)]
    load_before = _load()
    searches: list[dict[str, float]] = []
    try:
        _wait_until_healthy(url, app, 120)
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            cdp = page.context.new_cdp_session(page)
            cdp.send("Performance.enable")
            log(f"timing {queries} searches in the browser (and {WARM_UP} to warm up) ...")
            for n, text in enumerate(texts):
                page.goto(url)
                page.get_by_text("Newest entries").wait_for(timeout=300_000)
                page.wait_for_function("() => !document.querySelector('[data-testid=\"stStatusWidget\"]')")
                box = page.get_by_placeholder("Ask a question")
                box.fill(text)
                before = _metrics(cdp)
                started = time.time()
                page.get_by_role("button", name="Search", exact=True).click()
                page.get_by_text(RESULTS_LINE).first.wait_for(timeout=60_000)
                seen = time.time()
                after = _metrics(cdp)
                if n >= WARM_UP:
                    searches.append(
                        {"started": started, "seconds": seen - started}
                        | {name: after[name] - before[name] for name in BROWSER_METRICS}
                    )
            log(f"timing {MAP_CLICKS} clicks on a point of the Insights map ...")
            map_clicks = [_map_click(page, url) for _ in range(MAP_CLICKS)]
            browser.close()
    finally:
        stop(app)
    return _figures(searches, _read(timings), settings, model, load_before, _load(), map_clicks)


def _map_click(page, url: str) -> float:
    """Seconds from a click on a point of the Insights map to its entry's title on screen."""
    page.goto(f"{url}/insights")
    page.get_by_text("Map of the collection", exact=True).wait_for(timeout=300_000)
    page.wait_for_function("() => !document.querySelector('[data-testid=\"stStatusWidget\"]')")
    page.locator("[data-testid='stVegaLiteChart']").last.scroll_into_view_if_needed()
    point = page.evaluate(FREE_MAP_POINT) or _point_by_hover(page)
    if point is None:
        raise KBError("the Insights map has no point that another does not cover")
    started = time.time()
    page.mouse.click(point["x"], point["y"])
    page.get_by_role("heading", name=point["title"]).wait_for(timeout=60_000)
    return time.time() - started


def _point_by_hover(page) -> dict[str, Any] | None:
    """A point of a map Vega drew on a canvas (a large collection): the mouse moves out from the chart's
    centre until the tooltip names an entry; its place and that title."""
    canvas = page.locator("[data-testid='stVegaLiteChart']").last.locator("canvas").first
    canvas.wait_for(timeout=60_000)
    tooltip = page.locator("#vg-tooltip-element")
    for _ in range(5):  # the chart may still be drawing its points and binding its tooltip
        canvas.scroll_into_view_if_needed()
        box = canvas.bounding_box()
        if box is None:
            return None
        cx, cy = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
        for dx, dy in ((dx, dy) for r in range(0, 120, 8) for dx in (-r, r) for dy in (-r, 0, r)):
            page.mouse.move(cx + dx, cy + dy)
            page.wait_for_timeout(20)
            if tooltip.count() and tooltip.is_visible():
                found = re.search(r"Title\s+(.+?)\s*\n", tooltip.inner_text() + "\n")
                if found:
                    return {"x": cx + dx, "y": cy + dy, "title": found.group(1).strip()}
        page.wait_for_timeout(1000)
    return None


def _wait_until_healthy(url: str, app: subprocess.Popen, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if app.poll() is not None:
            raise KBError(f"the app exited with status {app.returncode}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise KBError(f"the app did not answer at {url} within {seconds:.0f} s")


def _metrics(cdp) -> dict[str, float]:
    return {m["name"]: m["value"] for m in cdp.send("Performance.getMetrics")["metrics"]}


def _read(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _figures(
    searches: list[dict[str, float]],
    server: list[dict[str, Any]],
    settings: Settings,
    model: str,
    load_before: float,
    load_after: float,
    map_clicks: list[float],
) -> dict[str, Any]:
    """Each search matched with the script run its click started and the `find` call inside that run;
    and the clicks on a point of the Insights map."""
    script, find, waited = [], [], []
    for search in searches:
        start, end = search["started"], search["started"] + search["seconds"]
        runs = [r for r in server if r["what"] == "script" and start <= r["start"] <= end]
        if not runs:
            continue
        run = runs[0]
        script.append(run["seconds"])
        waited.append(run["start"] - start)
        inside = [
            f for f in server if f["what"] == "find" and run["start"] <= f["start"] <= run["start"] + run["seconds"]
        ]
        find.append(sum(f["seconds"] for f in inside))
    entries = sum(1 for _ in Path(settings.entries_dir).glob("*.md"))
    return {
        "entries": entries,
        "model": model,
        "searches": len(searches),
        "load_average": {"before": load_before, "after": load_after},
        "search_to_results_s": _summary([s["seconds"] for s in searches], 2),
        "server": {
            "click_to_script_start_s": _summary(waited),
            "script_run_s": _summary(script),
            "browse_find_s": _summary(find),
            "streamlit_commands_s": _summary([s - f for s, f in zip(script, find, strict=True)]),
        },
        "browser_main_thread": {
            "busy_s": _summary([s["TaskDuration"] for s in searches]),
            "script_s": _summary([s["ScriptDuration"] for s in searches]),
            "style_s": _summary([s["RecalcStyleDuration"] for s in searches]),
            "layout_s": _summary([s["LayoutDuration"] for s in searches]),
        },
        "map_click_to_entry_s": _summary(map_clicks, 2),
    }


def format_report(f: dict[str, Any]) -> str:
    def line(label: str, figures: dict[str, float], unit: str = "s") -> str:
        return f"  {label:<34} p50 {figures['p50']:>6.3f} {unit}   p95 {figures['p95']:>6.3f} {unit}"

    total, server, browser = f["search_to_results_s"], f["server"], f["browser_main_thread"]
    return "\n".join(
        [
            f"{f['entries']} entries, model {f['model']}, {f['searches']} searches; "
            f"load average {f['load_average']['before']} before, {f['load_average']['after']} after",
            f"Search pressed to results on screen: p50 {total['p50']:.2f} s, p95 {total['p95']:.2f} s",
            "where the time goes:",
            line("click to the script run starting", server["click_to_script_start_s"]),
            line("server: the page's script run", server["script_run_s"]),
            line("  of which kb.browse.find", server["browse_find_s"]),
            line("  of which Streamlit commands", server["streamlit_commands_s"]),
            line("browser main thread busy", browser["busy_s"]),
            line("  of which script", browser["script_s"]),
            line("  of which style", browser["style_s"]),
            line("  of which layout", browser["layout_s"]),
            line("Insights map: click to entry", f["map_click_to_entry_s"]),
        ]
    )
