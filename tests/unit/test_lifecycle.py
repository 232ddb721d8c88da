"""Lighthouses with a lifecycle: the stage history and its file format, the history an edit adds to, review-by
dates, reuse chains (cycles included) and the collaboration map, as each viewer may see them."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace

import pytest

from kb import KBError, lifecycle
from kb.drafting import Draft, DraftInvalid, save_draft
from kb.editing import open_edit, save_edit
from kb.entries import Entry, Lighthouse, Reuse, StageChange
from kb.entry_files import parse_entry, render_entry
from kb.exporter import export_bytes
from kb.identity import User
from kb.importer import import_table
from kb.mapping import load_mapping
from kb.store import EntryStore
from tests.unit.test_editing import write_entry

OWNER_ORG, OTHER_ORG, THIRD_ORG = "Alpha Office", "Beta Agency", "Gamma Council"
AUTHOR = User("Dee Author", OWNER_ORG, ("contributor",), local=False, email="dee@alpha.example.gov")
EDITOR = User("Ed Editor", OWNER_ORG, ("contributor", "curator"), local=False)  # publishes edits at once
CURATOR = User("Cora Curator", OTHER_ORG, ("curator",), local=False)
OUTSIDER = User("Otto Outsider", OTHER_ORG, ("contributor",), local=False)

FILE = """---
id: shared-ledger
title: Shared ledger
summary: Two offices kept one ledger.
kind: project
outcome: succeeded
organisation: Alpha Office
status: published
visibility: public
lighthouse:
  stage: replicated
  impact: One ledger instead of two.
  reused_by:
  - plain-reuser
  - entry: measured-reuser
    date: 2023-05
    benefit: "saved 40 days of legal work"
  history:
  - {stage: pilot, date: 2021-03, reason: tried in one office}
  - {stage: proven, date: 2022-01-15, reason: a year without a mismatch}
  - {stage: replicated, date: 2023-05, reason: taken up by Beta Agency}
  review_by: 2027-03
---

## Lessons

Agree the columns first.
"""


def test_the_lifecycle_parts_are_read_and_written_back_losslessly():
    entry, warnings = parse_entry(FILE, "shared-ledger.md")
    lh = entry.lighthouse
    assert not warnings
    assert lh.reused_by == ["plain-reuser", "measured-reuser"]  # plain ids are still valid
    assert lh.reuse == {"measured-reuser": Reuse("2023-05", "saved 40 days of legal work")}
    assert [h.stage for h in lh.history] == ["pilot", "proven", "replicated"]
    assert lh.history[1] == StageChange("proven", "2022-01-15", "a year without a mismatch")
    assert lh.review_by == "2027-03"
    again, _ = parse_entry(render_entry(entry), "again.md")
    assert again == entry
    assert "  - plain-reuser\n" in render_entry(entry)  # a reuse with nothing more known stays a plain id


def test_a_bad_part_of_the_history_or_reuse_is_named_and_the_rest_is_kept():
    text = FILE.replace("{stage: proven, date: 2022-01-15", "{stage: provn, date: 2022-01-15").replace(
        "date: 2023-05\n    benefit", "date: 2023-13\n    benefit"
    )
    text = text.replace("review_by: 2027-03", "review_by: next spring")
    entry, warnings = parse_entry(text, "shared-ledger.md")  # still readable: it stays in search
    said = {p.field: p.message for p in warnings}
    assert (
        "'provn' is not a stage; use one of: pilot, proven, replicated, retired" in said["lighthouse.history[2].stage"]
    )
    assert "is not a real calendar date" in said["lighthouse.reused_by[2].date"]
    assert "'next spring' is not a date; write YYYY, YYYY-MM or YYYY-MM-DD" in said["lighthouse.review_by"]
    assert all("shared-ledger.md" in str(p) for p in warnings)
    lh = entry.lighthouse
    assert [h.stage for h in lh.history] == ["pilot", "replicated"]
    assert lh.reused_by == ["plain-reuser", "measured-reuser"] and lh.reuse["measured-reuser"].benefit
    assert not lh.review_by


def test_an_edit_that_changes_the_stage_adds_it_to_the_history_with_its_reason(kb, entries_dir):
    write_entry(
        entries_dir,
        "shared-ledger",
        author=AUTHOR.as_author,
        lighthouse={
            "stage": "pilot",
            "impact": "One ledger.",
            "reused_by": [{"entry": "benefits-and-housing-data-sharing-pilot", "date": "2024-02", "benefit": "fast"}],
            "history": [{"stage": "pilot", "date": "2024-01", "reason": "tried"}],
            "review_by": "2027-01",
        },
    )
    kb.sync()
    target = open_edit(kb, "shared-ledger", EDITOR)
    proven = replace(target.entry, lighthouse=replace(target.entry.lighthouse, stage="proven", history=[]))
    with pytest.raises(KBError, match="say why this lighthouse moved from pilot to proven"):
        save_edit(kb, target, proven, EDITOR, status="published")
    save_edit(kb, target, proven, EDITOR, status="published", stage_reason="  a year  without a mismatch ")
    lh = kb.stored("shared-ledger").lighthouse
    today = dt.date.today().isoformat()
    assert lh.history == [
        StageChange("pilot", "2024-01", "tried"),
        StageChange("proven", today, "a year without a mismatch"),
    ]
    assert lh.reuse["benefits-and-housing-data-sharing-pilot"] == Reuse("2024-02", "fast")  # kept

    # The form: a stage change needs its reason, said at the field; an edit that keeps the stage does not.
    draft = Draft.from_entry(kb.stored("shared-ledger"))
    assert draft.lighthouse_review_by == "2027-01"
    draft.lighthouse_stage = "replicated"
    with pytest.raises(DraftInvalid) as caught:
        save_draft(kb, draft, EDITOR, status="published", edit_id="shared-ledger")
    assert "Say why the stage changed from proven to replicated" in caught.value.messages["lighthouse_stage_reason"][0]
    draft.lighthouse_stage_reason = "Beta Agency took it up"
    draft.lighthouse_review_by = "2027-06"
    save_draft(kb, draft, EDITOR, status="published", edit_id="shared-ledger")
    lh = kb.stored("shared-ledger").lighthouse
    assert [h.stage for h in lh.history] == ["pilot", "proven", "replicated"] and lh.review_by == "2027-06"
    assert lh.history[-1].reason == "Beta Agency took it up"
    assert lh.reuse["benefits-and-housing-data-sharing-pilot"].benefit == "fast"  # the form does not show it
    draft = Draft.from_entry(kb.stored("shared-ledger"))
    draft.lighthouse_impact = "One ledger, three offices."
    save_draft(kb, draft, EDITOR, status="published", edit_id="shared-ledger")
    assert len(kb.stored("shared-ledger").lighthouse.history) == 3


def test_review_by_dates_make_a_lighthouse_due_and_a_missing_one_counts_as_due():
    today = dt.date(2026, 4, 1)
    assert lifecycle.review_state(Lighthouse("proven", review_by="2026-03"), today) == lifecycle.DUE
    assert lifecycle.review_state(Lighthouse("proven", review_by="2026-04"), today) == ""  # by the end of April
    assert lifecycle.review_state(Lighthouse("proven", review_by="2026-04-01"), today) == ""
    assert lifecycle.review_state(Lighthouse("proven", review_by="2025"), today) == lifecycle.DUE
    assert lifecycle.review_state(Lighthouse("proven"), today) == lifecycle.MISSING
    assert lifecycle.review_state(None, today) == ""


def test_due_lighthouses_are_the_viewer_s_own_or_every_one_a_curator_may_see(kb, entries_dir):
    lighthouse = {"stage": "proven", "impact": "x", "review_by": "2020-01"}
    write_entry(entries_dir, "own-overdue", author=AUTHOR.as_author, lighthouse=lighthouse)
    write_entry(entries_dir, "contact-overdue", contact="DEE@alpha.example.gov", lighthouse=lighthouse)
    write_entry(
        entries_dir, "hidden-overdue", visibility="organisation", author=AUTHOR.as_author, lighthouse=lighthouse
    )
    write_entry(entries_dir, "draft-overdue", status="draft", author=AUTHOR.as_author, lighthouse=lighthouse)
    write_entry(entries_dir, "in-time", author=AUTHOR.as_author, lighthouse={**lighthouse, "review_by": "2099"})
    kb.sync()
    mine = {d.entry.id for d in lifecycle.due_for(kb, AUTHOR)}
    assert mine == {"own-overdue", "contact-overdue", "hidden-overdue"}  # by name, and by e-mail as contact
    everything = {d.entry.id for d in lifecycle.due_for(kb, CURATOR)}
    assert {"own-overdue", "contact-overdue"} <= everything and "hidden-overdue" not in everything  # Alpha only
    assert "draft-overdue" not in everything and "in-time" not in everything
    assert "reproducible-analytical-pipelines-for-official-statistics" in everything  # a sample, due 2025-12
    assert lifecycle.due_for(kb, OUTSIDER) == []


def test_a_reuse_chain_follows_reuses_of_reuses_in_date_order_and_stops_at_a_cycle(kb, entries_dir):
    def lighthouse(*reusers):
        return {"stage": "replicated", "impact": "x", "reused_by": list(reusers)}

    write_entry(entries_dir, "chain-a", lighthouse=lighthouse({"entry": "chain-b", "date": "2023-01", "benefit": "b"}))
    write_entry(
        entries_dir,
        "chain-b",
        organisation=OTHER_ORG,
        lighthouse=lighthouse({"entry": "chain-c", "date": "2022-06", "benefit": "c"}, "chain-hidden"),
    )
    write_entry(entries_dir, "chain-c", organisation=THIRD_ORG, lighthouse=lighthouse("chain-a", "chain-b"))  # loops
    write_entry(entries_dir, "chain-hidden", organisation=THIRD_ORG, visibility="organisation")
    kb.sync()
    steps = lifecycle.reuse_chain(kb, "chain-a", OUTSIDER)
    assert [(s.entry_id, s.reused, s.date, s.benefit, s.depth) for s in steps] == [
        ("chain-c", "chain-b", "2022-06", "c", 2),
        ("chain-b", "chain-a", "2023-01", "b", 1),
    ]
    assert "chain-hidden" in {s.entry_id for s in lifecycle.reuse_chain(kb, "chain-a", None)}  # the operator
    assert lifecycle.reuse_chain(kb, "chain-hidden", OUTSIDER) == []


def test_the_collaboration_map_joins_organisations_by_shared_entries_and_reuse_but_never_by_hidden_ones(
    kb, entries_dir
):
    write_entry(
        entries_dir, "map-lighthouse", lighthouse={"stage": "proven", "impact": "x", "reused_by": ["map-reuser"]}
    )
    write_entry(entries_dir, "map-reuser", organisation=OTHER_ORG)
    write_entry(entries_dir, "map-shared", organisation=OTHER_ORG, partners=[THIRD_ORG, OWNER_ORG])
    write_entry(entries_dir, "map-hidden", organisation="Delta Unit", partners=[OWNER_ORG], visibility="organisation")
    write_entry(
        entries_dir,
        "map-hidden-lighthouse",
        organisation="Delta Unit",
        visibility="organisation",
        lighthouse={"stage": "proven", "impact": "x", "reused_by": ["map-reuser"]},
    )
    kb.sync()
    graph = lifecycle.collaboration_map(kb, OUTSIDER)
    names = [n.organisation for n in graph.nodes]
    assert "Delta Unit" not in names and {OWNER_ORG, OTHER_ORG, THIRD_ORG} <= set(names)
    alpha_beta = graph.edge(OWNER_ORG, OTHER_ORG)
    assert alpha_beta.shared == ("map-shared",) and alpha_beta.reuses == (("map-lighthouse", "map-reuser"),)
    assert alpha_beta.kinds == (lifecycle.SHARED, lifecycle.REUSED)
    assert graph.edge(THIRD_ORG, OTHER_ORG).shared == ("map-shared",) and not graph.edge(OTHER_ORG, THIRD_ORG).reuses
    assert all("Delta Unit" not in (e.source, e.target) for e in graph.edges)
    assert all("map-hidden" not in e.entries and "map-hidden-lighthouse" not in e.entries for e in graph.edges)
    assert "map-shared" in graph.entries_of(THIRD_ORG) and graph.titles["map-shared"] == "Map shared"
    operator = lifecycle.collaboration_map(kb, None)  # who sees everything sees the hidden edges too
    assert operator.edge("Delta Unit", OWNER_ORG).shared == ("map-hidden",)
    assert operator.edge("Delta Unit", OTHER_ORG).reuses == (("map-hidden-lighthouse", "map-reuser"),)
    layout = lifecycle.circle_layout(names)
    assert layout == lifecycle.circle_layout(names) and layout[names[0]] == (0.0, 1.0)


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "xlsx"])
def test_an_export_carries_the_lifecycle_and_imports_back(tmp_path, empty_entries_dir, fmt):
    entry, _ = parse_entry(FILE, "shared-ledger.md")
    path = tmp_path / f"export.{fmt}"
    path.write_bytes(export_bytes([entry], fmt))
    if fmt != "xlsx":
        text = path.read_text(encoding="utf-8")
        assert "measured-reuser (2023-05): saved 40 days of legal work" in text
        assert "2022-01-15 proven: a year without a mismatch" in text
    store = EntryStore(empty_entries_dir)
    report = import_table(store, path, load_mapping(None))
    assert not report.problems, report.problems
    assert store.get("shared-ledger").lighthouse == entry.lighthouse


def test_who_hears_of_a_due_lighthouse_is_kb_access_s_rule(kb, entries_dir, monkeypatch):
    from kb import access

    entry = Entry(id="x", title="X", summary="", kind="project", outcome="", organisation=OWNER_ORG, author="Al")
    assert access.owns_lighthouse(User("Al", OWNER_ORG, (), local=False), entry)
    by_mail = replace(entry, author="", contact=" DEE@alpha.example.gov ")
    assert access.owns_lighthouse(AUTHOR, by_mail) and not access.owns_lighthouse(OUTSIDER, by_mail)
    assert not access.owns_lighthouse(None, entry) and not access.owns_lighthouse(access.ANONYMOUS, entry)
    assert access.hears_of_every_due_lighthouse(CURATOR) and not access.hears_of_every_due_lighthouse(AUTHOR)

    lighthouse = {"stage": "proven", "impact": "x", "review_by": "2020-01"}
    write_entry(entries_dir, "own-overdue", author=AUTHOR.as_author, lighthouse=lighthouse)
    kb.sync()
    assert "reproducible-analytical-pipelines-for-official-statistics" in {
        d.entry.id for d in lifecycle.due_for(kb, CURATOR)
    }
    # lifecycle asks kb.access, and nothing else: change the rule there and who hears changes with it
    monkeypatch.setattr(access, "hears_of_every_due_lighthouse", lambda viewer: False)
    monkeypatch.setattr(access, "owns_lighthouse", lambda viewer, entry: entry.id == "own-overdue")
    assert {d.entry.id for d in lifecycle.due_for(kb, CURATOR)} == {"own-overdue"}


def test_a_retired_lighthouse_is_never_due_for_review(kb, entries_dir):
    today = dt.date(2026, 4, 1)
    assert lifecycle.review_state(Lighthouse("retired"), today) == ""
    assert lifecycle.review_state(Lighthouse("retired", review_by="2020-01"), today) == ""
    write_entry(entries_dir, "retired-undated", author=AUTHOR.as_author, lighthouse={"stage": "retired", "impact": "x"})
    kb.sync()
    assert "retired-undated" not in {d.entry.id for d in lifecycle.due_for(kb, CURATOR)}
    assert "retired-undated" not in {d.entry.id for d in lifecycle.due_for(kb, AUTHOR)}


def test_a_new_lighthouse_starts_its_timeline_with_its_first_stage(kb):
    today = dt.date.today().isoformat()
    draft = Draft(title="A ledger pilot", lighthouse_stage="pilot", lighthouse_impact="One ledger.")
    saved = save_draft(kb, draft, AUTHOR, status="draft")
    assert kb.stored(saved.id).lighthouse.history == [StageChange("pilot", today, "")]  # no reason needed at first
    draft = Draft.from_entry(kb.stored(saved.id))
    draft.lighthouse_stage, draft.lighthouse_stage_reason = "proven", "a year without a mismatch"
    save_draft(kb, draft, AUTHOR, status="draft", edit_id=saved.id)
    assert [(h.stage, h.reason) for h in kb.stored(saved.id).lighthouse.history] == [
        ("pilot", ""),
        ("proven", "a year without a mismatch"),
    ]
    draft = Draft.from_entry(kb.stored(saved.id))  # an edit that keeps the stage adds nothing
    draft.lighthouse_impact = "One ledger, two offices."
    save_draft(kb, draft, AUTHOR, status="draft", edit_id=saved.id)
    assert len(kb.stored(saved.id).lighthouse.history) == 2
    # an entry given with its history already (an import) is not given a second first step
    kept = lifecycle.record_stage_change(kb.stored(saved.id), None)
    assert len(kept.lighthouse.history) == 2


def test_the_form_takes_when_each_reuse_happened_and_its_benefit_and_keeps_them_on_edit(kb):
    month = dt.date.today().isoformat()[:7]
    first, second = "benefits-and-housing-data-sharing-pilot", "emergency-food-parcel-data-share"
    draft = Draft(
        title="A ledger that spread",
        lighthouse_stage="replicated",
        lighthouse_impact="One ledger.",
        lighthouse_reused_by=[first, second],
        lighthouse_reuse=f"- {first} (2024-05): saved  40 days\n",
    )
    saved = save_draft(kb, draft, AUTHOR, status="draft")
    lh = kb.stored(saved.id).lighthouse
    assert lh.reuse == {first: Reuse("2024-05", "saved 40 days"), second: Reuse(month, "")}  # added: this month
    draft = Draft.from_entry(kb.stored(saved.id))
    assert draft.lighthouse_reuse.splitlines() == [f"{first} (2024-05): saved 40 days", f"{second} ({month})"]
    draft.lighthouse_reuse = f"{second}: took six weeks"  # says nothing of the first, nor of the second's date
    save_draft(kb, draft, AUTHOR, status="draft", edit_id=saved.id)
    assert kb.stored(saved.id).lighthouse.reuse == {
        first: Reuse("2024-05", "saved 40 days"),
        second: Reuse(month, "took six weeks"),
    }
    draft.lighthouse_reuse = "\n".join(
        [f"{first} (May 2024): x", "not-chosen (2024): y", f"{first} (2024-13)", "(2024): no id"]
    )
    with pytest.raises(DraftInvalid) as caught:
        save_draft(kb, draft, AUTHOR, status="draft", edit_id=saved.id)
    said = caught.value.messages["lighthouse_reuse"]
    assert "'May 2024' is not a date; write YYYY, YYYY-MM or YYYY-MM-DD" in said[0]
    assert "not-chosen is not in Reused by" in said[1] and "'2024-13' is not a date" in said[2]
    assert "write the entry's id, the date in brackets, then the benefit" in said[3]


def test_the_map_takes_an_organisation_whatever_its_case_and_spacing(kb, entries_dir):
    write_entry(entries_dir, "case-one", organisation="Home Office", partners=["Beta  Agency"])
    write_entry(entries_dir, "case-two", organisation="home office", partners=["beta agency"])
    write_entry(entries_dir, "case-three", organisation=" Home  Office ")
    kb.sync()
    graph = lifecycle.collaboration_map(kb, None)
    homes = [n for n in graph.nodes if n.organisation.casefold() == "home office"]
    assert [n.organisation for n in homes] == ["Home Office"]  # as most entries write it
    assert set(homes[0].entries) == {"case-one", "case-two", "case-three"}
    assert graph.edge("HOME OFFICE", "beta agency").shared == ("case-one", "case-two")
    assert graph.entries_of("home  office") == homes[0].entries
    assert "Beta Agency" in graph.partners_of("Home Office")
