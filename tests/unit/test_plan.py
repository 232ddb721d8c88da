"""Plan to prior lessons: splitting a pasted plan, searching each part, grouping failures first."""

from __future__ import annotations

import json

from click.testing import CliRunner

from kb.cli import cli
from kb.plan import MAX_PART_WORDS, plan_search, split_plan

PLAN = """# Attendance data pilot

We will agree a data sharing agreement with the council before any data moves.

- The council's case management system is old; the supplier must build an export.
- We will build a weekly dashboard for the family support team.

ok.
"""


def test_split_plan_into_paragraphs_and_list_items_dropping_scraps():
    parts = split_plan(PLAN)
    assert parts == [
        "We will agree a data sharing agreement with the council before any data moves.",
        "The council's case management system is old; the supplier must build an export.",
        "We will build a weekly dashboard for the family support team.",
    ]


def test_long_paragraphs_are_cut_at_sentence_ends():
    paragraph = " ".join(f"Sentence number {i} says something about the work." for i in range(40))
    parts = split_plan(paragraph)
    assert len(parts) > 1 and all(len(p.split()) <= MAX_PART_WORDS for p in parts)
    assert " ".join(parts) == paragraph
    assert split_plan("too short") == ["too short"]  # a one-line query is still searched


def test_plan_results_are_grouped_failures_first_with_the_matching_part(kb):
    result = plan_search(kb, PLAN, per_part=5, limit=12)
    assert [g.key for g in result.groups][0] == "failed"
    order = {"failed": 0, "partial": 1, "worked": 2}
    assert [order[g.key] for g in result.groups] == sorted(order[g.key] for g in result.groups)
    for group in result.groups:
        for match in group.matches:
            assert match.part_text == result.parts[match.part]
            assert match.hit.passage
            if group.key == "failed":
                assert match.hit.outcome in ("failed", "stopped")
    ids = [m.hit.id for g in result.groups for m in g.matches]
    assert len(ids) == len(set(ids)) <= 12  # each entry once


def test_cli_plan_search(kb, tmp_path):
    plan = tmp_path / "plan.md"
    plan.write_text(PLAN)
    result = CliRunner().invoke(cli, ["search", "--plan", str(plan), "--json"], catch_exceptions=False)
    assert result.exit_code == 0
    data = json.loads(result.output)
    assert len(data["parts"]) == 3 and data["groups"][0]["matches"][0]["part_text"]
    both = CliRunner().invoke(cli, ["search", "x", "--plan", str(plan)])
    assert both.exit_code == 2 and "either a QUERY or --plan" in both.output
