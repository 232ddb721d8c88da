"""The data-source catalogue: sources merged by the vocabulary and by spelling, their uses and grades, and
only what the viewer may see (a hidden entry's source answers like a missing one; anonymous teams stay
hidden)."""

from __future__ import annotations

import pytest
import yaml

from kb import KnowledgeBase
from kb.access import ANONYMOUS, member_of
from kb.errors import NotFound
from kb.identity import User
from kb.sources import catalogue, rating_score, source, source_id

SECRET = "restricted-address-matching"
SECRET_SOURCE = "Secret Address Register"


@pytest.fixture
def secret_kb(settings, fake_embedder, entries_dir):
    """The sample entries plus an organisation-only, anonymous entry that grades two sources: one only it
    uses, and the school census spelled its own way."""
    (entries_dir / f"{SECRET}.md").write_text(
        f"---\nid: {SECRET}\ntitle: Restricted address matching\nsummary: Matching failed.\n"
        "kind: experiment\noutcome: failed\norganisation: Revenue and Customs Office\n"
        "status: published\nvisibility: organisation\nanonymous: true\nteam: Ledger Team\n"
        "contact: ledgers@rco.example.gov\nstarted: 2025-01\n"
        "data_sources:\n"
        f"- name: {SECRET_SOURCE}\n  grades:\n    accuracy: {{rating: poor, note: Half the addresses were stale}}\n"
        "- name: 'school census.'\n  grades:\n    timeliness: excellent\n  graded: 2025-02\n"
        "---\n## Lessons\n\nCheck the addresses first.\n"
    )
    base = KnowledgeBase(settings, embedder=fake_embedder)
    base.sync()
    return base


OWNER = member_of("Revenue and Customs Office")
OUTSIDER = member_of("Home Affairs Department")


def test_names_the_vocabulary_links_are_one_source(kb):
    school = source(kb, "school-census")
    assert school.label == "School census"
    assert set(school.names) == {"School census (pupil level)", "School census (school-level aggregates)"}
    assert [u.entry_id for u in school.uses] == [
        "open-api-for-school-census-data",
        "school-meals-auto-enrolment-data-share",
    ]
    assert school.organisations == ("Department for Education and Skills",)
    assert source(kb, "pupil census").id == "school-census"  # a synonym finds it too


def test_names_differing_only_in_case_spacing_or_punctuation_are_one_source(kb):
    vocabulary = kb.vocabulary
    assert source_id(vocabulary, "Vehicle keeper register") == source_id(vocabulary, "  vehicle-keeper   REGISTER.")
    assert source_id(vocabulary, "Vehicle keeper register") != source_id(vocabulary, "Vehicle register")
    assert source(kb, "VEHICLE keeper register").label == "Vehicle keeper register"


def test_grades_side_by_side_and_over_time(kb):
    platform = source(kb, "analysis-platform-usage-logs")
    grid = platform.grid()
    assert list(grid) == ["accuracy", "completeness", "consistency", "timeliness", "validity"]  # graded ones only
    by_entry = {use.entry_id: (rating, note) for use, rating, note in grid["completeness"]}
    assert by_entry["analysis-platform-licence-costs-overrun"][0] == "poor"
    assert "Idle compute" in by_entry["analysis-platform-licence-costs-overrun"][1]
    assert by_entry["shared-analysis-platform-onboarding-programme"] == ("good", "")
    assert dict((u.entry_id, r) for u, r, _ in grid["timeliness"])["analysis-platform-licence-costs-overrun"] == ""
    times = [when for when, *_ in platform.timeline()]
    assert times == sorted(times) and times[0] == "2020-02" and times[-1] == "2021-06"
    assert platform.lowest == "poor"
    assert [rating_score(r) for r in ("poor", "fair", "good", "excellent", "")] == [1, 2, 3, 4, None]


def test_the_catalogue_lists_every_published_source_most_used_first(kb):
    sources = catalogue(kb)
    counts = [len(s.uses) for s in sources]
    assert counts == sorted(counts, reverse=True)
    ids = [s.id for s in sources]
    assert len(ids) == len(set(ids))
    assert {"school-census", "benefit-claimant-records", "planning-applications"} <= set(ids[:6])
    assert all(kb.get(u.entry_id).status == "published" for s in sources for u in s.uses)


def test_a_source_used_only_by_a_hidden_entry_answers_like_a_missing_one(secret_kb):
    assert source(secret_kb, SECRET_SOURCE, viewer=OWNER).uses[0].entry_id == SECRET
    for viewer in (OUTSIDER, ANONYMOUS):
        with pytest.raises(NotFound) as hidden:
            source(secret_kb, SECRET_SOURCE, viewer=viewer)
        with pytest.raises(NotFound) as missing:
            source(secret_kb, "No such register", viewer=viewer)
        assert str(hidden.value).replace(SECRET_SOURCE, "X") == str(missing.value).replace("No such register", "X")
        school = source(secret_kb, "school-census", viewer=viewer)
        assert SECRET not in {u.entry_id for u in school.uses}
        assert SECRET_SOURCE not in {s.label for s in catalogue(secret_kb, viewer=viewer)}


def test_an_anonymous_entrys_use_names_no_team(secret_kb):
    school = source(secret_kb, "school-census", viewer=OWNER)
    use = next(u for u in school.uses if u.entry_id == SECRET)
    assert use.anonymous and use.team == "" and use.organisation == "Revenue and Customs Office"
    assert use.when == "2025-02" and use.quality.grades["timeliness"].rating == "excellent"
    assert "school census." in school.names
    for who_may_read_its_names in (
        None,
        User("Rita Reviewer", "Revenue and Customs Office", ("reviewer",), local=False),
    ):
        uses = source(secret_kb, "school-census", viewer=who_may_read_its_names).uses
        assert next(u for u in uses if u.entry_id == SECRET).team == ""  # the catalogue never names it
    vehicle = source(secret_kb, "Vehicle keeper register", viewer=ANONYMOUS)
    assert vehicle.uses[0].anonymous and vehicle.uses[0].team == ""


def test_the_catalogue_follows_a_change_of_the_vocabulary_at_once(kb):
    """The entry page links a source by the vocabulary as it is now: the catalogue, read before the
    vocabulary changed, must answer to the new ids at once (same knowledge base, no sync)."""
    assert "dashboard-usage-logs" in {s.id for s in catalogue(kb)}
    path = kb.settings.entries_dir / "vocabulary.yaml"
    vocabulary = yaml.safe_load(path.read_text())
    vocabulary["data_sources"].append(
        {"id": "dashboards", "label": "Dashboard logs", "synonyms": ["Dashboard usage logs"]}
    )
    path.write_text(yaml.safe_dump(vocabulary, sort_keys=False))
    linked = source_id(kb.vocabulary, "Dashboard usage logs")
    assert linked == "dashboards"
    assert source(kb, linked).label == "Dashboard logs"
    assert "dashboard-usage-logs" not in {s.id for s in catalogue(kb)}
