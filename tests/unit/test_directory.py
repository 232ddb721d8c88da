"""Whom to ask (kb.directory): the teams behind the entries, others on the same themes and one organisation's
page, over exactly what a viewer may see: anonymous entries add no team, hidden ones nothing at all."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from kb import KBError, KnowledgeBase, NotFound, Settings
from kb.access import ANONYMOUS, member_of
from kb.directory import by_organisation, directory, matches, organisation, others_on_this
from kb.embedder import HashingEmbedder
from kb.identity import User

ALPHA, BETA, GAMMA, DELTA = "Alpha Office", "Beta Agency", "Gamma Council", "Delta Unit"
AUTHOR = "Ann Author"
REVIEWER = User("Rita Reviewer", GAMMA, ("reviewer",), local=False)
THE_AUTHOR = User(AUTHOR, ALPHA, ("contributor",), local=False)
READERS = [ANONYMOUS, member_of(ALPHA), member_of(GAMMA), User("Cat", ALPHA, ("contributor",), local=False)]
SECRET_TEAM, SECRET_CONTACT = "Quiet Reconciliation Team", "quiet@alpha.example.gov"


def write(folder: Path, entry_id: str, **fields) -> None:
    front = {
        "id": entry_id,
        "title": entry_id.replace("-", " ").capitalize(),
        "summary": f"What {entry_id} taught us.",
        "kind": "project",
        "outcome": "succeeded",
        "status": "published",
        "visibility": "public",
        **fields,
    }
    text = yaml.safe_dump(front, sort_keys=False)
    (folder / f"{entry_id}.md").write_text(f"---\n{text}---\n\n## Lessons\n\nShare early.\n", encoding="utf-8")


COLLECTION = {
    "alpha-dsa-pilot": dict(
        organisation=ALPHA,
        team="Sharing Team",
        contact="share@alpha.example.gov",
        themes=["data-sharing-agreements", "data-governance"],
        partners=[GAMMA],
        started="2021-01",
        ended="2022-03",
        lighthouse={
            "stage": "replicated",
            "impact": "Six legal teams said yes.",
            "reused_by": ["beta-reuse", "beta-hidden", "delta-secret"],
        },
    ),
    "alpha-linkage-trial": dict(
        organisation=ALPHA,
        team="sharing team",  # the same team, whatever the case
        kind="experiment",
        outcome="failed",
        themes=["record-linkage"],
        started="2019-02",
        ended="2019-09",
    ),
    "alpha-quiet-failure": dict(
        organisation=ALPHA,
        team=SECRET_TEAM,
        contact=SECRET_CONTACT,
        anonymous=True,
        author=AUTHOR,
        kind="experiment",
        outcome="stopped",
        themes=["data-quality", "data-sharing-agreements"],
        started="2024-01",
    ),
    "beta-reuse": dict(
        organisation=BETA,
        team="Beta Analytics",
        contact="analytics@beta.example.gov",
        themes=["data-sharing-agreements"],
        started="2023-05",
        ended="2024-02",
    ),
    "beta-hidden": dict(
        organisation=BETA,
        team="Beta Hidden Unit",
        visibility="organisation",
        themes=["data-sharing-agreements", "data-governance"],
        started="2022-01",
    ),
    "beta-draft": dict(organisation=BETA, team="Beta Draft Team", status="draft", themes=["data-governance"]),
    "beta-contact-only": dict(
        organisation=BETA, contact="ops@beta.example.gov", outcome="ongoing", themes=["open-data"], started="2024-03"
    ),
    "gamma-old": dict(organisation=GAMMA, team="Gamma Data", themes=["data-governance"], started="2018-04"),
    "delta-secret": dict(
        organisation=DELTA, team="Delta Insight", visibility="organisation", themes=["data-sharing-agreements"]
    ),
}


def make_kb(tmp_path: Path, empty_entries_dir: Path, leave_out: tuple[str, ...] = ()) -> KnowledgeBase:
    for entry_id, fields in COLLECTION.items():
        if entry_id not in leave_out:
            write(empty_entries_dir, entry_id, **fields)
    settings = Settings(entries_dir=empty_entries_dir, index_dir=tmp_path / "index", chroma_url=None, model="x")
    kb = KnowledgeBase(settings, embedder=HashingEmbedder())
    kb.sync()
    return kb


@pytest.fixture
def people(tmp_path, empty_entries_dir) -> KnowledgeBase:
    return make_kb(tmp_path, empty_entries_dir)


def names(teams) -> list[tuple[str, str]]:
    return [(t.organisation, t.name) for t in teams]


# --------------------------------------------------------------------------- the directory


def test_the_directory_lists_each_team_with_its_organisation_themes_and_work(people):
    teams = directory(people, ANONYMOUS)
    assert names(teams) == [
        (ALPHA, "Sharing Team"),
        (BETA, "Beta Analytics"),
        (BETA, "ops@beta.example.gov"),  # no team named: listed under its contact
        (GAMMA, "Gamma Data"),
    ]
    sharing = teams[0]
    assert sharing.contacts == ("share@alpha.example.gov",)
    assert set(sharing.themes) == {"data-sharing-agreements", "data-governance", "record-linkage"}
    assert [w.entry_id for w in sharing.projects] == ["alpha-dsa-pilot"]
    assert [w.entry_id for w in sharing.failed] == ["alpha-linkage-trial"]  # failed or stopped: a failed experiment
    assert sharing.projects[0].when == "2021-01 to 2022-03"
    assert teams[2].projects[0].when == "since 2024-03"  # ongoing
    assert [w.entry_id for w in sharing.works] == ["alpha-dsa-pilot", "alpha-linkage-trial"]  # newest first
    assert list(by_organisation(teams)) == [ALPHA, BETA, GAMMA]


@pytest.mark.parametrize("reader", READERS, ids=lambda u: u.name or "visitor")
def test_an_anonymous_entry_adds_nothing_for_a_reader(tmp_path, empty_entries_dir, people, reader):
    """Not its team, its contact, its themes nor a count: the directory is the same without the entry."""
    teams = directory(people, reader)
    assert SECRET_TEAM not in repr(teams) and SECRET_CONTACT not in repr(teams)
    assert "alpha-quiet-failure" not in repr(teams)
    assert "data-quality" not in repr(teams)
    other = tmp_path / "without"
    other.mkdir()
    (other / "entries").mkdir()
    (other / "entries" / "vocabulary.yaml").write_bytes((empty_entries_dir / "vocabulary.yaml").read_bytes())
    without = make_kb(other, other / "entries", leave_out=("alpha-quiet-failure",))
    assert directory(without, reader) == teams


@pytest.mark.parametrize("viewer", [REVIEWER, THE_AUTHOR, None], ids=["reviewer", "its author", "operator"])
def test_not_even_those_who_may_read_its_names_find_an_anonymous_team_in_the_directory(people, viewer):
    """Reviewers and the author may read an anonymous entry's names on the entry, but whom to ask would point
    people at the team that asked not to be named: it lists the entry under its organisation only."""
    assert people.get("alpha-quiet-failure", viewer=viewer).team == SECRET_TEAM  # they may read it there
    teams = directory(people, viewer)
    assert SECRET_TEAM not in repr(teams) and SECRET_CONTACT not in repr(teams)
    assert SECRET_TEAM not in repr(others_on_this(people, "beta-reuse", viewer))
    alpha = organisation(people, ALPHA, viewer)
    assert ("alpha-quiet-failure", True) in [(w.entry_id, w.anonymous) for w in alpha.entries]
    assert SECRET_TEAM not in repr(alpha)


def test_hidden_entries_count_only_for_those_who_may_see_them(people):
    outsider = {n for _, n in names(directory(people, member_of(GAMMA)))}
    assert not outsider & {"Beta Hidden Unit", "Beta Draft Team", "Delta Insight"}
    member = {n for _, n in names(directory(people, member_of(BETA)))}
    assert "Beta Hidden Unit" in member and "Beta Draft Team" not in member  # drafts are not published
    assert "Delta Insight" in {n for _, n in names(directory(people, member_of(DELTA)))}


def test_the_directory_is_searched_by_name_organisation_and_theme(people):
    label = people.vocabulary.label
    assert names(directory(people, ANONYMOUS, query="GAMMA")) == [(GAMMA, "Gamma Data")]
    assert names(directory(people, ANONYMOUS, query="analytics beta")) == [(BETA, "Beta Analytics")]
    linkage = label("record-linkage")
    assert names(directory(people, ANONYMOUS, query=linkage.lower())) == [(ALPHA, "Sharing Team")]
    assert names(directory(people, ANONYMOUS, query="share@alpha")) == [(ALPHA, "Sharing Team")]
    assert directory(people, ANONYMOUS, query="nobody works on this") == []
    assert matches(directory(people, ANONYMOUS)[0], "   ")  # a blank query matches everyone


# --------------------------------------------------------------------------- others who have worked on this


def test_others_are_teams_of_other_organisations_most_shared_themes_then_newest(people):
    found = others_on_this(people, "alpha-dsa-pilot", ANONYMOUS)
    assert [(n.team.name, n.shared_themes) for n in found] == [
        ("Beta Analytics", ("data-sharing-agreements",)),  # 2024: newer than Gamma's 2018
        ("Gamma Data", ("data-governance",)),
    ]
    assert [w.entry_id for w in found[0].works] == ["beta-reuse"]
    # a member of Beta also sees its organisation-only entry, which shares both themes
    member = others_on_this(people, "alpha-dsa-pilot", member_of(BETA))
    assert (member[0].team.name, member[0].shared_themes) == (
        "Beta Hidden Unit",
        ("data-sharing-agreements", "data-governance"),
    )
    assert all(n.team.organisation != ALPHA for n in member)


def test_others_never_name_an_anonymous_team_to_a_reader(people):
    found = others_on_this(people, "beta-reuse", ANONYMOUS)
    assert [n.team.name for n in found] == ["Sharing Team"]


def test_others_of_a_hidden_entry_are_refused_like_a_missing_one(people):
    def words(entry_id: str) -> str:
        with pytest.raises(NotFound) as refused:
            others_on_this(people, entry_id, ANONYMOUS)
        return str(refused.value).replace(entry_id, "<id>")

    assert words("beta-hidden") == words("no-such-entry") == words("beta-draft")


# --------------------------------------------------------------------------- organisations


def test_an_organisation_page_has_its_entries_lighthouses_partners_and_reuse(people):
    alpha = organisation(people, "alpha office", ANONYMOUS)  # any case
    assert alpha.name == ALPHA
    assert [w.entry_id for w in alpha.entries] == ["alpha-quiet-failure", "alpha-dsa-pilot", "alpha-linkage-trial"]
    assert [w.entry_id for w in alpha.lighthouses] == ["alpha-dsa-pilot"]
    assert [t.name for t in alpha.teams] == ["Sharing Team"]  # the anonymous entry names no team
    worked = {p.name: p for p in alpha.worked_with}
    assert set(worked) == {GAMMA, BETA}  # Delta's reuse is hidden: no trace of it
    assert [w.entry_id for w in worked[GAMMA].partnered] == ["alpha-dsa-pilot"]
    assert [w.entry_id for w in worked[BETA].reused_by] == ["beta-reuse"]
    assert [(r.lighthouse.entry_id, r.by.entry_id) for r in alpha.reused_by] == [("alpha-dsa-pilot", "beta-reuse")]

    beta = organisation(people, BETA, ANONYMOUS)
    assert [(r.lighthouse.entry_id, r.by.entry_id) for r in beta.reused] == [("alpha-dsa-pilot", "beta-reuse")]
    assert [p.name for p in beta.worked_with] == [ALPHA]
    assert [w.entry_id for w in beta.worked_with[0].reused] == ["alpha-dsa-pilot"]

    gamma = organisation(people, GAMMA, ANONYMOUS)  # a partner on Alpha's entry
    assert [w.entry_id for w in gamma.partnered] == ["alpha-dsa-pilot"]
    assert [p.name for p in gamma.worked_with] == [ALPHA]


def test_reuse_by_an_entry_the_viewer_may_see_is_shown_to_them_only(people):
    beta = organisation(people, BETA, member_of(BETA))
    assert [r.by.entry_id for r in beta.reused] == ["beta-reuse", "beta-hidden"]
    delta = organisation(people, DELTA, member_of(DELTA))
    assert [r.by.entry_id for r in delta.reused] == ["delta-secret"]
    assert DELTA in {p.name for p in organisation(people, ALPHA, member_of(DELTA)).worked_with}


def test_a_wholly_hidden_organisation_is_refused_like_an_unknown_one(people):
    def words(name: str) -> str:
        with pytest.raises(NotFound) as refused:
            organisation(people, name, member_of(GAMMA))
        return str(refused.value).replace(name, "<name>")

    assert words(DELTA) == words("Nowhere Office")
    with pytest.raises(KBError, match="organisation's name"):
        organisation(people, "   ", ANONYMOUS)


# --------------------------------------------------------------------------- the command line


def run(*args: str):
    from click.testing import CliRunner

    from kb.cli import cli

    return CliRunner().invoke(cli, list(args))


def test_cli_people_lists_teams_as_a_reader_sees_them(people, monkeypatch):
    monkeypatch.setenv("KB_ENTRIES_DIR", str(people.settings.entries_dir))
    monkeypatch.setenv("KB_INDEX_DIR", str(people.settings.index_dir))
    shown = run("people", "--as", "anonymous")
    assert shown.exit_code == 0, shown.output
    assert (
        "Sharing Team" in shown.output and "failed experiment: Alpha linkage trial (2019-02 to 2019-09)" in shown.output
    )
    assert SECRET_TEAM not in shown.output and "Beta Hidden Unit" not in shown.output
    assert "Beta Hidden Unit" in run("people", "--as", BETA).output
    found = json.loads(run("people", "gamma", "--json").output)
    assert [t["name"] for t in found] == ["Gamma Data"]


def test_cli_organisation_shows_a_page_and_refuses_a_hidden_one_in_one_line(people, monkeypatch):
    monkeypatch.setenv("KB_ENTRIES_DIR", str(people.settings.entries_dir))
    monkeypatch.setenv("KB_INDEX_DIR", str(people.settings.index_dir))
    shown = run("organisation", BETA)
    assert shown.exit_code == 0, shown.output
    assert "What it reused:" in shown.output and "Alpha dsa pilot" in shown.output
    page = json.loads(run("organisation", ALPHA, "--json", "--as", "anonymous").output)
    assert [w["entry_id"] for w in page["lighthouses"]] == ["alpha-dsa-pilot"]
    hidden, unknown = run("organisation", DELTA, "--as", GAMMA), run("organisation", "Nowhere", "--as", GAMMA)
    assert hidden.exit_code == unknown.exit_code == 1
    assert hidden.stderr.replace(DELTA, "<name>") == unknown.stderr.replace("Nowhere", "<name>")
    assert len(hidden.stderr.strip().splitlines()) == 1 and "Traceback" not in hidden.output


def test_a_sync_brings_the_directory_up_to_date(people, empty_entries_dir):
    """Like search, the directory reads the index's snapshot: an entry made organisation-only and a new one
    count as such from the sync that indexes them (the app's own saves index at once)."""
    assert "Gamma Data" in [t.name for t in directory(people, ANONYMOUS)]
    write(empty_entries_dir, "gamma-old", **{**COLLECTION["gamma-old"], "visibility": "organisation"})
    write(empty_entries_dir, "epsilon-new", organisation="Epsilon Trust", team="Epsilon Team", themes=["open-data"])
    people.sync()
    names_now = [t.name for t in directory(people, ANONYMOUS)]
    assert "Epsilon Team" in names_now and "Gamma Data" not in names_now
    assert "Gamma Data" in [t.name for t in directory(people, member_of(GAMMA))]


def test_the_directory_follows_a_change_of_the_vocabulary_at_once(people, empty_entries_dir):
    """Themes are resolved against the vocabulary as it is now: a synonym a curator adds counts at once in
    the same knowledge base, with no sync."""
    gamma = next(t for t in directory(people, ANONYMOUS) if t.name == "Gamma Data")
    assert gamma.themes == ("data-governance",)
    path = empty_entries_dir / "vocabulary.yaml"
    vocabulary = yaml.safe_load(path.read_text())
    vocabulary["themes"] = [t for t in vocabulary["themes"] if t["id"] != "data-governance"]
    vocabulary["themes"].append({"id": "stewardship", "label": "Stewardship", "synonyms": ["data-governance"]})
    path.write_text(yaml.safe_dump(vocabulary, sort_keys=False))
    assert people.vocabulary.resolve("data-governance") == "stewardship"
    gamma = next(t for t in directory(people, ANONYMOUS) if t.name == "Gamma Data")
    assert gamma.themes == ("stewardship",)
