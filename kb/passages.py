"""Passages: the pieces of an entry that are embedded and searched.

Passage 0 is the title and summary; then each section, prefixed with the entry title and the
section name so it stands on its own; then any parts kept beside the entry (its evidence notes), each
under its section's name. A long summary, like a long section, is cut into windows. A section longer than the model's window is cut into
overlapping windows, so every word of a long entry is searchable and nothing past the window is lost.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from kb.entries import Entry

# Room for [CLS]/[SEP] and the "title — section" prefix's share is measured, not guessed.
SPECIAL_TOKENS = 2
OVERLAP_FRACTION = 0.2


@dataclass(frozen=True, order=True)
class PassageId:
    """A passage's name in every index: its entry's id and its number in the entry, spelled "entry-id#3".
    The one place that spelling is made and read."""

    entry_id: str
    number: int

    def __str__(self) -> str:
        return f"{self.entry_id}{SEPARATOR}{self.number}"

    @classmethod
    def parse(cls, text: str) -> PassageId | None:
        """The id a string spells, or None if it spells none (no separator, or no number after it)."""
        entry_id, separator, number = text.rpartition(SEPARATOR)
        return cls(entry_id, int(number)) if separator and entry_id and number.isdigit() else None

    @staticmethod
    def of(entry_id: str, number: int) -> str:
        """The id as the indexes store it."""
        return f"{entry_id}{SEPARATOR}{number}"

    @staticmethod
    def entry_of(text: str) -> str:
        """The entry a passage id belongs to."""
        return text.rpartition(SEPARATOR)[0]


SEPARATOR = "#"
SUMMARY_NUMBER = 0  # an entry's passage 0 is its title and summary
HEADING_DASH = " — "  # between the title and the section name in a passage's first line


@dataclass(frozen=True)
class Passage:
    entry_id: str
    index: int
    section: str  # "Summary" for passage 0, else the section name
    text: str  # the text embedded and keyword-indexed (with its prefix)
    body: str  # the text shown to a reader (without the prefix)

    @property
    def id(self) -> str:
        return PassageId.of(self.entry_id, self.index)


def _windows(words: list[str], lengths: list[int], budget: int) -> list[tuple[int, int]]:
    """Word ranges [start, end) whose token counts fit the budget, overlapping by about a fifth."""
    spans: list[tuple[int, int]] = []
    start = 0
    while start < len(words):
        end, used = start, 0
        while end < len(words) and (used + lengths[end] <= budget or end == start):
            used += lengths[end]
            end += 1
        spans.append((start, end))
        if end >= len(words):
            break
        # step back from the end by ~20% of the budget's tokens, but always move forward
        back, overlap = end, 0
        while back > start + 1 and overlap + lengths[back - 1] <= budget * OVERLAP_FRACTION:
            back -= 1
            overlap += lengths[back]
        start = max(back, start + 1)
    return spans


def split_entry(
    entry: Entry,
    count_tokens: Callable[[list[str]], list[int]],
    max_tokens: int = 256,
    extra: Sequence[tuple[str, str]] = (),
) -> list[Passage]:
    """Every passage of an entry, in reading order: the summary's windows first, then each section's, then
    each of `extra` (section, text): parts kept beside the entry's file, such as its evidence notes, each
    its own passage(s) under its section's name."""
    passages: list[Passage] = []
    cache: dict[str, int] = {}

    def lengths(words: list[str]) -> list[int]:
        missing = list({w for w in words if w not in cache})
        if missing:
            cache.update(zip(missing, count_tokens(missing), strict=True))
        return [cache[w] for w in words]

    # The summary is headed by the title alone; a section by the title and its name.
    parts = [("Summary", entry.title, entry.summary or entry.title)]
    parts += [(name, heading(entry.title, name), body) for name, body in entry.sections.items()]
    parts += [(name, heading(entry.title, name), body) for name, body in extra]
    for section, prefix, body in parts:
        words = body.split()
        if not words:
            continue
        budget = max(32, max_tokens - SPECIAL_TOKENS - sum(lengths(prefix.split())))
        for start, end in _windows(words, lengths(words), budget):
            chunk = " ".join(words[start:end])
            passages.append(Passage(entry.id, len(passages), section, f"{prefix}\n{chunk}", chunk))
    return passages


def heading(title: str, section: str) -> str:
    """The first line of a section's passages, which is embedded and indexed with them: "title — section"."""
    return f"{title}{HEADING_DASH}{section}"


def body_of(passage_text: str) -> str:
    """What a reader sees of a passage: its text without the heading line."""
    return passage_text.split("\n", 1)[1] if "\n" in passage_text else passage_text
