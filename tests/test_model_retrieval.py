"""With the real bundled model, search works on meaning, not on shared words."""

from __future__ import annotations

import pytest

from kb import KnowledgeBase, Settings
from kb.lexical import tokenize
from tests.conftest import SAMPLE_ENTRIES

pytestmark = pytest.mark.model

# Each query shares no content word (after stemming and stop words) with the entry it should find.
PARAPHRASES = {
    "covid-vulnerable-people-dashboard-in-three-weeks":
        "coronavirus outbreak: cabinet wanted an up-to-the-minute screen of at-risk households fast",
    "benefits-and-housing-data-sharing-pilot": "tenants thrown out onto the street; solicitors haggled endlessly",
    "skills-taxonomy-for-a-large-department": "catalogue of employee competencies across a huge ministry",
    "learning-spend-figures-nobody-could-compare": "tuition outlay sums incomparable among ministries",
    "mainframe-blocked-pension-data-share": "ancient computer too pricey to alter for retirement income",
}


@pytest.fixture(scope="module")
def real_index(tmp_path_factory, real_embedder):
    index_dir = tmp_path_factory.mktemp("real-index")
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
