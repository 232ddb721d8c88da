"""Suggested themes for a draft (fake embedder: it knows words, not meaning, so the drafts here share
words with the themes they should be given)."""

from __future__ import annotations

import numpy as np

from kb import theme_suggestions as ts
from kb.access import ANONYMOUS
from kb.identity import User
from kb.theme_suggestions import ThemeCentroids, suggest_themes
from kb.vocabulary import Theme

TITLE = "Matching records across councils"
SUMMARY = "Record linkage and matching of the same person across datasets, with deduplication."


def ids(suggestions) -> list[str]:
    return [s.theme_id for s in suggestions]


def test_the_nearest_themes_come_first_with_scores(kb):
    found = suggest_themes(kb, TITLE, SUMMARY, viewer=ANONYMOUS)
    assert len(found) == ts.SUGGESTIONS
    assert found[0].theme_id == "record-linkage"
    assert found[0].label == "Record linkage and matching"
    scores = [s.score for s in found]
    assert scores == sorted(scores, reverse=True)


def test_too_little_text_suggests_nothing(kb):
    assert suggest_themes(kb, "DSA", "", viewer=ANONYMOUS) == []
    assert suggest_themes(kb, "", "", ["a long section about data sharing agreements"], viewer=ANONYMOUS) == []


def test_themes_already_chosen_are_not_suggested_again(kb):
    found = suggest_themes(kb, TITLE, SUMMARY, viewer=ANONYMOUS, chosen=["record-linkage"], limit=5)
    assert "record-linkage" not in ids(found) and len(found) == 5


def test_sections_count_towards_the_suggestions(kb):
    plain = suggest_themes(kb, "What we learned this year", "A short note on our work.", viewer=ANONYMOUS, limit=1)
    story = ["We moved the statistics warehouse to the cloud: cloud migration, hosting, lift and shift."]
    with_story = suggest_themes(kb, "What we learned this year", "A short note on our work.", story, viewer=ANONYMOUS)
    assert ids(plain) != ["cloud-migration"]
    assert ids(with_story)[0] == "cloud-migration"


def test_retired_themes_are_never_suggested(kb, monkeypatch):
    from dataclasses import dataclass

    @dataclass(frozen=True)
    class Retirable(Theme):
        retired: bool = False

    vocabulary = kb.vocabulary
    themes = [Retirable(**{**t.__dict__, "retired": t.id == "record-linkage"}) for t in vocabulary.themes]
    monkeypatch.setattr(vocabulary, "themes", themes)
    assert "record-linkage" not in ids(suggest_themes(kb, TITLE, SUMMARY, viewer=ANONYMOUS, limit=20))


def test_descriptions_are_embedded_once_per_vocabulary_content(kb, monkeypatch):
    calls = []
    embed = kb.embedder.embed
    monkeypatch.setattr(kb.embedder, "embed", lambda texts: calls.append(len(texts)) or embed(texts))
    themes = kb.vocabulary.offered
    first = ts.description_vectors(kb.embedder, themes)
    assert ts.description_vectors(kb.embedder, themes) is first
    assert calls == [len(themes)]
    changed = [Theme(t.id, t.label, t.definition + " Changed.", t.synonyms) for t in themes]
    ts.description_vectors(kb.embedder, changed)
    assert calls == [len(themes), len(themes)], "a changed vocabulary is embedded afresh"


def centroids(kb, viewer) -> ThemeCentroids:
    return ts.theme_centroids(kb, viewer)


def test_only_published_entries_the_viewer_may_see_shape_the_centroids(kb, entries_dir):
    secret = (entries_dir / "flood-response-data-cell.md").read_text(encoding="utf-8")
    secret = secret.replace("id: flood-response-data-cell", "id: a-secret-flood-cell").replace(
        "visibility: public", "visibility: organisation"
    )
    assert "visibility: organisation" in secret
    (entries_dir / "a-secret-flood-cell.md").write_text(secret, encoding="utf-8")
    kb.sync()
    outsider = centroids(kb, ANONYMOUS)
    insider = centroids(kb, User("Eve", "Environment and Rural Agency", ("contributor",)))
    assert "a-secret-flood-cell" not in outsider.vectors
    assert "a-secret-flood-cell" in insider.vectors
    assert outsider.counts["crisis-response"] == insider.counts["crisis-response"] - 1
    drafts = [r for r in kb.indexed_rows() if r.metadata.get("status") != "published"]
    assert drafts and not {r.entry_id for r in drafts} & set(centroids(kb, None).vectors)


def test_leaving_an_entry_out_removes_its_vector_from_its_themes(kb):
    known = centroids(kb, None)
    entry_id = "flood-response-data-cell"
    theme = "crisis-response"
    others = [v for e, v in known.vectors.items() if theme in known.themes[e] and e != entry_id]
    mean = np.mean(others, axis=0)
    assert np.allclose(known.centroid(theme, exclude=entry_id), mean / np.linalg.norm(mean), atol=1e-5)
    assert not np.allclose(known.centroid(theme), known.centroid(theme, exclude=entry_id))
    untouched = "machine-learning"
    assert untouched not in known.themes[entry_id]
    assert np.allclose(known.centroid(untouched), known.centroid(untouched, exclude=entry_id))


def test_the_weight_moves_between_descriptions_and_entries(kb):
    vector = ts.draft_vector(kb.embedder, TITLE, SUMMARY)
    themes = kb.vocabulary.offered
    descriptions = ts.description_vectors(kb.embedder, themes)
    known = centroids(kb, None)
    only_descriptions = ts.rank_themes(vector, themes, descriptions, known, weight=0.0)
    by_id = {s.theme_id: s.score for s in only_descriptions}
    for theme, row in zip(themes, descriptions, strict=True):
        assert abs(by_id[theme.id] - float(row @ vector)) < 1e-5
    only_entries = {s.theme_id: s.score for s in ts.rank_themes(vector, themes, descriptions, known, weight=1.0)}
    centroid = known.centroid("record-linkage")
    assert abs(only_entries["record-linkage"] - float(centroid @ vector)) < 1e-5
