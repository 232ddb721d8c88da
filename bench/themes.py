"""How good the suggested themes are: leave-one-out precision@3 over the sample entries.

    python -m bench themes

Each published sample entry with themes is taken in turn as a draft (its title, summary and sections).
Its own vector is left out of the themes' centroids, so it is suggested themes only from the vocabulary
and the other entries, and the three suggestions are compared with the themes its authors chose:
precision@3 is the share of the three that are among them, recall@3 the share of its themes that are
among the three. Four rankings side by side: the most used themes of the other entries (a baseline that
reads nothing of the draft), the descriptions alone, the entries alone, and the combination the form
uses (kb.theme_suggestions.ENTRY_WEIGHT), with precision@3 at other weights to show why it was chosen.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from kb import browse
from kb.knowledge import KnowledgeBase
from kb.theme_suggestions import (
    ENTRY_WEIGHT,
    description_vectors,
    draft_vector,
    rank_themes,
    theme_centroids,
)

K = 3
WEIGHTS = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)


def run_theme_bench(kb: KnowledgeBase) -> dict[str, Any]:
    """Every figure of the module docstring, measured on this knowledge base's published entries."""
    entries = [e for e in kb.load().entries.values() if browse.is_published(e.status) and e.themes]
    themes = kb.vocabulary.offered
    descriptions = description_vectors(kb.embedder, themes)
    centroids = theme_centroids(kb, None)
    usage = Counter(t for e in entries for t in e.themes)
    weights = sorted({*WEIGHTS, ENTRY_WEIGHT})
    found: dict[str, list[list[str]]] = {"most used": [], **{str(w): [] for w in weights}}
    wanted = []
    for entry in sorted(entries, key=lambda e: e.id):
        vector = draft_vector(kb.embedder, entry.title, entry.summary, entry.sections.values())
        if vector is None:
            continue
        wanted.append(set(entry.themes))
        others = usage - Counter(entry.themes)
        found["most used"].append([t for t, _ in sorted(others.items(), key=lambda kv: (-kv[1], kv[0]))][:K])
        for w in weights:
            ranked = rank_themes(vector, themes, descriptions, centroids, weight=w, exclude=entry.id)
            found[str(w)].append([s.theme_id for s in ranked[:K]])

    def scores(lists: list[list[str]]) -> dict[str, float]:
        hits = [len(set(top) & relevant) for top, relevant in zip(lists, wanted, strict=True)]
        n = len(wanted) or 1
        return {
            "precision@3": round(sum(h / K for h in hits) / n, 3),
            "recall@3": round(sum(h / len(r) for h, r in zip(hits, wanted, strict=True)) / n, 3),
        }

    return {
        "entries": len(wanted),
        "themes": len(themes),
        "model": kb.embedder.name,
        "entry_weight": ENTRY_WEIGHT,
        "rankings": {
            "most used themes (baseline)": scores(found["most used"]),
            "descriptions only": scores(found["0.0"]),
            "entries only": scores(found["1.0"]),
            f"combination (entry weight {ENTRY_WEIGHT})": scores(found[str(ENTRY_WEIGHT)]),
        },
        "precision@3 by entry weight": {str(w): scores(found[str(w)])["precision@3"] for w in weights},
    }


def format_report(figures: dict[str, Any]) -> str:
    lines = [
        f"Suggested themes, leaving each of {figures['entries']} published sample entries out in turn "
        f"({figures['themes']} themes, {figures['model']})",
        "",
        f"{'ranking':<36} {'precision@3':>11} {'recall@3':>9}",
    ]
    for name, s in figures["rankings"].items():
        lines.append(f"{name:<36} {s['precision@3']:>11.3f} {s['recall@3']:>9.3f}")
    lines += ["", "precision@3 by the entries' weight (0: descriptions only, 1: entries only):"]
    lines.append("  " + "  ".join(f"{w}: {p:.3f}" for w, p in figures["precision@3 by entry weight"].items()))
    return "\n".join(lines)
