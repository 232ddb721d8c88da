"""Plan to prior lessons: splitting a pasted plan, searching each part, each part keeping its lessons."""

from __future__ import annotations

import json

from click.testing import CliRunner

from kb.cli import cli
from kb.plan import MAX_PART_WORDS, plan_search, plan_summary, split_plan

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


def test_a_plan_written_one_step_per_line_is_split_by_line_but_wrapped_prose_is_not():
    steps = (
        "Timeline:\nShare housing records with the benefits team\nMatch records across two councils\nBuild a dashboard"
    )
    assert split_plan(steps) == [
        "Share housing records with the benefits team",
        "Match records across two councils",
        "Build a dashboard",
    ]
    wrapped = "We will agree a data sharing agreement with the\ncouncil before any data moves, and publish it.\n"
    assert split_plan(wrapped) == [
        "We will agree a data sharing agreement with the council before any data moves, and publish it."
    ]


def test_every_part_keeps_its_own_lessons_failures_first(kb):
    result = plan_search(kb, PLAN, per_part=3)
    assert [p.text for p in result.parts] == split_plan(PLAN)
    assert [p.number for p in result.parts] == [1, 2, 3]
    for part in result.parts:
        assert 1 <= len(part.matches) <= 3, part.text
        assert max(m.relevance for m in part.matches) <= 1.0
        failed = [m.hit.outcome in ("failed", "stopped") for m in part.matches]
        assert failed == sorted(failed, reverse=True), "failures and stopped work come first within a part"
        assert all(m.hit.passage for m in part.matches)
    ids = [h.id for h in result.hits]
    assert len(ids) == len(set(ids)), "each entry once"


def test_a_part_whose_scores_are_low_still_keeps_its_best_lessons(kb):
    """Scores of different parts are not compared: a short, specific part with low raw scores keeps the
    lessons that are best for it, which taking the top by raw score across the plan dropped."""
    specific = "Record matching across councils."
    broad = "\n\n".join(
        f"We will agree a data sharing agreement with the council and share data, step {n}." for n in range(6)
    )
    alone = [h.id for h in kb.search(specific, limit=3)]
    result = plan_search(kb, broad + "\n\n" + specific, per_part=3)
    last = result.parts[-1]
    assert last.text == specific and last.matches, "the specific part is not crowded out"
    kept = {m.hit.id for m in last.matches}
    taken_elsewhere = {h.id for p in result.parts[:-1] for h in (m.hit for m in p.matches)}
    assert set(alone) <= kept | taken_elsewhere, "its best lessons are kept, here or under another part"
    assert kept & set(alone)


def test_how_the_plan_was_read_is_said_in_words():
    assert plan_summary(1, 1) == (
        "Your plan was read as one part, with 1 prior lesson. Put each step on its own line to get lessons for every step."
    )
    assert plan_summary(3, 7).startswith("Your plan, read as 3 parts, has 7 prior lessons")


def test_cli_plan_search(kb, tmp_path):
    plan = tmp_path / "plan.md"
    plan.write_text(PLAN)
    result = CliRunner().invoke(cli, ["search", "--plan", str(plan), "--json"], catch_exceptions=False)
    assert result.exit_code == 0
    data = json.loads(result.output)
    assert [p["number"] for p in data["parts"]] == [1, 2, 3]
    assert all(p["text"] and p["matches"] and 0 < p["matches"][0]["relevance"] <= 1 for p in data["parts"])
    text = CliRunner().invoke(cli, ["search", "--plan", str(plan), "--limit", "1"], catch_exceptions=False).output
    assert "read as 3 parts" in text and text.count("\n- ") == 3, "one lesson for each part"
    both = CliRunner().invoke(cli, ["search", "x", "--plan", str(plan)])
    assert both.exit_code == 2 and "either a QUERY or --plan" in both.output
