"""The search-page benchmark's arithmetic: each timed search is matched with the script run its click
started and the `kb.browse.find` call inside that run (no timing here: figures belong to the benchmark)."""

from __future__ import annotations

import json

from bench.app_timing import _recorder
from bench.search_page import _figures, _read, format_report
from kb.config import Settings


def test_each_search_is_matched_with_the_run_it_started_and_the_find_inside_it(tmp_path):
    record = _recorder(tmp_path / "timings.jsonl")
    record("script", 99.0, 2.0)  # the page's first load, before any click
    record("find", 99.5, 0.3)
    record("script", 100.1, 0.4)  # started by the click at 100.0
    record("find", 100.2, 0.1)
    record("script", 103.0, 0.2)  # the next search
    record("find", 103.05, 0.05)
    searches = [
        {"started": 100.0, "seconds": 0.6, "TaskDuration": 0.3, "ScriptDuration": 0.2},
        {"started": 102.9, "seconds": 0.5, "TaskDuration": 0.2, "ScriptDuration": 0.1},
    ]
    for s in searches:
        s |= {"LayoutDuration": 0.01, "RecalcStyleDuration": 0.02}
    (tmp_path / "entries").mkdir()
    figures = _figures(
        searches, _read(tmp_path / "timings.jsonl"), Settings(entries_dir=tmp_path / "entries"), "m", 1, 2, [0.4, 0.6]
    )

    assert figures["searches"] == 2 and figures["search_to_results_s"]["p50"] == 0.55
    server = figures["server"]
    assert server["script_run_s"]["p50"] == 0.3  # 0.4 and 0.2, not the first load's 2.0
    assert server["browse_find_s"]["p50"] == 0.075
    assert server["click_to_script_start_s"]["p50"] == 0.1
    assert server["streamlit_commands_s"]["p50"] == 0.225
    assert figures["map_click_to_entry_s"]["p50"] == 0.5
    report = format_report(figures)
    assert "Search pressed to results on screen: p50 0.55 s" in report
    assert "Insights map: click to entry" in report and "p50  0.500 s" in report
    assert json.loads(json.dumps(figures)) == figures
