"""The record of how the vocabulary read the themes of every entry in the index (`<index>/vocabulary-read`):
a digest of its reading (`Vocabulary.reading`), so that a sync notices a vocabulary file changed by hand
or copied in, and reads the themes of the entries whose files did not change (kb.indexer). One per
machine: with a Chroma server several share the index, and each machine's first sync after a change
reads the themes once. A record that cannot be read is no record: the next sync reads every entry's
themes again, which is all a damaged one can cost.
"""

from __future__ import annotations

import logging
from pathlib import Path

log = logging.getLogger(__name__)

RECORD = "vocabulary-read"


class VocabularyRead:
    """The record in one index folder; see the module docstring."""

    def __init__(self, index_dir: Path | str):
        self.path = Path(index_dir) / RECORD

    def reading(self) -> str:
        """The recorded reading; "" when there is none, or none that can be read."""
        try:
            return self.path.read_text(encoding="utf-8", errors="replace").strip()
        except OSError:
            return ""

    def record(self, reading: str) -> None:
        """Every entry in the index has its themes as this reading gives them. Logged, not raised, when it
        cannot be written: the index itself is written, and the next sync reads the themes again."""
        if self.reading() == reading:
            return
        try:
            temporary = self.path.with_suffix(".tmp")
            temporary.write_text(reading + "\n", encoding="utf-8")
            temporary.replace(self.path)
        except OSError:
            log.warning("cannot record the vocabulary the index was read with in %s", self.path, exc_info=True)
            self.forget()

    def forget(self) -> None:
        try:
            self.path.unlink(missing_ok=True)
        except OSError:
            log.warning("cannot remove %s", self.path, exc_info=True)

    def after_indexing(self, now: str, change: tuple[str, str] | None) -> None:
        """After entries were indexed as the vocabulary reads them `now`: the record stays true only if it is
        that reading, or moves to it after a change made in Lighthouse (`change`: the readings before and
        after) from an index that was in step with the one before. Otherwise the index now holds themes read
        two ways, and the record goes, so the next sync reads every entry's themes again."""
        recorded = self.reading()
        if change is not None and now and change == (recorded, now):
            self.record(now)
        elif recorded and recorded != now:
            self.forget()
