"""With the real bundled model, search works on meaning, not on shared words."""

from __future__ import annotations

import shutil

import pytest

from kb import KnowledgeBase, Settings
from kb.analysis import tokenize
from tests.conftest import SAMPLE_ENTRIES

pytestmark = pytest.mark.model

# Each query shares no content word (after stemming and stop words) with the entry it should find.
PARAPHRASES = {
    "covid-vulnerable-people-dashboard-in-three-weeks": "coronavirus outbreak: cabinet wanted an up-to-the-minute screen of at-risk households fast",
    "benefits-and-housing-data-sharing-pilot": "tenants thrown out onto the street; solicitors haggled endlessly",
    "skills-taxonomy-for-a-large-department": "catalogue of employee competencies across a huge ministry",
    "learning-spend-figures-nobody-could-compare": "tuition outlay sums incomparable among ministries",
    "mainframe-blocked-pension-data-share": "ancient computer too pricey to alter for retirement income",
}


@pytest.fixture(scope="module")
def real_index(tmp_path_factory, real_embedder, real_sample_index):
    index_dir = tmp_path_factory.mktemp("real-index")
    shutil.copytree(real_sample_index, index_dir, dirs_exist_ok=True)
    settings = Settings(entries_dir=SAMPLE_ENTRIES, index_dir=index_dir, chroma_url=None)
    KnowledgeBase(settings, embedder=real_embedder).sync()
    return settings


@pytest.fixture
def real_kb(real_index, real_embedder):
    return KnowledgeBase(real_index, embedder=real_embedder)


@pytest.mark.parametrize("entry_id", sorted(PARAPHRASES))
@pytest.mark.parametrize("mode", ["dense", "hybrid"])
def test_a_query_with_no_shared_words_finds_the_entry(real_kb, entry_id, mode):
    query = PARAPHRASES[entry_id]
    entry = real_kb.get(entry_id)
    entry_words = set(tokenize([entry.text() + " " + " ".join(entry.tags + entry.themes)])[0])
    assert set(tokenize([query])[0]) & entry_words == set()  # the test really is about meaning
    top3 = [h.id for h in real_kb.search(query, limit=3, mode=mode)]
    assert entry_id in top3


def test_similar_projects_are_on_topic(real_kb):
    similar = real_kb.similar("learning-spend-figures-nobody-could-compare", limit=3)
    assert "common-learning-spend-data-standard" in [h.id for h in similar]
    crisis = real_kb.similar("covid-vulnerable-people-dashboard-in-three-weeks", limit=3)
    assert {h.id for h in crisis} & {"flood-response-data-cell", "emergency-food-parcel-data-share"}
    for hit in similar + crisis:
        assert hit.passage and hit.source_passage


def test_bundled_model_is_verified_and_offline(real_embedder):
    from kb.embedder import DEFAULT_MODEL_SHA256, bundled_model_path, sha256_of

    assert sha256_of(bundled_model_path() / "model.safetensors") == DEFAULT_MODEL_SHA256
    vectors = real_embedder.embed(["one", "two"])
    assert vectors.shape == (2, 384)
    assert abs(float((vectors[0] ** 2).sum()) - 1.0) < 1e-4


def synonym_queries(kb) -> dict[str, tuple[str, set[str]]]:
    """Every name of every theme as a query; relevant: the entries filed under that theme."""
    entries = kb.load().entries
    queries = {}
    for theme in kb.vocabulary.themes:
        relevant = {e.id for e in entries.values() if theme.id in e.themes and e.status == "published"}
        if relevant:
            for name in theme.names:
                queries[f"{theme.id}:{name}"] = (name, relevant)
    return queries


def test_synonym_expansion_is_measured_to_help(real_kb, capsys):
    from bench.evaluation import ndcg_at

    queries = synonym_queries(real_kb)
    figures = {}
    for mode in ("bm25", "hybrid"):
        for expand in (False, True):
            scores = [
                ndcg_at(
                    [h.id for h in real_kb.search(q, limit=10, mode=mode, expand=expand)], dict.fromkeys(relevant, 1)
                )
                for q, relevant in queries.values()
            ]
            figures[(mode, expand)] = sum(scores) / len(scores)
    with capsys.disabled():
        print(
            f"\nsynonym queries ({len(queries)}): nDCG@10 "
            + ", ".join(
                f"{mode}{' +synonyms' if expand else ''} {value:.3f}" for (mode, expand), value in figures.items()
            )
        )
    assert figures[("bm25", True)] > figures[("bm25", False)] + 0.05
    assert figures[("hybrid", True)] > figures[("hybrid", False)]


@pytest.mark.parametrize("query", ["quantum basket weaving for llamas", "asdfghjkl", "purple monkey dishwasher"])
@pytest.mark.parametrize("mode", ["dense", "hybrid"])
def test_nonsense_has_no_close_match(real_kb, query, mode):
    hits = real_kb.search(query, limit=20, mode=mode)
    assert hits and not any(h.close for h in hits), [(h.id, h.score) for h in hits[:3]]


@pytest.mark.parametrize(
    "query, entry_id",
    [
        ("data sharing agreement took too long", "cross-government-data-sharing-agreement-template"),
        ("mainframe", "mainframe-blocked-pension-data-share"),
        ("DPIA", "data-protection-impact-assessment-fast-track"),
    ],
)
def test_a_real_question_is_a_close_match_and_its_entry_comes_first(real_kb, query, entry_id):
    from kb import browse
    from kb.browse import SearchRequest

    results = browse.find(real_kb, SearchRequest(query=query))
    assert results.close and results.hits[0].close
    assert entry_id in [h.id for h in results.hits[:3]]
    if query == "DPIA":  # the entry about DPIAs, before those whose evidence section names one
        assert results.hits[0].id == entry_id


def test_a_misspelt_question_is_offered_its_spelling(real_kb):
    from kb import browse
    from kb.browse import SearchRequest

    assert browse.find(real_kb, SearchRequest(query="sharring agrement")).suggestion == "sharing agreement"
