"""Plan to prior lessons: a pasted project plan is split into parts, each part searched, and every part
keeps its own best lessons, what failed or stopped elsewhere first.

A whole plan is not one query: a single embedding of five paragraphs matches nothing well. Each
part ("we will agree a data sharing agreement with the council", "we will build a dashboard")
finds its own prior work, and the answer says which part of the plan each lesson speaks to. A part whose
scores are lower than another's (a short, specific paragraph) still keeps its lessons.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from kb.filters import Filters
from kb.search import Hit

MIN_PART_WORDS = 3  # shorter lines are labels and scraps ("Timeline", "ok."), not steps
MAX_PART_WORDS = 80
MAX_PARTS = 24
PER_PART = 3  # lessons kept for every part, however its scores compare with the other parts'
CANDIDATES_PER_PART = 12  # each part's search looks this deep, so that a lesson taken by another part is replaced
OUTCOME_ORDER = {"failed": 0, "stopped": 0, "partial": 1}  # within a part: what went wrong elsewhere first


@dataclass(frozen=True)
class PlanMatch:
    """One prior entry found for a part of the plan, with the passage that matched it.

    `relevance` is the hit's score over the best score found for the same part (1.0 for the part's
    best lesson): raw scores of different parts are not comparable, so parts are never ranked
    against each other by them.
    """

    hit: Hit
    relevance: float


@dataclass
class PlanPart:
    number: int  # from 1, as shown
    text: str
    matches: list[PlanMatch] = field(default_factory=list)


@dataclass
class PlanResult:
    parts: list[PlanPart]

    @property
    def hits(self) -> list[Hit]:
        return [m.hit for part in self.parts for m in part.matches]

    @property
    def count(self) -> int:
        return sum(len(part.matches) for part in self.parts)

    def to_dict(self) -> dict:
        return {
            "parts": [
                {
                    "number": part.number,
                    "text": part.text,
                    "matches": [{**m.hit.to_dict(), "relevance": round(m.relevance, 4)} for m in part.matches],
                }
                for part in self.parts
            ]
        }


def split_plan(text: str) -> list[str]:
    """The plan's steps: paragraphs, list items and lines that start a new sentence; long ones cut at
    sentence ends; headings, labels ("Risks:") and scraps dropped. A line that goes on in lower case
    continues the sentence above it (prose wrapped by hand)."""
    body = re.sub(r"(?m)^\s*#.*$", "", text)  # Markdown headings label parts; the words below say what
    blocks = [b.strip() for b in re.split(r"\n\s*\n|\n(?=\s*[^a-z\s])", body) if b.strip()]
    parts: list[str] = []
    for block in blocks:
        block = re.sub(r"^([-*•]|\d+[.)])\s*", "", " ".join(block.split()))
        if block.endswith(":"):
            continue
        sentences = re.split(r"(?<=[.!?])\s+", block)
        current: list[str] = []
        for sentence in sentences:
            if current and len(" ".join(current + [sentence]).split()) > MAX_PART_WORDS:
                parts.append(" ".join(current))
                current = []
            current.append(sentence)
        if current:
            parts.append(" ".join(current))
    kept = [p for p in parts if len(p.split()) >= MIN_PART_WORDS]
    return (kept or [" ".join(text.split())])[:MAX_PARTS]


def plan_search(
    kb,
    plan: str,
    *,
    per_part: int = PER_PART,
    filters: Filters | None = None,
    mode: str = "hybrid",
    viewer=None,
) -> PlanResult:
    """Search each part of the plan and keep the best `per_part` lessons for every part, each entry
    once, under the part it speaks to most; within a part, failures and stopped work first."""
    texts = split_plan(plan)
    found = kb.search_many(texts, limit=max(per_part, CANDIDATES_PER_PART), filters=filters, mode=mode, viewer=viewer)
    candidates = [
        (relevance, n, hit)
        for n, hits in enumerate(found)
        for hit, relevance in zip(hits, _relative(hits), strict=True)
    ]
    parts = [PlanPart(n + 1, text) for n, text in enumerate(texts)]
    placed: set[str] = set()
    for relevance, n, hit in sorted(candidates, key=lambda c: (-c[0], c[1], c[2].id)):
        if hit.id not in placed and len(parts[n].matches) < per_part:
            parts[n].matches.append(PlanMatch(hit, relevance))
            placed.add(hit.id)
    for part in parts:
        part.matches.sort(key=lambda m: (OUTCOME_ORDER.get(m.hit.outcome, 2), -m.relevance, m.hit.id))
    return PlanResult(parts)


def plan_summary(parts: int, lessons: int) -> str:
    """How the plan was read, in words (never "1 parts")."""
    found = f"{lessons} prior lesson{'s' if lessons != 1 else ''}"
    if parts == 1:
        return f"Your plan was read as one part, with {found}. Put each step on its own line to get lessons for every step."
    return f"Your plan, read as {parts} parts, has {found}: the best for each part, failures first."


def _relative(hits: list[Hit]) -> list[float]:
    """Each hit's score over the best of its list; by rank where scores are not positive."""
    best = hits[0].score if hits else 0.0
    if best > 0:
        return [max(hit.score, 0.0) / best for hit in hits]
    return [1.0 / (rank + 1) for rank in range(len(hits))]
