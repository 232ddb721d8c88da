"""The shared vocabulary: themes resolve by id, label or synonym; unknown themes are reported."""

from kb.vocabulary import Vocabulary
from tests.conftest import SAMPLE_ENTRIES


def test_resolves_ids_labels_and_synonyms_in_any_case():
    vocabulary = Vocabulary.load(SAMPLE_ENTRIES)
    assert vocabulary.resolve("data-sharing-agreements") == "data-sharing-agreements"
    assert vocabulary.resolve("DSA") == "data-sharing-agreements"
    assert vocabulary.resolve("memorandum of understanding") == "data-sharing-agreements"
    assert vocabulary.resolve("Reproducible Analytical Pipelines") == "reproducible-analysis"
    assert vocabulary.resolve("knitting") is None


def test_unknown_themes_are_kept_and_reported():
    vocabulary = Vocabulary.load(SAMPLE_ENTRIES)
    themes, problems = vocabulary.normalise(["DSA", "knitting", "data-sharing-agreements"], "x.md")
    assert themes == ["data-sharing-agreements", "knitting"]
    assert len(problems) == 1 and "theme 'knitting' is not in the vocabulary" in str(problems[0])


def test_broken_vocabulary_file_is_a_problem_not_a_crash(tmp_path):
    (tmp_path / "vocabulary.yaml").write_text("themes: [unclosed")
    vocabulary = Vocabulary.load(tmp_path)
    assert vocabulary.themes == [] and "not valid YAML" in str(vocabulary.problems[0])


def test_odd_vocabulary_shapes_are_problems_or_read_sensibly(tmp_path):
    (tmp_path / "vocabulary.yaml").write_text("- just\n- a list\n")
    assert "must hold 'themes:'" in str(Vocabulary.load(tmp_path).problems[0])
    (tmp_path / "vocabulary.yaml").write_text("themes:\n  - id: dsa\n    label: Agreements\n    synonyms: MoU\n")
    vocabulary = Vocabulary.load(tmp_path)
    assert vocabulary.themes[0].synonyms == ("MoU",) and vocabulary.resolve("mou") == "dsa"


def test_data_sources_resolve_by_id_label_or_synonym_in_any_spelling():
    vocabulary = Vocabulary.load(SAMPLE_ENTRIES)
    assert vocabulary.resolve_source("school-census") == "school-census"
    assert vocabulary.resolve_source("School census (pupil level)") == "school-census"
    assert vocabulary.resolve_source("  school CENSUS  (pupil-level). ") == "school-census"
    assert vocabulary.resolve_source("platform usage telemetry") == "analysis-platform-usage-logs"
    assert vocabulary.resolve_source("Vehicle keeper register") is None  # not in the vocabulary
    assert vocabulary.resolve("school census") is None  # sources are not themes


def test_the_one_rule_for_the_same_source_name():
    from kb.vocabulary import source_key

    same = ["O.N.S. Postcode Directory", "ons postcode-directory", "ONS  Postcode Directory.", "ONS_Postcode_Directory"]
    assert {source_key(n) for n in same} == {"ons postcode directory"}
    assert source_key("ONS Postcode Directory") != source_key("ONS Postcode Directory 2")


def test_a_bad_data_source_item_is_a_problem_and_the_rest_still_read(tmp_path):
    (tmp_path / "vocabulary.yaml").write_text(
        "themes: []\ndata_sources:\n  - label: no id\n  - id: onspd\n    label: ONS Postcode Directory\n"
        "    synonyms: ONSPD\n"
    )
    vocabulary = Vocabulary.load(tmp_path)
    assert [s.id for s in vocabulary.sources] == ["onspd"] and vocabulary.resolve_source("onspd") == "onspd"
    assert len(vocabulary.problems) == 1 and "each data source needs an id" in str(vocabulary.problems[0])


def test_one_parser_reads_both_lists_and_names_the_list_at_fault():
    from kb.vocabulary import parse_terms

    item = {"id": "onspd", "label": "ONS Postcode Directory", "synonyms": "ONSPD", "replaces": ["nspl"]}
    for list_name in ("themes", "data_sources"):
        (term,), problems = parse_terms([item], "vocabulary.yaml", list_name)
        assert (term.synonyms, term.replaces, problems) == (("ONSPD",), ("nspl",), [])
    _, (problem,) = parse_terms("not a list", "vocabulary.yaml", "themes")
    assert "'themes:' must be a list of themes" in str(problem)  # not 'data_sources:', whatever the list
    _, (problem,) = parse_terms([{"id": "x", "synonyms": {"a": 1}}], "vocabulary.yaml", "data_sources")
    assert problem.field == "data_sources" and "synonyms must be a list" in str(problem)


def test_a_merged_theme_is_neither_offered_nor_counted_apart(tmp_path):
    (tmp_path / "vocabulary.yaml").write_text(
        "themes:\n  - id: dq\n    label: Data quality\n    replaces: [dashboards]\n"
        "  - id: old\n    label: Old\n    retired: true\n"
    )
    vocabulary = Vocabulary.load(tmp_path)
    assert [t.id for t in vocabulary.offered] == ["dq"]
    assert [vocabulary.offers(t) for t in ("dq", "old", "dashboards", "unknown")] == [True, False, False, True]
    assert [vocabulary.counts_under(t) for t in ("dashboards", "dq", "unknown")] == ["dq", "dq", "unknown"]
