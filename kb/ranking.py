"""From the passages both sides of a search found for one query to the entries it ranks first.

    pool = Pool.of_rows(view, (rows, similarities), (rows, scores, complete))  # the replica's rows (Replica.sides)
    pool = Pool.of_matches(dense_matches, keyword_matches, text_of, complete)  # or the sides' answers as matches
    scores = pool.scores("hybrid", fusion)                             # boilerplate weighed in
    ranked = pool.best_per_entry(scores, fusion, limit)               # [(slot, score)], best first

Ranking happens at passage level (each passage scored by meaning and by BM25, the scores fused), then
per entry: an entry scores as its best passage, and that passage is what the reader is shown. A pool
holds one slot per passage found, as arrays, so fusing a few hundred candidates is a few vector
operations; a passage's id and text are spelled or read only for the few slots the ranking looks at
(ties, the hits).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Protocol

import numpy as np

from kb.arrays import distinct
from kb.passages import SUMMARY_NUMBER, PassageId
from kb.search import BOILERPLATE_SECTIONS, Fusion


class Spelling(Protocol):
    """What a pool's slots are, for the few it spells out."""

    def entry_id(self, code: int) -> str: ...

    def passage_id(self, slot: int, entry_id: str, number: int) -> str: ...

    def section(self, slot: int) -> str: ...

    def text(self, slot: int) -> str: ...


class RowsRead(Protocol):
    """The rows a search read its candidates from (kb.replica's RowView)."""

    def entry_codes(self, rows: np.ndarray) -> np.ndarray: ...

    def numbers_at(self, rows: np.ndarray) -> np.ndarray: ...

    def entry_id(self, code: int) -> str: ...

    def in_sections(self, rows: np.ndarray, names: Iterable[str]) -> np.ndarray: ...

    def section(self, row: int) -> str: ...

    def text(self, row: int) -> str: ...


class Pool:
    """One query's candidate passages, a slot each: its entry (a code, one per entry), its number in the
    entry, whether it is boilerplate (kb.search.BOILERPLATE_SECTIONS), its similarity by meaning and
    its keyword score (0..1), NaN where that side did not find it.
    `dense_order` and `keyword_order` list each side's slots in the order the side returned them (a
    reciprocal-rank fusion ranks ties in that order); `keyword_complete` says whether the keyword side
    holds every passage that matched at all (no query of it was cut)."""

    def __init__(
        self,
        entries: np.ndarray,
        numbers: np.ndarray,
        boilerplate: np.ndarray,
        spelling: Spelling,
        dense: tuple[np.ndarray, np.ndarray] | None = None,
        keyword: tuple[np.ndarray, np.ndarray] | None = None,
        keyword_complete: bool = True,
    ):
        """A pool over `len(entries)` slots, given each side's (slots, scores) in the side's order."""
        self.entries = np.asarray(entries, dtype=np.int64)
        self.numbers = np.asarray(numbers, dtype=np.int64)
        self.boilerplate = np.asarray(boilerplate, dtype=bool)
        self.spelling = spelling
        self.dense, self.dense_order = self._side(dense)
        self.keyword, self.keyword_order = self._side(keyword)
        self.keyword_complete = keyword_complete

    def _side(self, found: tuple[np.ndarray, np.ndarray] | None) -> tuple[np.ndarray, np.ndarray]:
        scores = np.full(len(self.entries), np.nan)
        if found is None:
            return scores, np.zeros(0, dtype=np.int64)
        order = np.asarray(found[0], dtype=np.int64)
        scores[order] = found[1]
        return scores, order

    @classmethod
    def of_rows(
        cls,
        view: RowsRead,
        dense: tuple[np.ndarray, np.ndarray] | None,
        keyword: tuple[np.ndarray, np.ndarray, bool] | None,
    ) -> Pool:
        """A pool of the rows each side found, a slot per row: the nearest as rows and similarities, the
        keyword side's as rows, scores and whether it is complete, each in the side's order."""
        found = [side[0] for side in (dense, keyword) if side is not None]
        slot_rows = distinct(np.concatenate(found)) if found else np.zeros(0, np.int64)
        dense_slots, keyword_slots = (
            None if side is None else (np.searchsorted(slot_rows, side[0]), side[1]) for side in (dense, keyword)
        )
        spelling = _RowSpelling(view, slot_rows)
        complete = keyword is None or keyword[2]
        return cls(
            view.entry_codes(slot_rows),
            view.numbers_at(slot_rows),
            view.in_sections(slot_rows, BOILERPLATE_SECTIONS),
            spelling,
            dense_slots,
            keyword_slots,
            complete,
        )

    @classmethod
    def of_matches(
        cls,
        dense: Sequence | None,
        keyword: Sequence | None,
        text_of: Callable[[str], str | None],
        keyword_complete: bool = True,
    ) -> Pool:
        """A pool of matches as the vector index and the keyword index give them (each with `passage_id`,
        `entry_id`, `section` and `similarity` or `score`; a vector match's text, when it has one, is kept)."""
        spelling = _MatchSpelling(text_of)
        slot_of: dict[str, int] = {}
        code_of: dict[str, int] = {}
        entries: list[int] = []
        numbers: list[int] = []

        def slots(matches: Sequence, score: str) -> tuple[np.ndarray, np.ndarray]:
            found = []
            for m in matches:
                slot = slot_of.get(m.passage_id)
                if slot is None:
                    slot = slot_of[m.passage_id] = len(spelling.ids)
                    code = code_of.setdefault(m.entry_id, len(spelling.entries))
                    if code == len(spelling.entries):
                        spelling.entries.append(m.entry_id)
                    parsed = PassageId.parse(m.passage_id)
                    spelling.ids.append(m.passage_id)
                    spelling.sections.append(m.section)
                    spelling.texts.append("")
                    entries.append(code)
                    numbers.append(parsed.number if parsed else -1)
                if getattr(m, "text", ""):
                    spelling.texts[slot] = m.text
                found.append(slot)
            return np.asarray(found, dtype=np.int64), np.asarray([getattr(m, score) for m in matches], np.float64)

        dense_slots = None if dense is None else slots(dense, "similarity")
        keyword_slots = None if keyword is None else slots(keyword, "score")
        return cls(
            np.asarray(entries, np.int64),
            np.asarray(numbers, np.int64),
            np.isin(spelling.sections, BOILERPLATE_SECTIONS),
            spelling,
            dense_slots,
            keyword_slots,
            keyword_complete,
        )

    def __len__(self) -> int:
        return len(self.entries)

    # ----------------------------------------------------------------- scores

    def meaning(self, fusion: Fusion) -> np.ndarray:
        """The similarities by meaning with each title-and-summary passage's scaled by
        `fusion.summary_similarity_weight` (the raw similarities still judge closeness)."""
        weight = fusion.summary_similarity_weight
        if weight == 1.0:
            return self.dense
        return np.where(self.numbers == SUMMARY_NUMBER, self.dense * weight, self.dense)

    def scores(self, mode: str, fusion: Fusion) -> np.ndarray:
        """One score per slot: by meaning ("dense"), by keywords ("bm25"), or both fused ("hybrid"); a
        boilerplate passage's lowered by the fusion's `boilerplate_weight` (it says where the evidence is,
        not what the work was): times the weight where positive, and as far again below it where negative
        (a cosine can be), so the weight never raises a score.

        Fused, a passage missing from one side gets that side's lowest score (it ranked below all of
        them), or 0 from the keyword side when that side holds every passage that matched at all.
        """
        scores = self._unweighed(mode, fusion)
        weight = fusion.boilerplate_weight
        return scores if weight == 1.0 else np.where(self.boilerplate, scores - (1 - weight) * np.abs(scores), scores)

    def _unweighed(self, mode: str, fusion: Fusion) -> np.ndarray:
        meaning = self.meaning(fusion)
        if mode == "dense":
            return meaning.copy()
        if mode == "bm25":
            return self.keyword.copy()
        if fusion.method == "rrf":
            fused = np.zeros(len(self))
            for scores, order in ((meaning, self.dense_order), (self.keyword, self.keyword_order)):
                ranked = order[np.argsort(-scores[order], kind="stable")]
                fused[ranked] += 1.0 / (fusion.rrf_k + np.arange(1, len(ranked) + 1))
            return fused
        found = ~np.isnan(meaning)
        dense_floor = float(meaning[found].min()) if found.any() else 0.0
        matched = ~np.isnan(self.keyword)
        keyword_floor = 0.0 if self.keyword_complete or not matched.any() else float(self.keyword[matched].min())
        return fusion.alpha * np.where(found, meaning, dense_floor) + (1 - fusion.alpha) * np.where(
            matched, self.keyword, keyword_floor
        )

    def best_per_entry(
        self, scores: np.ndarray, fusion: Fusion | None = None, limit: int | None = None
    ) -> list[tuple[int, float]]:
        """(slot of the entry's best passage, the entry's score) for the best `limit` entries (all when
        None), best first; ties break on the entry id, and within an entry on the passage id (the
        greater, as text, first).

        An entry scores as its best passage, plus a share of its second best when the fusion says so
        (an entry that matches in two places is a little more likely to be about the query).
        """
        summary_weight = fusion.summary_weight if fusion else 1.0
        second_weight = fusion.second_passage_weight if fusion else 0.0
        if summary_weight != 1.0:
            scores = np.where(self.numbers == SUMMARY_NUMBER, scores * summary_weight, scores)
        best: dict[int, tuple[int, float]] = {}
        second: dict[int, float] = {}
        for slot in self._ordered(scores):  # best first: an entry's first passage is its best, its next its second
            entry = int(self.entries[slot])
            if entry not in best:
                best[entry] = (slot, float(scores[slot]))
                if not second_weight and len(best) == limit:
                    break
            elif second_weight and entry not in second:
                second[entry] = float(scores[slot])
        ranked = [(slot, score + second_weight * second.get(entry, 0.0)) for entry, (slot, score) in best.items()]
        if second:
            ranked.sort(key=lambda found: (-found[1], self.entry_id(found[0])))
        return ranked[:limit]

    def _ordered(self, scores: np.ndarray) -> Iterator[int]:
        """The slots with a score, best first; within a run of equal scores by entry id, then by passage
        id, the greater first. Ids are spelled only for the slots of such runs."""
        order = np.argsort(-scores, kind="stable")
        order = order[~np.isnan(scores[order])]
        ordered = scores[order]
        tie = ordered[1:] == ordered[:-1]  # tie[i]: the slots at positions i and i + 1 score the same
        if not tie.any():
            yield from order.tolist()
            return
        before, after = np.concatenate([[False], tie[:-1]]), np.concatenate([tie[1:], [False]])
        position = 0
        for first, last in zip(
            np.flatnonzero(tie & ~before).tolist(), (np.flatnonzero(tie & ~after) + 1).tolist(), strict=True
        ):
            yield from order[position:first].tolist()
            run = order[first : last + 1].tolist()
            run.sort(key=self.passage_id, reverse=True)
            run.sort(key=self.entry_id)
            yield from run
            position = last + 1
        yield from order[position:].tolist()

    # ----------------------------------------------------------------- what a slot is

    def entry_id(self, slot: int) -> str:
        return self.spelling.entry_id(int(self.entries[slot]))

    def passage_id(self, slot: int) -> str:
        return self.spelling.passage_id(slot, self.entry_id(slot), int(self.numbers[slot]))

    def section(self, slot: int) -> str:
        return self.spelling.section(slot)

    def text(self, slot: int) -> str:
        return self.spelling.text(slot)

    def closeness(self, ranked: list[tuple[int, float]], threshold: float | None) -> dict[str, bool] | None:
        """Whether each ranked entry is a close match by meaning (kb.relevance): its best raw similarity
        among the passages the meaning side found reaches the threshold; an entry that side did not find
        is further away than all of them, so it is not close either. None (not judged) without a
        threshold for the model or when the meaning side found nothing."""
        if threshold is None or not len(self.dense_order):
            return None
        best = {int(self.entries[slot]): -math.inf for slot, _ in ranked}
        found = self.dense_order
        for entry, similarity in zip(self.entries[found].tolist(), self.dense[found].tolist(), strict=True):
            if entry in best and similarity > best[entry]:
                best[entry] = similarity
        return {self.spelling.entry_id(entry): similarity >= threshold for entry, similarity in best.items()}


class _RowSpelling:
    """A pool's slots spelled from the rows they were found in."""

    def __init__(self, view: RowsRead, slot_rows: np.ndarray):
        self._view, self._slot_rows = view, slot_rows

    def entry_id(self, code: int) -> str:
        return self._view.entry_id(code)

    def passage_id(self, slot: int, entry_id: str, number: int) -> str:
        return PassageId.of(entry_id, number)

    def section(self, slot: int) -> str:
        return self._view.section(int(self._slot_rows[slot]))

    def text(self, slot: int) -> str:
        return self._view.text(int(self._slot_rows[slot]))


class _MatchSpelling:
    """Slots spelled from the matches a pool was made of."""

    def __init__(self, text_of: Callable[[str], str | None]):
        self.entries: list[str] = []
        self.ids: list[str] = []
        self.sections: list[str] = []
        self.texts: list[str] = []
        self._text_of = text_of

    def entry_id(self, code: int) -> str:
        return self.entries[code]

    def passage_id(self, slot: int, entry_id: str, number: int) -> str:
        return self.ids[slot]

    def section(self, slot: int) -> str:
        return self.sections[slot]

    def text(self, slot: int) -> str:
        if not self.texts[slot]:  # a match found without its text (the light path)
            self.texts[slot] = self._text_of(self.ids[slot]) or ""
        return self.texts[slot]
