"""The command-line benchmark times every command as a whole process, the --api rows against a server
it starts itself, and reports each beside an empty Python process and its target."""

from __future__ import annotations

from bench.processes import format_report, run_process_bench


def test_every_command_is_timed_and_the_api_rows_ask_a_server_it_starts(kb):
    kb.sync()
    figures = run_process_bench(kb.settings, "benefits-and-housing-data-sharing-pilot", repeats=1)
    rows = figures["commands"]
    assert list(rows) == [
        "python -c pass",
        "show",
        "check",
        "stats",
        "search",
        "similar",
        "search --api",
        "similar --api",
    ]
    assert all(row["median_s"] > 0 and row["ratio_to_python"] >= 1 for row in rows.values())
    assert rows["search --api"]["target_s"] == rows["search"]["target_s"] == 2.0
    report = format_report(figures)
    assert "search --api" in report and figures["entries"] >= 40
