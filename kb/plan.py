"""Plan to prior lessons: a pasted project plan is split into parts, each part searched, and the
lessons grouped so that what failed or stopped elsewhere comes first.

A whole plan is not one query: a single embedding of five paragraphs matches nothing well. Each
part ("we will agree a data sharing agreement with the council", "we will build a dashboard")
finds its own prior work, and the answer says which part of the plan each lesson speaks to.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from kb.filters import Filters
from kb.search import Hit

MIN_PART_WORDS = 4
MAX_PART_WORDS = 80
MAX_PARTS = 24
GROUPS = (
    ("failed", "Failed or stopped elsewhere: read these first", ("failed", "stopped")),
    ("partial", "Partly worked", ("partial",)),
    ("worked", "Worked, or still running", ("succeeded", "ongoing")),
)


@dataclass(frozen=True)
class PlanMatch:
    """One prior entry, the part of the plan it speaks to, and the passage that matched that part."""

    hit: Hit
    part: int
    part_text: str


@dataclass
class PlanGroup:
    key: str
    label: str
    matches: list[PlanMatch] = field(default_factory=list)


@dataclass
class PlanResult:
    parts: list[str]
    groups: list[PlanGroup]

    @property
    def count(self) -> int:
        return sum(len(g.matches) for g in self.groups)

    def to_dict(self) -> dict:
        return {
            "parts": self.parts,
            "groups": [
                {
                    "key": g.key,
                    "label": g.label,
                    "matches": [{**m.hit.to_dict(), "part": m.part, "part_text": m.part_text} for m in g.matches],
                }
                for g in self.groups
            ],
        }


def split_plan(text: str) -> list[str]:
    """Paragraphs and list items of the plan; long ones cut at sentence ends; headings and scraps dropped."""
    body = re.sub(r"(?m)^\s*#.*$", "", text)  # Markdown headings label parts; the words below say what
    blocks = [b.strip() for b in re.split(r"\n\s*\n|\n\s*(?=[-*•]|\d+[.)]\s)", body) if b.strip()]
    parts: list[str] = []
    for block in blocks:
        block = re.sub(r"^([-*•]|\d+[.)])\s*", "", " ".join(block.split()))
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
    per_part: int = 5,
    limit: int = 15,
    filters: Filters | None = None,
    mode: str = "hybrid",
    viewer=None,
) -> PlanResult:
    """Search each part of the plan; keep each entry once, under the part it matched best."""
    parts = split_plan(plan)
    best: dict[str, PlanMatch] = {}
    for n, (part, hits) in enumerate(
        zip(parts, kb.search_many(parts, limit=per_part, filters=filters, mode=mode, viewer=viewer), strict=True)
    ):
        for hit in hits:
            if hit.id not in best or hit.score > best[hit.id].hit.score:
                best[hit.id] = PlanMatch(hit, n, part)
    ranked = sorted(best.values(), key=lambda m: (-m.hit.score, m.hit.id))[:limit]
    groups = [PlanGroup(key, label) for key, label, _ in GROUPS]
    for match in ranked:
        for group, (_, _, outcomes) in zip(groups, GROUPS, strict=True):
            if match.hit.outcome in outcomes:
                group.matches.append(match)
                break
        else:
            groups[-1].matches.append(match)
    return PlanResult(parts, [g for g in groups if g.matches])
