"""Where a close match begins: the cosine similarity from which a hit is called close, measured.

    python -m bench relevance        # SciFact's training claims, the sample entries, and nonsense

A search always returns its nearest passages, however far they are. A threshold on the query's
cosine similarity to an entry's best passage says which of them are close. It is measured, for
each candidate threshold, on:
- SciFact's training claims: how many of the relevant documents found in the top 10 are called close
  (they should be), and how many claims get at least one close match;
- questions a civil servant would ask of the sample entries: how many get a close match;
- off-topic and gibberish queries: how many get a close match, on SciFact and on the samples (none
  should).
The threshold chosen is kept in kb.relevance, by model.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np

from bench.evaluation import Dataset, entry_id
from kb.config import Settings
from kb.embedder import Embedder

SAMPLE_QUESTIONS = (
    "data sharing agreement took too long",
    "why do data sharing agreements take so long",
    "DSA",
    "legacy system blocked the project",
    "mainframe",
    "machine learning pilot stopped",
    "dashboard in a crisis",
    "record matching across councils",
    "finding young carers with school records",
    "open data portal nobody used",
    "flood response data",
    "teacher supply forecasts",
    "reproducible analytical pipelines",
    "data protection impact assessment",
    "synthetic data for testing",
)
NONSENSE = (
    "quantum basket weaving for llamas",
    "asdfghjkl",
    "qwertyuiop zxcvbnm",
    "lorem ipsum dolor sit amet",
    "best pizza topping for a birthday party",
    "how to train a dragon to fetch",
    "knitting patterns for winter jumpers",
    "the offside rule in football explained",
    "sourdough starter smells of nail varnish",
    "which guitar strings sound brightest",
    "xkcd 927",
    "purple monkey dishwasher",
    "medieval jousting tournament rules",
    "tips for growing tomatoes on a balcony",
    "zzzz",
)
THRESHOLDS = tuple(round(0.20 + 0.025 * i, 3) for i in range(15))


def best_similarities(kb, queries: tuple[str, ...] | list[str], limit: int = 10) -> list[list[tuple[str, float]]]:
    """Each query's top entries by meaning, with the cosine similarity of their best passage."""
    return [[(h.id, h.score) for h in hits] for hits in kb.search_many(list(queries), limit=limit, mode="dense")]


def samples_index(entries_dir: Path, work: Path, model: Embedder):
    """The sample entries, synced with the model into a work folder of their own."""
    from kb.chroma_client import clear_client_cache
    from kb.knowledge import KnowledgeBase

    index = work / "samples-index"
    shutil.rmtree(index, ignore_errors=True)
    clear_client_cache()  # Chroma keeps a client per path for the whole process: not one over deleted files
    kb = KnowledgeBase(
        Settings(entries_dir=entries_dir, index_dir=index, chroma_url=None, model=model.name), embedder=model
    )
    kb.sync()
    return kb


def run_relevance_bench(scifact_kb, train: Dataset, samples_kb) -> dict[str, Any]:
    """Every figure of the module docstring, at every candidate threshold."""
    claims = list(train.queries.items())
    found = best_similarities(scifact_kb, [text for _, text in claims])
    relevant_similarity, top_similarity = [], []
    for (query_id, _), hits in zip(claims, found, strict=True):
        wanted = {entry_id(d) for d, grade in train.qrels.get(query_id, {}).items() if grade > 0}
        relevant_similarity += [score for hit, score in hits if hit in wanted]
        top_similarity.append(hits[0][1] if hits else -1.0)
    questions = [hits[0][1] if hits else -1.0 for hits in best_similarities(samples_kb, SAMPLE_QUESTIONS)]
    nonsense = {
        "scifact": [hits[0][1] if hits else -1.0 for hits in best_similarities(scifact_kb, NONSENSE)],
        "samples": [hits[0][1] if hits else -1.0 for hits in best_similarities(samples_kb, NONSENSE)],
    }

    def share(values: list[float], threshold: float) -> float:
        return round(float(np.mean(np.asarray(values) >= threshold)), 3) if values else 0.0

    rows = [
        {
            "threshold": t,
            "relevant_in_top10_close": share(relevant_similarity, t),
            "claims_with_a_close_match": share(top_similarity, t),
            "sample_questions_with_a_close_match": share(questions, t),
            "nonsense_close_scifact": share(nonsense["scifact"], t),
            "nonsense_close_samples": share(nonsense["samples"], t),
        }
        for t in THRESHOLDS
    ]
    return {
        "claims": len(claims),
        "relevant_in_top10": len(relevant_similarity),
        "sample_questions": len(SAMPLE_QUESTIONS),
        "nonsense_queries": len(NONSENSE),
        "highest_nonsense": round(max(nonsense["scifact"] + nonsense["samples"]), 3),
        "lowest_sample_question": round(min(questions), 3),
        "rows": rows,
    }


def format_report(figures: dict[str, Any]) -> str:
    out = [
        f"{figures['claims']} SciFact training claims ({figures['relevant_in_top10']} relevant documents in their "
        f"top 10), {figures['sample_questions']} questions on the samples, {figures['nonsense_queries']} "
        "nonsense queries",
        f"highest similarity of a nonsense query: {figures['highest_nonsense']}; lowest best similarity of a "
        f"sample question: {figures['lowest_sample_question']}",
        "",
        f"{'threshold':>9} {'relevant close':>15} {'claims close':>13} {'questions close':>16} "
        f"{'nonsense sci':>13} {'nonsense samples':>17}",
    ]
    for row in figures["rows"]:
        out.append(
            f"{row['threshold']:>9.3f} {row['relevant_in_top10_close']:>15.1%} {row['claims_with_a_close_match']:>13.1%}"
            f" {row['sample_questions_with_a_close_match']:>16.1%} {row['nonsense_close_scifact']:>13.1%}"
            f" {row['nonsense_close_samples']:>17.1%}"
        )
    return "\n".join(out)
