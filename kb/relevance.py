"""What counts as a close match, so that a search can say when nothing really matches.

A search by meaning always returns its nearest passages, however far they are: "asdfghjkl" still has
twenty nearest entries. A hit is close when its entry's best passage is at least `close_similarity`
similar to the query by meaning (cosine). The threshold belongs to the model (each spreads its
similarities differently) and is measured by `python -m bench relevance` on SciFact's training
claims, on questions about the sample entries and on nonsense queries (docs/performance.md).
A model not measured here gets no threshold, and its hits are neither called close nor loose.
"""

from __future__ import annotations

# By model, as the index records its name (an int8 model's vectors differ slightly; measured apart).
# all-MiniLM-L6-v2, run of 2026-12-02: at 0.32, 99.9% of the relevant documents SciFact's training
# claims find in their top 10 are close, and all 15 questions about the samples have a close match (the
# lowest, "mainframe", at 0.334); no nonsense query is close on the samples (highest 0.238), 2 of 15 are
# on SciFact's science abstracts. The int8 model and the model-free "hashing-bow" are not measured.
CLOSE_SIMILARITY = {"all-MiniLM-L6-v2": 0.32}


def close_similarity(model: str) -> float | None:
    """The similarity from which a hit is close under this model; None when not measured."""
    return CLOSE_SIMILARITY.get(model)
