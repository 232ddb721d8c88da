"""The project's own error types: every failure a user can cause is one of these."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

# An absolute file-system path inside a message (not part of a URL such as "http://host/x").
_PATH = re.compile(r"(?<![\w:/.])(?:[A-Za-z]:)?[\\/](?:[\w.\-]+[\\/])*[\w.\-]+[\\/]?")


def without_paths(message: str) -> str:
    """A message with any absolute path in it replaced: for text that comes from a library the project
    does not control (Chroma's exceptions), before it reaches a message of ours."""
    return _PATH.sub("(a folder on the server)", message)


class KBError(Exception):
    """A domain error with a message fit to show a user as it is: it never names a file or folder of the
    server. `where` names it for the operator: the command line adds it, the app never shows it."""

    def __init__(self, message: str = "", *, where: str | Path = ""):
        super().__init__(message)
        self.where = str(where)


@dataclass(frozen=True)
class Problem:
    """One thing wrong with one input: where it is, which field, and what to do."""

    source: str
    message: str
    field: str | None = None
    row: int | None = None
    severity: str = "error"  # "error": the input is refused; "warning": kept, but reported

    def __str__(self) -> str:
        where = self.source
        if self.row is not None:
            where += f", row {self.row}"
        if self.field:
            where += f", field '{self.field}'"
        return f"{where}: {self.message}"


class EntryError(KBError):
    """An entry that cannot be read or written; carries every problem found, not just the first."""

    def __init__(self, problems: list[Problem]):
        self.problems = problems
        super().__init__("; ".join(str(p) for p in problems))


class NotFound(KBError):
    """No entry with that id, or none this viewer may see: both answer with the same words."""

    @classmethod
    def entry(cls, entry_id: str) -> NotFound:
        """The one answer for an entry that is missing or hidden from the viewer (it names no folder)."""
        return cls(f"no entry with id '{entry_id}'")


class Conflict(KBError):
    """A write that would silently overwrite someone else's change."""


class Forbidden(KBError):
    """The viewer may see the entry (or there is nothing to see) but may not do this to it: edit it,
    review it, or save entries at all. Either seeing has been settled first, or the refusal is the same
    whether the entry exists or not (no contributor role, not a reviewer), so it never tells a viewer
    that an entry hidden from them exists."""


class SavedNotIndexed(KBError):
    """The entry's file was written but indexing it failed. The entry is saved (its file is the record)
    and becomes searchable at the next sync; saving it again would write a second copy of a new entry."""

    def __init__(self, entry_id: str, reason: str):
        self.entry_id, self.reason = entry_id, reason
        super().__init__(
            f"saved as {entry_id}.md, but not indexed yet ({reason}); there is no need to save it again: "
            "search shows this version after the next `python -m kb sync`"
        )


class IndexMismatch(KBError):
    """The index was built by another model (or another vector size): it must be rebuilt."""


class IndexDamaged(KBError):
    """The index cannot be read back whole (half-written, truncated, garbled): a sync rebuilds it."""

    def __init__(self, message: str, *, where: str | Path = ""):
        self.reason = message
        super().__init__(f"{message}; run `python -m kb sync` to rebuild it from the entry files", where=where)


class IndexMissing(KBError):
    """There is no index where the settings say: nothing has been synced there, or its database is gone."""

    def __init__(self, path: Path):
        super().__init__(
            "there is no index yet (or its database is gone); run `python -m kb sync` to build it from the entry files",
            where=path.parent,
        )
